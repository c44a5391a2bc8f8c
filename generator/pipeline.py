"""The whole flow in one place: model file -> everything a project or a report needs.

    load + convert (Keras and SavedModel only, in a child process) -> analyze -> resolve ops
    -> measure arena -> golden vectors

`new` and `inspect` both call `prepare`; rendering and printing happen elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import calibration, load
from .analyze import ModelReport, analyze, positions
from .arena import ArenaPlan, measure_arena_min, plan_arena
from .boards import Board, get_board
from .convert_process import convert_in_child
from .errors import TinygenError
from .fit import Fit, fit
from .golden import GoldenVectors, make_golden
from .resolver import Resolution, load_table, resolve
from .tflm_host import HostRuntime

Progress = Callable[[str], None]


@dataclass
class Prepared:
    model_path: Path
    model_kind: str  # "tflite" | "keras" | "saved_model"
    loader: str
    quantize: str  # what was asked for ("as-is" for a .tflite)
    tflite: bytes
    report: ModelReport
    board: Board
    resolution: Resolution
    arena: ArenaPlan
    fit: Fit
    golden: GoldenVectors | None
    input_specs: list[calibration.InputSpec]  # the inputs as the user names them, in the
                                              # .tflite's order (report.inputs)
    samples: list[np.ndarray] | None  # the calibration data, float32, one array per input


def prepare(model_path: str | Path, target: str, board_id: str | None = None,
            quantize: str | None = None, calibration_path: str | Path | None = None,
            with_golden: bool = True, progress: Progress = lambda _: None) -> Prepared:
    board = get_board(target, board_id)  # unknown target/board fails before any work
    model_path = Path(model_path)
    kind = load.model_kind(model_path)

    if kind == "tflite":
        if quantize not in (None, "as-is"):
            raise TinygenError(
                f"'{model_path.name}' is already a converted .tflite model; --quantize applies "
                "to Keras models and SavedModels only.",
                hint="Drop --quantize, or pass the Keras model instead.")
        loaded = load.load_model(model_path)
        tflite, quantize, loader = loaded.tflite_bytes, "as-is", loaded.loader
        report = analyze(tflite)
        specs = [calibration.InputSpec(t.name, tuple(t.shape)) for t in report.inputs]
    else:
        quantize = quantize or "int8"
        progress(f"Loading {model_path} ...")
        converted = convert_in_child(model_path, quantize,
                                     Path(calibration_path) if calibration_path is not None else None,
                                     progress)
        tflite, loader = converted.tflite, converted.loader
        report = analyze(tflite)
        # The converter may order a multi-input model's inputs differently from Keras: from
        # here on everything is in the .tflite's order, matched by name.
        order = positions(report.inputs, [spec.name for spec in converted.input_specs])
        specs = [spec for _, spec in sorted(zip(order, converted.input_specs), key=lambda p: p[0])]
        if quantize == "dynamic" and report.quantization == "none":
            progress("Note: --quantize dynamic left every weight float32 (the converter only "
                     "quantizes weight tensors of 1,024 elements or more).")
    samples = calibration.load_samples(calibration_path, specs) if calibration_path is not None else None
    resolution = resolve(report, load_table(board["op_table"]))

    with HostRuntime(tflite) as runtime:
        progress("Measuring the tensor arena on the TFLite-Micro runtime ...")
        arena_min = measure_arena_min(runtime, progress, report.quantization)
        arena = plan_arena(report, arena_min, board["kernels"])
        golden = make_golden(report, runtime, arena.arena_bytes, samples) if with_golden else None

    return Prepared(model_path=model_path, model_kind=kind, loader=loader, quantize=quantize,
                    tflite=tflite, report=report, board=board, resolution=resolution, arena=arena,
                    fit=fit(board, report.model_bytes, arena.arena_bytes), golden=golden,
                    input_specs=specs, samples=samples)
