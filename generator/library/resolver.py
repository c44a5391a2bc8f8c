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
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import TinygenError
from ..model.analyze import ModelReport


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
    folder = resources.files(__package__) / "data" / "ops"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def load_table(name: str) -> OpTable:
    path = resources.files(__package__) / "data" / "ops" / f"{name}.json"
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


def keras_layer(tensor_name: str) -> str | None:
    """The Keras layer a converted tensor comes from: TensorFlow names a layer's tensors
    '<model>/<layer>/<Scope>/<Op>' (several names joined by ';' when ops were fused); layer
    names are snake_case, TensorFlow's scopes and ops CamelCase."""
    parts = tensor_name.split(";")[0].split("/")[1:-1]
    layers = [part for part in parts if re.fullmatch(r"[a-z][a-z0-9_]*", part)]
    return layers[-1] if layers else None


def _layer_hint(report: ModelReport, op: str) -> str:
    producer = report.producer_name(op)
    if not producer:
        return ""
    tensor = producer.split(";")[0]
    layer = keras_layer(producer)
    return f" (Keras layer '{layer}', tensor '{tensor}')" if layer else f" (tensor '{tensor}')"


# What to use instead of a Keras layer whose operator some pinned TFLite-Micro lacks.
REPLACEMENTS = {
    "TILE": "Keras 3's UpSampling2D becomes TILE; tinygen converts UpSampling2D(interpolation='nearest') "
            "from a Keras model itself, and a .tflite can be exported with keras.layers.Resizing("
            "height, width, interpolation='nearest') instead (RESIZE_NEAREST_NEIGHBOR)",
    "BATCH_MATMUL": "Attention and MultiHeadAttention become BATCH_MATMUL, which TFLite-Micro has from "
                    "2023-09 on: the esp-idf and zephyr targets' libraries have it",
    "GELU": "Keras' 'gelu' activation becomes GELU, which no pinned TFLite-Micro has; 'swish' "
            "(x * sigmoid(x): LOGISTIC and MUL) has nearly the same shape, retrain with it",
    "SELECT": "Keras 3's Embedding checks its indices with SELECT (LESS, ADD, SELECT before the GATHER); "
              "tinygen converts an Embedding without mask_zero from the Keras model itself as one GATHER, "
              "so give it the .keras file",
}


def _unsupported(report: ModelReport, table: OpTable, op: str) -> TinygenError:
    instead = REPLACEMENTS.get(op)
    return TinygenError(
        f"The model uses operator {op}{_layer_hint(report, op)}, which TFLite-Micro as pinned "
        f"by this target ({table.description}) does not implement.",
        hint=(f"{instead}. " if instead else "Replace the Keras layer that produces it with supported ones. ")
        + "`tinygen inspect MODEL` lists every board whose TFLite-Micro can run the model.",
        short=f"lacks {op}")


def _unsupported_custom(report: ModelReport, table: OpTable, code: str) -> TinygenError:
    if code.startswith("Flex"):
        return TinygenError(
            f"The model uses the TensorFlow op '{code[4:]}' through Flex (SELECT_TF_OPS)"
            f"{_layer_hint(report, code)}. TFLite-Micro runs only builtin operators.",
            hint="Convert without SELECT_TF_OPS, replacing the layer that needs it.",
            short=f"Flex op {code[4:]}")
    return TinygenError(
        f"The model uses the custom operator '{code}'{_layer_hint(report, code)}, which "
        f"TFLite-Micro ({table.description}) does not provide.",
        hint="Implement and register it yourself, or rebuild the model from builtin operators.",
        short=f"lacks custom op {code}")
