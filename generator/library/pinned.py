"""The pinned TFLite-Micro libraries (data/libraries.yaml: what each one's allocator keeps on a
32-bit board) and the kernel families that replace some of their kernels (data/kernels.yaml).
A board names one of each (`tflm_library`, `kernels`)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=None)
def libraries() -> dict:
    text = (resources.files(__package__) / "data" / "libraries.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["libraries"]


@lru_cache(maxsize=None)
def kernel_families() -> dict:
    text = (resources.files(__package__) / "data" / "kernels.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["families"]
