"""The whole flow in one place: model file -> everything a project or a report needs.

    load + convert (Keras and SavedModel only, in a child process) -> analyze -> resolve ops
    -> measure arena -> golden vectors

`new` and `inspect` both call `prepare`; rendering and printing happen elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .boards.catalog import Board, get_board
from .boards.fit import Fit, fit
from .check.compare import describe_change, difference
from .check.golden import (
    CANDIDATES,
    GoldenVectors,
    Layout,
    default_budget,
    deterministic_inputs,
    make_golden,
    plan_layout,
)
from .errors import TinygenError
from .library import numerics
from .library.resolver import Resolution, load_table, resolve
from .memory.arena import LARGEST_ARENA, ArenaPlan, check_plan, host_allocations, measure_arena_min, plan_arena
from .model import calibration, load
from .model import labels as class_labels
from .model.analyze import ModelReport, analyze, in_model_order
from .model.load import require_tensorflow
from .model.quantization import to_float, to_tensor_dtype
from .model.tflm_host import HostRuntime
from .progress import Progress

# Inputs a rewrite's effect on the outputs is measured on (of the calibration data).
CHANGE_SAMPLES = 200


@dataclass
class Prepared:
    model_path: Path  # as the user gave it (relative to their folder)
    model_kind: str  # "tflite" | "keras" | "saved_model"
    loader: str
    quantize: str  # what it was converted with ("as-is" for a .tflite)
    tflite: bytes  # the model as the board gets it (adapted to its library)
    original_tflite: bytes  # as converted or given, before any rewrite for the board
    adapted: numerics.Adapted  # the rewrites for the board, refusals and tolerated differences
    report: ModelReport  # of `tflite`
    board: Board
    resolution: Resolution | None  # None: the board's TFLite-Micro lacks an operator
    unsupported: TinygenError | None  # why the board cannot run it (a lacking operator, a
                                      # refusal, or the host runtime cannot run the model)
    host_error: TinygenError | None  # why the host runtime cannot run the model (inspect only)
    arena: ArenaPlan
    fit: Fit
    golden: GoldenVectors | None
    input_specs: list[calibration.InputSpec]  # the inputs as the user names them, in the
                                              # .tflite's order (report.inputs)
    samples: list[np.ndarray] | None  # the calibration data, float32, one array per input
    labels: list[str]  # class names of the first output ([] when unknown)
    warnings: list[str]  # about the user's data, already shown through progress.warn
    emitted_bytes: int  # everything tinygen puts in flash (model, golden vectors, labels)

    def require_resolution(self) -> Resolution:
        """The op registrations; the board being unable to run the model is an error."""
        if self.unsupported is not None:
            raise self.unsupported
        return self.resolution


def default_quantization(kind: str, quantize: str | None, calibration_path: Path | None) -> str:
    """What a model is converted with: as asked; else int8 with calibration data, and float32
    without (int8 needs real inputs to set its ranges, and guessed ranges would clip)."""
    if kind == "tflite":
        return "as-is"
    return quantize or ("int8" if calibration_path is not None else "none")


def check_inputs(model_path: Path, target: str, board_id: str | None, quantize: str | None,
                 calibration_path: Path | None) -> tuple[Board, str]:
    """Everything that can be checked without the model loaded, so that a typo costs no
    TensorFlow start-up: board, model file and kind, quantization, calibration file.
    Returns the board and the model's kind."""
    board = get_board(target, board_id)
    kind = load.model_kind(model_path)
    if kind == "tflite":
        if quantize not in (None, "as-is"):
            raise TinygenError(
                f"'{model_path.name}' is already a converted .tflite model; --quantize applies "
                "to Keras models and SavedModels only.",
                hint="Drop --quantize, or pass the Keras model instead.")
    else:
        require_tensorflow(f"Converting '{model_path}'")
        if quantize == "int8" and calibration_path is None:
            raise TinygenError(
                "int8 quantization needs representative input data to calibrate activation ranges.",
                hint="Pass --calibration-data FILE.npy (an array of 100-500 real input samples), "
                "or leave out --quantize for a float32 model.")
    if calibration_path is not None:
        calibration.read_calibration(calibration_path)
    return board, kind


