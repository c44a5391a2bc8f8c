"""`tinygen verify`: the same inputs through the Keras model, TensorFlow's TFLite interpreter
and the TFLite-Micro runtime, compared.

- Keras vs TFLite interpreter: what conversion and quantization cost. Reported, never a
  failure: the user chose the quantization.
- TFLite interpreter vs TFLite-Micro: the deployment. Both run the same bytes, so they must
  agree within the self-test's tolerance (one quantization step for integer outputs); more
  is a deployment bug (wrong quantization parameters in the I/O wrapper, a kernel bug, a
  mis-sized arena), and `verify` fails.

The two sides are deliberately independent. The interpreter side quantizes inputs and
dequantizes outputs with the parameters TensorFlow itself reads from the flatbuffer and runs
TFLite's reference kernels (TFLite-Micro's kernels derive from them; the default XNNPACK
kernels round differently). The TFLite-Micro side goes the firmware's way: tinygen's own
quantization (`golden.to_tensor_dtype` / `golden.to_float`, from the analyzed tensor
parameters) and the arena tinygen computed for the target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import calibration, golden
from .analyze import TensorInfo, first_output, positions
from .capture import capture_native_output
from .errors import TinygenError
from .pipeline import Prepared
from .tflm_host import HostRuntime

DEFAULT_SAMPLES = 32  # pseudo-random inputs when the user gives no data

Progress = Callable[[str], None]


@dataclass
class Difference:
    """Output difference between two runtimes over all samples, in dequantized units."""

    max_abs: float
    mean_abs: float
    max_steps: float | None  # integer outputs: the largest difference in quantization steps
    first_failure: dict | None  # {"sample", "output", "element", "got", "expected"} or None

    @property
    def ok(self) -> bool:
        return self.first_failure is None


@dataclass
class Verification:
    samples: int
    inputs_from: str
    arena_bytes: int
    keras_vs_tflite: Difference | None  # None: no Keras model to run (.tflite, SavedModel)
    keras_note: str  # why there is no Keras comparison, if there is none
    tflite_vs_tflm: Difference
    metric: str | None  # "top-1 accuracy", "binary accuracy", "mean squared error"
    scores: dict[str, float]  # "keras" / "tflite" / "tflm" -> metric value

    @property
    def ok(self) -> bool:
        return self.tflite_vs_tflm.ok

    def to_dict(self) -> dict:
        def difference(d: Difference | None):
            return None if d is None else asdict(d) | {"ok": d.ok}

        return {
            "ok": self.ok,
            "samples": self.samples,
            "inputs_from": self.inputs_from,
            "arena_bytes": self.arena_bytes,
            "keras_vs_tflite": difference(self.keras_vs_tflite),
            "tflite_vs_tflm": difference(self.tflite_vs_tflm),
            "allowed_steps": golden.INTEGER_TOLERANCE_STEPS,
            "metric": self.metric,
            "scores": self.scores,
        }


def verify(prepared: Prepared, eval_path: str | Path | None = None,
           progress: Progress = lambda _: None) -> Verification:
    report = prepared.report
    labels = None
    if eval_path is not None:
        inputs, labels = calibration.load_eval_data(eval_path, prepared.input_specs)
        inputs_from = f"evaluation data '{Path(eval_path).name}'"
    elif prepared.samples:
        inputs, inputs_from = prepared.samples, "the calibration data"
    else:
        raw = golden.deterministic_inputs(report, DEFAULT_SAMPLES)
        inputs = [golden.to_float(arr, t).astype(np.float32).reshape(DEFAULT_SAMPLES, *t.shape[1:])
                  for arr, t in zip(raw, report.inputs)]
        inputs_from = "pseudo-random inputs seeded by the model's SHA-256"
    count = len(inputs[0])

    keras_out, keras_note = None, ""
    if prepared.model_kind == "keras":
        progress(f"Running {count} samples through the Keras model ...")
        keras_out = _run_keras(prepared, inputs)
    else:
        keras_note = ("the input is a .tflite file" if prepared.model_kind == "tflite"
                      else "a SavedModel's outputs cannot be matched to the TFLite outputs by order")

    progress(f"Running {count} samples through the TFLite interpreter (reference kernels) ...")
    tflite_out, tflite_params = _run_tflite_interpreter(prepared.tflite, report.inputs, report.outputs, inputs)

    progress(f"Running {count} samples through TFLite-Micro with a {prepared.arena.arena_bytes:,}-byte arena ...")
    raw_inputs = [golden.to_tensor_dtype(arr.reshape(count, *t.shape), t)
                  for arr, t in zip(inputs, report.inputs)]
    with HostRuntime(prepared.tflite) as runtime:
        tflm_raw = runtime.run(prepared.arena.arena_bytes, raw_inputs, len(report.outputs))

    tflite_float = [_dequantize(raw, *params) for raw, params in zip(tflite_out, tflite_params)]
    tflm_float = [golden.to_float(raw, t).reshape(count, -1) for raw, t in zip(tflm_raw, report.outputs)]

    keras_vs_tflite = None
    if keras_out is not None:
        if [a.shape for a in keras_out] == [a.shape for a in tflite_float]:
            keras_vs_tflite = _difference(tflite_float, keras_out, scales=None)
        else:
            keras_note = "the Keras and TFLite outputs have different shapes"
    tflite_vs_tflm = _difference(tflm_float, tflite_float, scales=[p[0] for p in tflite_params])

    metric, scores = None, {}
    if labels is not None:  # labels are for the model's first output
        first = first_output(report.outputs)
        metric, score = _metric(labels, tflite_float[first])
        scores = {"tflite": score(tflite_float[first]), "tflm": score(tflm_float[first])}
        if keras_vs_tflite is not None:
            scores = {"keras": score(keras_out[first])} | scores
    return Verification(samples=count, inputs_from=inputs_from, arena_bytes=prepared.arena.arena_bytes,
                        keras_vs_tflite=keras_vs_tflite, keras_note=keras_note,
                        tflite_vs_tflm=tflite_vs_tflm, metric=metric, scores=scores)


def failure_error(result: Verification) -> TinygenError:
    f = result.tflite_vs_tflm.first_failure
    steps = (f" ({result.tflite_vs_tflm.max_steps:.0f} quantization steps at most; "
             f"{golden.INTEGER_TOLERANCE_STEPS} allowed)" if result.tflite_vs_tflm.max_steps is not None else "")
    return TinygenError(
        "TFLite-Micro disagrees with the TFLite interpreter on the same model bytes: first at "
        f"sample {f['sample']}, output {f['output']}, element {f['element']}: TFLite-Micro "
        f"{f['got']:.6g}, TFLite {f['expected']:.6g}{steps}. This is a deployment bug (I/O "
        "quantization, kernels or arena), not quantization loss.",
        hint="Rerun with TINYGEN_DEBUG=1 and report it with the model; do not deploy this build.")


def _run_keras(prepared: Prepared, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The original model's float outputs, (samples, elements) each, in the .tflite's output
    order. Loaded here, in this process: only `verify` needs the Keras model itself
    (conversion ran in a child). Inputs go in by name, outputs are matched by signature."""
    from . import load

    model = load.load_model(prepared.model_path).keras_model
    feed = {spec.name: arr for spec, arr in zip(prepared.input_specs, inputs)}
    with capture_native_output():
        outputs = model.predict(feed if len(feed) > 1 else inputs[0], batch_size=64, verbose=0)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    flat = [np.asarray(o, dtype=np.float64).reshape(len(inputs[0]), -1) for o in outputs]
    names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(flat))])
    order = positions(prepared.report.outputs, names[:len(flat)])
    return [arr for _, arr in sorted(zip(order, flat), key=lambda p: p[0])]


