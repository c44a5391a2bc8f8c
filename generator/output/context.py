"""ProjectContext: everything a template needs, as plain data (str, int, list, dict).

Handed to cookiecutter as the single private variable `_tinygen` (private: cookiecutter
copies it without rendering, so a name like `{{ 7*7 }}` stays text) and to the firmware-core
templates as `t`. Templates only place these values; decisions are made here.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib

from .. import __version__
from ..check import golden
from ..check.golden import GoldenVectors
from ..library import numerics
from ..memory.allocator import resource_variable_count
from ..model.analyze import first_output
from ..model.tflm_host import runtime_version
from ..pipeline import Prepared
from .model_source import byte_array_body, c_type, value_array_body
from .render import user_owned_patterns


def comment_safe(text: str, limit: int = 200) -> str:
    """Text that lands in C++ comments and strings: printable ASCII only, no backslash (line
    splice), no comment terminator, no quotes; text from the model or the user is also cut to
    `limit` characters."""
    cleaned = "".join(c if " " <= c <= "~" and c not in "\\\"`" else "?" for c in text)
    return cleaned.replace("*/", "*?")[:limit]


# Zephyr: TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS selects every part of the CMSIS-NN library
# but LSTM (zephyr modules/tflite-micro/Kconfig); TFLite-Micro's CMSIS-NN LSTM kernel calls it.
ZEPHYR_CMSIS_NN_KCONFIG_FOR_OPS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": "CONFIG_CMSIS_NN_LSTM"}


def extra_kconfig(board, ops: list[str]) -> list[dict]:
    """Kconfig symbols this model's operators need on this board, each with the reason."""
    if board.target != "zephyr" or not board["kernels"].startswith("cmsis-nn"):
        return []
    return [{"symbol": symbol, "why": f"the model's {op} runs on CMSIS-NN's LSTM functions"}
            for op, symbol in ZEPHYR_CMSIS_NN_KCONFIG_FOR_OPS.items() if op in ops]


