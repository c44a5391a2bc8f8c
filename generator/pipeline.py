"""The whole flow in one place: model file -> everything a project or a report needs.

    load + convert (Keras and SavedModel only, in a child process) -> analyze -> resolve ops
    -> measure arena -> golden vectors

`new` and `inspect` both call `prepare`; rendering and printing happen elsewhere.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import calibration, labels as class_labels, load
from .analyze import ModelReport, analyze, in_model_order
from .arena import ArenaPlan, check_plan, host_allocations, measure_arena_min, plan_arena
from .boards import Board, get_board, kernel_family
from .errors import TinygenError
from .fit import Fit, fit
from .golden import GOLDEN_SAMPLES, GoldenVectors, make_golden
from .progress import Progress
from .resolver import Resolution, load_table, resolve
from .tflm_host import HostRuntime

CONVERT_EXTRA_HINT = "pip install 'tinygen[convert]' (TensorFlow, to convert Keras models)"


@dataclass
class Prepared:
    model_path: Path  # as the user gave it (relative to their folder)
    model_kind: str  # "tflite" | "keras" | "saved_model"
    loader: str
    quantize: str  # what was asked for ("as-is" for a .tflite)
    tflite: bytes
    report: ModelReport
    board: Board
    resolution: Resolution | None  # None: the board's TFLite-Micro lacks an operator
    unsupported: TinygenError | None  # ...and why
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
        """The op registrations; the board's TFLite-Micro lacking an operator is an error."""
        if self.resolution is None:
            raise self.unsupported
        return self.resolution


def require_tensorflow(what: str) -> None:
    """A clear error, before any work, when this installation has no TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        raise TinygenError(f"{what} needs TensorFlow, which this installation of tinygen lacks.",
                           hint=CONVERT_EXTRA_HINT + "; a ready .tflite needs no TensorFlow.")


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
        if (quantize or "int8") == "int8" and calibration_path is None:
            raise TinygenError(
                "int8 quantization (the default) needs representative input data to calibrate "
                "activation ranges.",
                hint="Pass --calibration-data FILE.npy (an array of 100-500 real input samples), "
                "or choose --quantize none.")
    if calibration_path is not None:
        calibration.read_calibration(calibration_path)
    return board, kind


def prepare(model_path: str | Path, target: str, board_id: str | None = None,
            quantize: str | None = None, calibration_path: str | Path | None = None,
            with_golden: bool = True, progress: Progress = Progress(),
            labels_path: str | Path | None = None, allow_unsupported: bool = False) -> Prepared:
    """Everything about MODEL for the board. An operator the board's TFLite-Micro lacks is an
    error at once, before the slow steps, unless `allow_unsupported` (inspect: it reports it
    in `Prepared.unsupported` beside the other boards)."""
    model_path = Path(model_path)
    calibration_path = Path(calibration_path) if calibration_path is not None else None
    board, kind = check_inputs(model_path, target, board_id, quantize, calibration_path)
    user_labels = class_labels.read_labels(labels_path) if labels_path is not None else None
    notes: list[str] = []

    if kind == "tflite":
        loaded = load.load_model(model_path)
        tflite, quantize, loader = loaded.tflite_bytes, "as-is", loaded.loader
        report = analyze(tflite)
        specs = [calibration.InputSpec(t.name, tuple(t.shape)) for t in report.inputs]
    else:
        from .convert_process import convert_in_child

        quantize = quantize or "int8"
        progress(f"Loading {model_path} ...")
        converted = convert_in_child(model_path, quantize, calibration_path, progress)
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
    samples = None
    if calibration_path is not None:
        samples = calibration.load_samples(calibration_path, specs, notes)
        if kind == "tflite":  # a Keras model's input ranges come from this very data
            notes += calibration.range_warnings(f"Calibration data '{calibration_path}'", samples, report.inputs)
    for note in notes:
        progress.warn(note)
    labels = class_labels.choose(report, tflite, user_labels, labels_path)

    try:
        resolution, unsupported = resolve(report, load_table(board["op_table"])), None
    except TinygenError as exc:
        if not allow_unsupported:
            raise
        resolution, unsupported = None, exc

    with HostRuntime(tflite) as runtime:
        progress("Measuring the tensor arena on the TFLite-Micro runtime ...")
        arena_min = measure_arena_min(runtime, progress, report.quantization)
        host = host_allocations(runtime)
        check_plan(report, host)
        arena = plan_arena(report, arena_min, host, board["tflm_library"], board["kernels"])
        golden = None
        if with_golden:
            progress("Choosing golden self-test vectors away from rounding ties ...")
            golden = make_golden(report, runtime, arena_min, samples, tflite,
                                 kernel_family(board["kernels"])["rounds_like_reference"])

    emitted = emitted_flash_bytes(report, samples, labels)
    return Prepared(model_path=model_path, model_kind=kind, loader=loader, quantize=quantize,
                    tflite=tflite, report=report, board=board, resolution=resolution,
                    unsupported=unsupported, arena=arena,
                    fit=fit(board, report, emitted, arena.arena_bytes), golden=golden,
                    input_specs=specs, samples=samples, labels=labels, warnings=notes,
                    emitted_bytes=emitted)


def emitted_flash_bytes(report: ModelReport, samples: list[np.ndarray] | None, labels: list[str]) -> int:
    """What tinygen puts in the firmware's flash: the model, the golden vectors (one input and
    one output set per golden sample) and the class names (strings and their pointer table)."""
    count = min(GOLDEN_SAMPLES, len(samples[0])) if samples else GOLDEN_SAMPLES
    golden = count * sum(t.byte_size for t in report.inputs + report.outputs)
    names = sum(len(label.encode()) + 1 for label in labels) + 4 * len(labels)
    return report.model_bytes + golden + names
