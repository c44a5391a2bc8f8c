"""ProjectContext: everything a template needs, as plain data (str, int, list, dict).

Handed to cookiecutter as the single private variable `_tinygen` (private: cookiecutter
copies it without rendering, so a name like `{{ 7*7 }}` stays text) and to the firmware-core
templates as `t`. Templates only place these values; decisions are made here.
"""

from __future__ import annotations

from datetime import datetime, timezone

from . import __version__
from . import golden
from .golden import GoldenVectors
from .model_source import byte_array_body, c_type, value_array_body
from .pipeline import Prepared
from .tflm_host import runtime_version


def comment_safe(text: str) -> str:
    """Text from the model or the user that lands in C++ comments and strings: printable
    ASCII only, no backslash (line splice), no comment terminator, no quotes."""
    cleaned = "".join(c if " " <= c <= "~" and c not in "\\\"`" else "?" for c in text)
    return cleaned.replace("*/", "*?")[:200]


# Zephyr: TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS selects every part of the CMSIS-NN library
# but LSTM (zephyr modules/tflite-micro/Kconfig); TFLite-Micro's CMSIS-NN LSTM kernel calls it.
ZEPHYR_CMSIS_NN_KCONFIG_FOR_OPS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": "CONFIG_CMSIS_NN_LSTM"}


def extra_kconfig(board, ops: list[str]) -> list[dict]:
    """Kconfig symbols this model's operators need on this board, each with the reason."""
    if board.target != "zephyr" or board["kernels"] != "cmsis-nn":
        return []
    return [{"symbol": symbol, "why": f"the model's {op} runs on CMSIS-NN's LSTM functions"}
            for op, symbol in ZEPHYR_CMSIS_NN_KCONFIG_FOR_OPS.items() if op in ops]


def tensor_context(tensor) -> dict:
    return {
        "name": comment_safe(tensor.display_name),
        "tensor_name": comment_safe(tensor.name),
        "shape": tensor.shape,
        "shape_text": "[" + ", ".join(map(str, tensor.shape)) + "]",
        "dtype": tensor.numpy_dtype or tensor.dtype.lower(),
        "c_type": c_type(tensor.numpy_dtype),
        "elements": tensor.element_count,
        "scale": tensor.scale,
        "zero_point": tensor.zero_point,
    }


def build_context(prepared: Prepared, name: str) -> dict:
    report, board, arena = prepared.report, prepared.board, prepared.arena
    return {
        "name": name,
        "tinygen_version": __version__,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "target": board.target,
        "board": {k: v for k, v in board.settings.items() if not isinstance(v, dict)} | {"id": board.id},
        "library_header": board.get("library_header") or "",
        "extra_kconfig": extra_kconfig(board, report.ops),
        "model": {
            "source": comment_safe(prepared.model_path.name),
            "kind": prepared.model_kind,
            "quantize": prepared.quantize,
            "quantization": report.quantization,
            "sha256": report.sha256,
            "bytes": report.model_bytes,
            "parameter_count": report.parameter_count,
            "ops": report.ops + report.custom_ops,
        },
        "resolver": {
            "size": prepared.resolution.size,
            "source": f"{prepared.resolution.table.description}, "
                      f"{prepared.resolution.table.source['repo']} "
                      f"{prepared.resolution.table.source['path']}",
            "registrations": [{"op": r.op, "method": r.method}
                              for r in prepared.resolution.registrations],
        },
        "arena": {
            "bytes": arena.arena_bytes,
            "min_bytes": arena.arena_min_bytes,
            "scratch_bytes": arena.scratch_bytes,
            "scratch_detail": arena.scratch_detail,
            "kernels": arena.kernels,
            "runtime": runtime_version(),
        },
        "fit": {
            "flash_needed": prepared.fit.flash_needed,
            "ram_needed": prepared.fit.ram_needed,
            "summary": prepared.fit.summary(),
        },
        "inputs": [tensor_context(t) for t in report.inputs],
        "outputs": [tensor_context(t) for t in report.outputs],
        "single_io": len(report.inputs) == 1 and len(report.outputs) == 1,
        "golden": {"count": prepared.golden.count, "source": prepared.golden.source},
        "tolerance": {
            "integer_steps": golden.INTEGER_TOLERANCE_STEPS,
            "float_abs": f"{golden.FLOAT_ABS_TOLERANCE!r}f",
            "float_rel": f"{golden.FLOAT_REL_TOLERANCE!r}f",
        },
    }


def golden_arrays(golden: GoldenVectors) -> dict[str, str]:
    arrays = {f"input_{i}": value_array_body(a) for i, a in enumerate(golden.inputs)}
    arrays.update({f"output_{i}": value_array_body(a) for i, a in enumerate(golden.outputs)})
    return arrays


def model_array(prepared: Prepared) -> str:
    return byte_array_body(prepared.tflite)
