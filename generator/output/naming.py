"""Project names: whatever the user typed -> a name safe as a folder, a CMake project name
and an Arduino sketch name (letters, digits, `_`, `-`; starts with a letter; <= 63 chars).

The name is never used as a C++ identifier (the generated code lives in namespace
`tinygen`), and it reaches templates only as data, never as template source.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 63  # Arduino's sketch-name limit, the strictest of the three ecosystems


def project_name(raw: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_text).strip("_-")
    name = re.sub(r"_+", "_", name)
    if not name or not name[0].isalpha():
        name = "model_" + name if name else "model"
    return name[:MAX_NAME].rstrip("_-")