def prepare(model_path: str | Path, target: str, board_id: str | None = None,
            quantize: str | None = None, calibration_path: str | Path | None = None,
            with_golden: bool = True, progress: Progress = Progress(),
            labels_path: str | Path | None = None, allow_unsupported: bool = False,
            golden_bytes: int | None = None) -> Prepared:
    """Everything about MODEL for the board. An operator the board's TFLite-Micro lacks, or
    computes wrongly, is an error at once, before the slow steps, unless `allow_unsupported`
    (inspect: it reports it in `Prepared.unsupported` beside the other boards, and so does a
    model the host runtime cannot run). `golden_bytes`: the flash the golden vectors may take
    (default: golden.default_budget)."""
    model_path = Path(model_path)
    calibration_path = Path(calibration_path) if calibration_path is not None else None
    board, kind = check_inputs(model_path, target, board_id, quantize, calibration_path)
    user_labels = class_labels.read_labels(labels_path) if labels_path is not None else None
    notes: list[str] = []
    quantize = default_quantization(kind, quantize, calibration_path)

    if kind == "tflite":
        loaded = load.load_model(model_path)
        tflite, loader = loaded.tflite_bytes, loaded.loader
        report = analyze(tflite)
        specs = [calibration.InputSpec(t.name, tuple(t.shape)) for t in report.inputs]
    else:
        from .model.convert_process import convert_in_child

        progress(f"Loading {model_path} ...")
        converted = convert_in_child(model_path, quantize, calibration_path, progress,
                                     per_channel_dense=numerics.per_channel_dense(board))
        tflite, loader = converted.tflite, converted.loader
        report = analyze(tflite)
        # The converter may order a multi-input model's inputs differently from Keras: from
        # here on everything is in the .tflite's order, matched by name.
        specs = in_model_order(report.inputs, [spec.name for spec in converted.input_specs],
                               converted.input_specs)
        report.name_outputs(converted.output_names)
        notes += converted.warnings
        if quantize == "dynamic" and report.quantization == "none":
            progress("Note: --quantize dynamic left every weight float32 (the converter only "
                     "quantizes weight tensors of 1,024 elements or more).")
        if quantize == "none" and calibration_path is None:
            progress(float_default_note(report, board))
    samples = None
    if calibration_path is not None:
        samples = calibration.load_samples(calibration_path, specs, notes)
        if kind == "tflite":  # a Keras model's input ranges come from this very data
            notes += calibration.range_warnings(f"Calibration data '{calibration_path}'", samples, report.inputs)
    for note in notes:
        progress.warn(note)
    labels = class_labels.choose(report, tflite, user_labels, labels_path)

    unsupported = None
    try:
        resolution = resolve(report, load_table(board["op_table"]))
    except TinygenError as exc:
        if not allow_unsupported:
            raise
        resolution, unsupported = None, exc
    adapted = numerics.adapt(tflite, report, board)
    if adapted.refused and unsupported is None:
        unsupported = numerics.refusal_error(adapted, board)
        if not allow_unsupported:
            raise unsupported
    if adapted.applied and resolution is not None:  # the rewrites may add operators (RESHAPE, PAD...)
        resolution = resolve(adapted.report, load_table(board["op_table"]))
    original, tflite, report = tflite, adapted.tflite, adapted.report

    layout = plan_layout(report, golden_bytes if golden_bytes is not None else default_budget(report.model_bytes),
                         len(samples[0]) if samples else None)
    golden, host_error = None, None
    try:
        with HostRuntime(tflite) as runtime:
            progress("Measuring the tensor arena on the TFLite-Micro runtime ...")
            arena_min = measure_arena_min(runtime, progress, report.quantization)
            host = host_allocations(runtime)
            check_plan(report, host)
            arena = plan_arena(report, arena_min, host, board["tflm_library"], board["kernels"])
            if adapted.applied:
                adapted.change = measure_change(original, tflite, report, samples, arena_min)
                progress(f"Rewrote the model for {board.name}: "
                         + "; ".join(step.describe() for step in adapted.applied) + f". Effect: {adapted.change}.")
            if with_golden:
                progress("Choosing golden self-test vectors away from rounding ties ...")
                golden = make_golden(report, runtime, arena_min, samples, tflite, adapted.exact,
                                     numerics.tolerance_basis(adapted), layout)
    except TinygenError as exc:
        if not allow_unsupported:
            raise
        # The host cannot run it (an operator TFLite-Micro lacks everywhere, a broken model):
        # inspect still shows what can be known, each board's arena from the simulation alone.
        unsupported, host_error = unsupported or exc, exc
        arena = plan_arena(report, None, {}, board["tflm_library"], board["kernels"])

    emitted = emitted_flash_bytes(report, layout, labels)
    return Prepared(model_path=model_path, model_kind=kind, loader=loader, quantize=quantize,
                    tflite=tflite, original_tflite=original, adapted=adapted, report=report, board=board,
                    resolution=resolution, unsupported=unsupported, host_error=host_error, arena=arena,
                    fit=fit(board, report, emitted, arena.arena_bytes), golden=golden,
                    input_specs=specs, samples=samples, labels=labels, warnings=notes,
                    emitted_bytes=emitted)