def _run_tflite_interpreter(model: bytes, input_tensors: list[TensorInfo], output_tensors: list[TensorInfo],
                            inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[float, int]]]:
    """Raw outputs (samples, elements) per output, and TensorFlow's (scale, zero point) for each."""
    with capture_native_output():
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(
            model_content=model,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        interpreter.allocate_tensors()
    # Matched by tensor index, so the order TensorFlow lists them in does not matter.
    in_details = {d["index"]: d for d in interpreter.get_input_details()}
    out_details = {d["index"]: d for d in interpreter.get_output_details()}
    ins = [in_details[t.index] for t in input_tensors]
    outs = [out_details[t.index] for t in output_tensors]
    count = len(inputs[0])
    results: list[list[np.ndarray]] = [[] for _ in outs]
    for n in range(count):
        for arr, d in zip(inputs, ins):
            interpreter.set_tensor(d["index"], _quantize(arr[n], d).reshape(d["shape"]))
        interpreter.invoke()
        for k, d in enumerate(outs):
            results[k].append(interpreter.get_tensor(d["index"]).reshape(-1).copy())
    return [np.stack(r) for r in results], [tuple(d["quantization"]) for d in outs]


def _quantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details["quantization"]
    dtype = np.dtype(details["dtype"])
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        quantized = golden.round_half_away(values.astype(np.float32) / np.float32(scale)) + zero_point
        return np.clip(quantized, info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _dequantize(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if np.issubdtype(raw.dtype, np.integer) and scale:
        return (raw.astype(np.float64) - zero_point) * scale
    return raw.astype(np.float64)


def _difference(got: list[np.ndarray], expected: list[np.ndarray], scales: list[float] | None) -> Difference:
    """`scales` given: check `got` against `expected` with the deployment tolerance (integer
    outputs: INTEGER_TOLERANCE_STEPS steps of that output's scale; float: the float tolerance)."""
    diffs = [np.abs(g - e) for g, e in zip(got, expected)]
    max_abs = max(float(d.max()) for d in diffs)
    mean_abs = float(np.mean(np.concatenate([d.reshape(-1) for d in diffs])))
    max_steps, first_failure = None, None
    if scales is not None:
        quantized = [s for s in scales if s]
        if quantized:
            max_steps = max(float((d / s).max()) for d, s in zip(diffs, scales) if s)
        for k, (g, e, d, s) in enumerate(zip(got, expected, diffs, scales)):
            if s:  # a quantized output: compare in steps (a little slack for float rounding)
                ok = d <= golden.INTEGER_TOLERANCE_STEPS * s * (1 + 1e-6)
            else:
                ok = golden.within_tolerance(g.astype(np.float32), e.astype(np.float32))
            if not ok.all():
                sample, element = (int(i) for i in np.argwhere(~ok)[0])
                first_failure = {"sample": sample, "output": k, "element": element,
                                 "got": float(g[sample, element]), "expected": float(e[sample, element])}
                break
    return Difference(max_abs=max_abs, mean_abs=mean_abs, max_steps=max_steps, first_failure=first_failure)


def _metric(labels: np.ndarray, reference: np.ndarray) -> tuple[str, Callable[[np.ndarray], float]]:
    """Top-1 accuracy for classifiers (integer or one-hot labels), binary accuracy for one
    sigmoid output with 0/1 labels, mean squared error otherwise."""
    count, width = reference.shape
    flat = labels.reshape(count, -1)
    integer_labels = np.issubdtype(labels.dtype, np.integer) or np.all(np.mod(labels, 1) == 0)
    if width > 1 and flat.shape[1] == 1 and integer_labels:
        truth = flat[:, 0].astype(np.int64)
        return "top-1 accuracy", lambda out: float(np.mean(out.argmax(axis=1) == truth))
    if width > 1 and flat.shape[1] == width and np.isin(flat, (0, 1)).all() and np.all(flat.sum(1) == 1):
        truth = flat.argmax(axis=1)
        return "top-1 accuracy", lambda out: float(np.mean(out.argmax(axis=1) == truth))
    if width == 1 and flat.shape[1] == 1 and np.isin(flat, (0, 1)).all():
        truth = flat[:, 0]
        return "binary accuracy", lambda out: float(np.mean((out[:, 0] > 0.5) == truth))
    if flat.shape[1] != width:
        raise TinygenError(
            f"The labels have {flat.shape[1]} value(s) per sample but the model's first output has "
            f"{width}; cannot score it.",
            hint="Labels are class indices (classifier) or arrays shaped like the output (regressor).")
    target = flat.astype(np.float64)
    return "mean squared error", lambda out: float(np.mean((out - target) ** 2))