def c_string(text: str) -> str:
    """A C string literal body: printable ASCII, with quotes and backslashes escaped."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text)
    return cleaned.replace("\\", "\\\\").replace('"', '\\"').replace("??", "?\\?")


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


def generated_input(report, tensor) -> dict:
    """How the firmware turns a hash into a golden input: a generated int8 value scaled for a
    float input, the hash modulo the rows an index input looks up (0: the whole type)."""
    scale, zero_point = golden.float_input_scale(report, tensor)
    return {"generated_scale": repr(float(scale)), "generated_zero_point": int(zero_point),
            "generated_rows": golden.index_rows(report, tensor)}


# The firmware core's files (firmware/<stem>.{h,cpp}.j2), by stem.
CORE_STEMS = ("model_data", "model_ops", "tinygen_model", "golden_vectors", "tinygen_platform")


def core_naming(name: str, library: bool) -> dict:
    """Where the firmware core's code lives. A project's is tinygen's own: namespace `tinygen`,
    files as the stems. A library's is the library's: namespace NAME, files NAME.h (the API)
    and NAME_<part>, include guards NAME_..., console lines "NAME: ...", so that several
    libraries link into one firmware."""
    if not library:
        return {"ns": "tinygen", "guard": "TINYGEN", "log_prefix": "tinygen", "files": {s: s for s in CORE_STEMS}}
    files = {stem: f"{name}_{stem.removeprefix('tinygen_')}" for stem in CORE_STEMS} | {"tinygen_model": name}
    return {"ns": name, "guard": name.upper(), "log_prefix": name, "files": files}


def template_name(board, library: bool) -> str:
    """The cookiecutter template (templates/<name>/) of a project or of a library for `board`."""
    return board["library_template" if library else "template"]


def build_context(prepared: Prepared, name: str, profile: bool = False, library: bool = False,
                  shared_arena: bool = False) -> dict:
    report, board, arena, golden_vectors = prepared.report, prepared.board, prepared.arena, prepared.golden
    resolution = prepared.require_resolution()
    class_output = first_output(report.outputs)
    template = template_name(board, library)
    context = {
        "name": name,
        "tinygen_version": __version__,
        "target": board.target,
        "output_kind": "library" if library else "project",
        "firmware_dir": board["library_firmware_dir"] if library else board["firmware_dir"],
        "public_dir": board["library_public_dir"] if library else board["firmware_dir"],
        **core_naming(name, library),
        "shared_arena": shared_arena,
        "user_files": user_owned_patterns(template, name),
        "board": {k: v for k, v in board.settings.items() if not isinstance(v, dict)} | {"id": board.id},
        "library_header": board.get("library_header") or "",
        "extra_kconfig": extra_kconfig(board, report.ops),
        "model": {
            "source": comment_safe(prepared.model_path.name),
            "kind": prepared.model_kind,
            "quantize": prepared.quantize,
            "quantization": report.quantization_label,
            "sha256": report.sha256,
            "bytes": report.model_bytes,
            "crc32": f"0x{zlib.crc32(prepared.tflite):08x}u",
            "parameter_count": report.parameter_count,
            "ops": report.ops + report.custom_ops,
        },
        "resolver": {
            "size": resolution.size,
            "source": f"{resolution.table.description}, "
                      f"{resolution.table.source['repo']} "
                      f"{resolution.table.source['path']}",
            "registrations": [{"op": r.op, "method": r.method}
                              for r in resolution.registrations],
        },
        "arena": {
            "bytes": arena.arena_bytes,
            "host_min_bytes": arena.arena_min_bytes,
            "breakdown": comment_safe(arena.breakdown(), limit=1000),
            "detail": [comment_safe(line, limit=1000) for line in arena.detail],
            "kernels": arena.kernels,
            "runtime": runtime_version(),
            "placement": "psram" if prepared.fit.arena_in_psram else "internal",
            "placement_why": comment_safe(prepared.fit.placement, limit=1000),
        },
        "fit": {
            "flash_needed": prepared.fit.flash_needed,
            "ram_needed": prepared.fit.ram_needed,
            "summary": prepared.fit.summary(),
        },
        "inputs": [tensor_context(t) | generated_input(report, t) for t in report.inputs],
        "outputs": [tensor_context(t) | {"tolerance_steps": steps, "golden_elements": kept.shape[1]}
                    for t, steps, kept in zip(report.outputs, golden_vectors.tolerance_steps, golden_vectors.outputs)],
        "single_io": len(report.inputs) == 1 and len(report.outputs) == 1,
        "resource_variables": resource_variable_count(report),
        "profile": profile,  # --profile: time each operator (tinygen_model.cpp)
        "operator_count": sum(1 for op in report.operators if op.subgraph == 0),
        "state": report.state,
        "class_output": class_output,
        "labels": [c_string(label) for label in prepared.labels],
        "numerics": {"library": comment_safe(numerics.library_name(board)),
                     "summary": comment_safe(prepared.adapted.summary(), limit=1000),
                     "rewrites": [comment_safe(step.describe(), limit=2000) for step in prepared.adapted.applied]},
        "golden": {"count": golden_vectors.count, "source": golden_vectors.source,
                   "selection": comment_safe(golden_vectors.selection, limit=1000),
                   "generated": golden_vectors.layout.generated,
                   "seeds": [f"0x{seed & 0xFFFFFFFF:08x}u" for seed in golden_vectors.seeds],
                   "output_stride": golden_vectors.layout.output_stride,
                   "flash_bytes": golden_vectors.layout.flash_bytes,
                   "ratio": f"0x{golden.GOLDEN_RATIO:08x}u", "input_stride": f"0x{golden.INPUT_STRIDE:08x}u"},
        "tolerance": {
            "float_abs": f"{golden.FLOAT_ABS_TOLERANCE!r}f",
            "float_rel": f"{golden.FLOAT_REL_TOLERANCE!r}f",
        },
    }
    if library:
        context["library"] = library_facts(board, name)
    # Ties every generated source to this one run: a stale mix of files fails to compile.
    digest = hashlib.sha256(json.dumps(context, sort_keys=True).encode() + prepared.tflite)
    for array in golden_vectors.inputs + golden_vectors.outputs:
        digest.update(array.tobytes())
    context["generation"] = "0x" + digest.hexdigest()[:8] + "u"
    return context


LIBRARY_VERSION = "1.0.0"  # a library's own version (library.properties, idf_component.yml)


def library_facts(board, name: str) -> dict:
    """What `--as library` output declares about itself, per ecosystem."""
    pinned = re.match(r"^(.+) \((.+)\)$", board.get("library") or "")
    fqbn = board.get("fqbn") or ""
    return {
        "version": LIBRARY_VERSION,
        "config_symbol": name.upper(),  # Zephyr: CONFIG_<NAME>
        # Arduino library.properties: the platform architecture of the board's FQBN, and the
        # pinned TFLite-Micro library as a `depends=` entry with its exact version.
        "arduino_architecture": fqbn.split(":")[1] if fqbn.count(":") >= 2 else "*",
        "arduino_depends": f"{pinned.group(1)} (={pinned.group(2)})" if pinned else "",
        # ... and the same library as arduino-cli names it on its command line (NAME@VERSION)
        "arduino_install": f"{pinned.group(1)}@{pinned.group(2)}" if pinned else "",
    }


def golden_arrays(golden: GoldenVectors) -> dict[str, str]:
    """The stored golden data: inputs unless the firmware generates them, and outputs."""
    arrays = {} if golden.layout.generated else {f"input_{i}": value_array_body(a) for i, a in enumerate(golden.inputs)}
    arrays.update({f"output_{i}": value_array_body(a) for i, a in enumerate(golden.outputs)})
    return arrays


def model_array(prepared: Prepared) -> str:
    """The model the firmware embeds, as C array text: the model as the board gets it."""
    return byte_array_body(prepared.tflite)