def float_default_note(report: ModelReport, board: Board) -> str:
    """What a user without calibration data gets, and what int8 would give instead."""
    weights = sum(t.byte_size for graph in report.tensors for t in graph
                  if t.is_constant and t.dtype == "FLOAT32" and len(t.shape) >= 2)
    int8_bytes = report.model_bytes - weights + weights // 4
    return (f"Note: no --calibration-data, so the model was converted to float32 "
            f"({report.model_bytes:,} B). int8 would take about {int8_bytes:,} B and run on "
            f"{board.name}'s optimized int8 kernels ({board['kernels']}) instead of TFLite-Micro's "
            "float reference kernels: pass --calibration-data FILE.npy with 100-500 real input samples.")


def measure_change(original: bytes, rewritten: bytes, report: ModelReport,
                   samples: list[np.ndarray] | None, arena_bytes: int) -> str:
    """How a rewrite moved the outputs: both models run on the host's TFLite-Micro with the
    calibration samples (else the golden candidates' pseudo-random inputs)."""
    if samples:
        count = min(CHANGE_SAMPLES, len(samples[0]))
        inputs = [to_tensor_dtype(arr[:count].reshape(count, *t.shape), t) for arr, t in zip(samples, report.inputs)]
        source = "calibration samples"
    else:
        count = CANDIDATES
        inputs, source = deterministic_inputs(report, count), "pseudo-random inputs"
    with HostRuntime(original) as before_runtime, HostRuntime(rewritten) as after_runtime:
        before = before_runtime.run(LARGEST_ARENA, inputs, len(report.outputs))
        after = after_runtime.run(arena_bytes, inputs, len(report.outputs))
    scales = [t.scale if np.issubdtype(np.dtype(t.numpy_dtype or "float32"), np.integer) else None
              for t in report.outputs]
    change = difference(outputs_as_float(after, report.outputs), outputs_as_float(before, report.outputs), scales)
    return describe_change(change, count, source)


def outputs_as_float(raw: list[np.ndarray], tensors: list) -> list[np.ndarray]:
    """Raw outputs stacked per sample -> (samples, elements) floats, with each tensor's scale."""
    return [to_float(values, t).reshape(len(values), -1) for values, t in zip(raw, tensors)]


def emitted_flash_bytes(report: ModelReport, layout: Layout, labels: list[str]) -> int:
    """What tinygen puts in the firmware's flash: the model, the golden vectors (as `layout`
    stores them) and the class names (strings and their pointer table)."""
    names = sum(len(label.encode()) + 1 for label in labels) + 4 * len(labels)
    return report.model_bytes + layout.flash_bytes + names
