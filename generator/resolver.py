"""Stage 5: the model's operators -> `MicroMutableOpResolver` registrations.

One table per TFLite-Micro source a target pins (`data/ops/<table>.json`), each derived by
tools/op_tables.py from that version's `tensorflow/lite/micro/micro_mutable_op_resolver.h` and
naming the repository, ref and path it came from: builtin operator -> Add method, and custom
code (the string the method registers, e.g. "SignalEnergy") -> Add method. An operator
missing from the target's table is an error naming the operator (and the tensor/layer that
produced it), never a project that fails to link.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .analyze import ModelReport
from .errors import TinygenError

@dataclass(frozen=True)
class OpTable:
    name: str
    description: str  # e.g. "esp-tflite-micro 1.4.0 (TFLite-Micro 0965635)"
    source: dict  # repo, ref, path of the header the table was read from
    builtin: dict  # schema operator name -> Add method
    custom: dict  # custom code -> the Add method that registers it under that code


@dataclass(frozen=True)
class Registration:
    op: str  # schema name, e.g. "FULLY_CONNECTED", or the custom code
    method: str  # e.g. "AddFullyConnected"


@dataclass(frozen=True)
class Resolution:
    table: OpTable
    registrations: tuple[Registration, ...]

    @property
    def size(self) -> int:
        """`N` of `MicroMutableOpResolver<N>`: one slot per distinct operator."""
        return len(self.registrations)


def table_names() -> list[str]:
    folder = resources.files("generator") / "data" / "ops"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def load_table(name: str) -> OpTable:
    path = resources.files("generator") / "data" / "ops" / f"{name}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return OpTable(name=name, description=data["description"], source=data["source"],
                   builtin=dict(data["builtin"]), custom=dict(data.get("custom", {})))


def resolve(report: ModelReport, table: OpTable) -> Resolution:
    registrations = []
    for op in report.ops:
        method = table.builtin.get(op)
        if method is None:
            raise _unsupported(report, table, op)
        registrations.append(Registration(op, method))
    for code in report.custom_ops:
        method = table.custom.get(code)
        if method is None:
            raise _unsupported_custom(report, table, code)
        registrations.append(Registration(code, method))
    return Resolution(table=table, registrations=tuple(registrations))


def _layer_hint(report: ModelReport, op: str) -> str:
    producer = report.producer_name(op)
    return f" (it produces tensor '{producer}')" if producer else ""


def _unsupported(report: ModelReport, table: OpTable, op: str) -> TinygenError:
    return TinygenError(
        f"The model uses operator {op}{_layer_hint(report, op)}, which TFLite-Micro as pinned "
        f"by this target ({table.description}) does not implement.",
        hint="Replace the Keras layer that produces it with supported ones, or choose another "
        "target: `tinygen inspect MODEL` lists every board whose TFLite-Micro can run the model.",
    )


def _unsupported_custom(report: ModelReport, table: OpTable, code: str) -> TinygenError:
    if code.startswith("Flex"):
        return TinygenError(
            f"The model uses the TensorFlow op '{code[4:]}' through Flex (SELECT_TF_OPS)"
            f"{_layer_hint(report, code)}. TFLite-Micro runs only builtin operators.",
            hint="Convert without SELECT_TF_OPS, replacing the layer that needs it.",
        )
    return TinygenError(
        f"The model uses the custom operator '{code}'{_layer_hint(report, code)}, which "
        f"TFLite-Micro ({table.description}) does not provide.",
        hint="Implement and register it yourself, or rebuild the model from builtin operators.",
    )
