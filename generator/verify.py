"""`tinygen verify`: the same inputs through the TFLite-Micro runtime as the firmware runs it,
TFLite-Micro's own reference run, TensorFlow's TFLite interpreter and the Keras model.

The verdict (exit code) compares what the firmware does with what TFLite-Micro itself
computes, on the same model bytes and the same kernels:

- deployment: tinygen's I/O wrapper (its quantization of the inputs and dequantization of
  the outputs, from the parameters tinygen analyzed; `golden.to_tensor_dtype` /
  `golden.to_float`, mirrored by the firmware's model_set_input() / model_get_output())
  and the arena tinygen emits for the board, mapped to this 64-bit host
  (`ArenaPlan.host_arena_bytes`: an arena below the board's need is below the host's too);
- reference: TFLite-Micro with an ample arena, its inputs (de)quantized with the scale and
  zero point the runtime itself reads from the model.

Both run the host's TFLite-Micro reference kernels, so they must agree exactly: any
difference is a deployment bug (wrong scale or zero point in the wrapper, an arena too
small, a kernel computing something else), and `verify` fails. The board's optimized
kernels (CMSIS-NN, esp-nn) are checked on the board, by the boot self-test.

For information only, never a failure:
- TFLite interpreter vs TFLite-Micro: two implementations of the same kernels. They round
  some near-ties differently (e.g. a fully-connected output at -97.5006 becomes -98 in one
  and -97 in the other), and the layers after it, softmax above all, can amplify one step
  into several; what matters to a classifier is whether the top-1 class agrees, printed
  beside it.
- Keras vs TFLite interpreter: what conversion and quantization cost.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import calibration, golden
from .analyze import TensorInfo, first_output, in_model_order
from .capture import capture_native_output
from .context import firmware_model
from .errors import TinygenError
from .pipeline import CONVERT_EXTRA_HINT, Prepared, require_tensorflow
from .progress import Progress
from .tflm_host import HostRuntime

DEFAULT_SAMPLES = 32  # pseudo-random inputs when the user gives no data
# The reference run's arena: ample, so that the arena tinygen computed is what is tested.
REFERENCE_ARENA_FACTOR = 4
REFERENCE_ARENA_MIN = 1 << 20
# Deployment vs reference: the same kernels on the same bytes agree exactly.
DEPLOYMENT_TOLERANCE_STEPS = 0


@dataclass
class Difference:
    """Output difference between two runs over all samples, in dequantized units."""

    max_abs: float
    mean_abs: float
    max_steps: float | None  # integer outputs: the largest difference in quantization steps
    top1_agreement: float | None  # outputs of several values: share of samples whose argmax agrees
    first_failure: dict | None  # {"sample", "output", "element", "got", "expected"} or None

    @property
    def ok(self) -> bool:
        return self.first_failure is None


@dataclass
class Verification:
    samples: int
    inputs_from: str
    arena_bytes: int
    deployment: Difference | None  # None when the deployment run itself failed
    deployment_error: str  # why it failed to run ("" when it ran)
    tflite_vs_tflm: Difference | None  # information; None: not compared (see tflite_note)
    tflite_note: str
    keras_vs_tflite: Difference | None  # information; None: not compared (see keras_note)
    keras_note: str
    metric: str | None  # "top-1 accuracy", "binary accuracy", "mean squared error"
    scores: dict[str, float]  # "keras" / "tflite" / "tflm" -> metric value
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return self.deployment is not None and self.deployment.ok

    def to_dict(self) -> dict:
        def difference(d: Difference | None):
            return None if d is None else asdict(d) | {"ok": d.ok}

        return {
            "ok": self.ok,
            "samples": self.samples,
            "inputs_from": self.inputs_from,
            "arena_bytes": self.arena_bytes,
            "deployment_vs_reference": difference(self.deployment) if self.deployment else None,
            "deployment_error": self.deployment_error or None,
            "allowed_steps": DEPLOYMENT_TOLERANCE_STEPS,
            "tflite_vs_tflm": difference(self.tflite_vs_tflm),
            "tflite_note": self.tflite_note or None,
            "keras_vs_tflite": difference(self.keras_vs_tflite),
            "keras_note": self.keras_note or None,
            "metric": self.metric,
            "scores": self.scores,
            "warnings": self.warnings,
        }


def verify(prepared: Prepared, eval_path: str | Path | None = None,
           progress: Progress = Progress()) -> Verification:
    report = prepared.report
    labels, warnings = None, []
    if eval_path is not None:
        inputs, labels = calibration.load_eval_data(eval_path, prepared.input_specs)
        inputs_from = f"evaluation data '{Path(eval_path).name}'"
        warnings = calibration.range_warnings(f"Evaluation data '{eval_path}'", inputs, report.inputs)
        for note in warnings:
            progress.warn(note)
    elif prepared.samples:
        inputs, inputs_from = prepared.samples, "the calibration data"
    else:
        raw = golden.deterministic_inputs(report, DEFAULT_SAMPLES)
        inputs = [golden.to_float(arr, t).astype(np.float32).reshape(DEFAULT_SAMPLES, *t.shape[1:])
                  for arr, t in zip(raw, report.inputs)]
        inputs_from = "pseudo-random inputs seeded by the model's SHA-256"
    count = len(inputs[0])
    arena = prepared.arena.arena_bytes
    host_arena = prepared.arena.host_arena_bytes  # the board's arena, as the host needs it

    progress(f"Running {count} samples through TFLite-Micro: as deployed (the board's {arena:,}-byte "
             f"arena, {host_arena:,} B on this 64-bit host) and as its reference run ...")
    raw_inputs = [golden.to_tensor_dtype(arr.reshape(count, *t.shape), t)
                  for arr, t in zip(inputs, report.inputs)]
    with HostRuntime(prepared.tflite) as runtime:
        reference = [out.reshape(count, -1) for out in runtime.run_float(
            max(REFERENCE_ARENA_MIN, REFERENCE_ARENA_FACTOR * host_arena), inputs, len(report.outputs))]
    deployment, deployment_error = None, ""
    with HostRuntime(firmware_model(prepared)) as runtime:
        try:
            deployed_raw = runtime.run(host_arena, raw_inputs, len(report.outputs))
        except TinygenError as exc:
            deployment_error = exc.message
        else:
            deployed = [golden.to_float(raw, t).reshape(count, -1) for raw, t in zip(deployed_raw, report.outputs)]
            deployment = _difference(deployed, reference, [t.scale for t in report.outputs],
                                     DEPLOYMENT_TOLERANCE_STEPS)

    tflite_out, tflite_note = None, ""
    if importlib.util.find_spec("tensorflow") is None:
        tflite_note = f"TensorFlow is not installed ({CONVERT_EXTRA_HINT})"
    else:
        tflite_out, tflite_scales = _run_tflite_interpreter(prepared.tflite, report.inputs,
                                                            report.outputs, inputs, progress)
    tflite_vs_tflm = (None if tflite_out is None
                      else _difference(reference, tflite_out, tflite_scales, tolerance_steps=None))

    keras_out, keras_vs_tflite, keras_note = None, None, ""
    if prepared.model_kind != "keras":
        keras_note = ("the input is a .tflite file" if prepared.model_kind == "tflite"
                      else "a SavedModel's outputs cannot be matched to the TFLite outputs by order")
    elif tflite_out is None:
        keras_note = tflite_note
    else:
        progress(f"Running {count} samples through the Keras model ...")
        keras_out = _run_keras(prepared, inputs)
        if [a.shape for a in keras_out] == [a.shape for a in tflite_out]:
            keras_vs_tflite = _difference(tflite_out, keras_out, scales=None, tolerance_steps=None)
        else:
            keras_note = "the Keras and TFLite outputs have different shapes"

    metric, scores = None, {}
    if labels is not None:  # labels are for the model's first output
        first = first_output(report.outputs)
        metric, score = _metric(labels, reference[first])
        scores = {"tflm": score(reference[first])}
        if tflite_out is not None:
            scores = {"tflite": score(tflite_out[first])} | scores
        if keras_vs_tflite is not None:
            scores = {"keras": score(keras_out[first])} | scores
    return Verification(samples=count, inputs_from=inputs_from, arena_bytes=arena,
                        deployment=deployment, deployment_error=deployment_error,
                        tflite_vs_tflm=tflite_vs_tflm, tflite_note=tflite_note,
                        keras_vs_tflite=keras_vs_tflite, keras_note=keras_note,
                        metric=metric, scores=scores, warnings=warnings)


def failure_error(result: Verification) -> TinygenError:
    hint = ("Do not deploy this build. Report it with the model and the command "
            "(TINYGEN_DEBUG=1 adds tracebacks to internal errors, not to this check).")
    if result.deployment is None:
        return TinygenError(
            f"TFLite-Micro could not run the model as the firmware would, with the emitted "
            f"{result.arena_bytes:,}-byte arena: {result.deployment_error}", hint=hint)
    f = result.deployment.first_failure
    steps = (f" ({result.deployment.max_steps:.0f} quantization step(s) apart)"
             if result.deployment.max_steps is not None else "")
    return TinygenError(
        "The deployed model disagrees with TFLite-Micro's own reference run on the same model "
        f"bytes and kernels: first at sample {f['sample']}, output {f['output']}, element "
        f"{f['element']}: deployed {f['got']:.6g}, reference {f['expected']:.6g}{steps}. This "
        "is a deployment bug (I/O quantization, arena or kernels), not quantization loss.",
        hint=hint)


def _run_keras(prepared: Prepared, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The original model's float outputs, (samples, elements) each, in the .tflite's output
    order. Loaded here, in this process: only `verify` needs the Keras model itself
    (conversion ran in a child). Inputs go in by name, outputs are matched by signature."""
    from . import load
    from .convert import output_names

    require_tensorflow("Running the Keras model")
    loaded = load.load_model(prepared.model_path)
    model = loaded.keras_model
    feed = {spec.name: arr for spec, arr in zip(prepared.input_specs, inputs)}
    with capture_native_output():
        outputs = model.predict(feed if len(feed) > 1 else inputs[0], batch_size=64, verbose=0)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    flat = [np.asarray(o, dtype=np.float64).reshape(len(inputs[0]), -1) for o in outputs]
    names = output_names(loaded) or [f"output_{i}" for i in range(len(flat))]
    return in_model_order(prepared.report.outputs, names[:len(flat)], flat)


def _run_tflite_interpreter(model: bytes, input_tensors: list[TensorInfo], output_tensors: list[TensorInfo],
                            inputs: list[np.ndarray], progress: Progress) -> tuple[list[np.ndarray], list[float | None]]:
    """Float outputs (samples, elements) per output, (de)quantized with the parameters
    TensorFlow reads, and each output's scale (None for float outputs)."""
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
    label = "TFLite interpreter (reference kernels)"
    for n in range(count):
        if n % max(1, count // 50) == 0:
            progress.bar(label, n, count)
        for arr, d in zip(inputs, ins):
            scale, zero_point = d["quantization"]
            interpreter.set_tensor(d["index"], golden.quantize(arr[n], scale, zero_point, d["dtype"])
                                   .reshape(d["shape"]))
        interpreter.invoke()
        for k, d in enumerate(outs):
            results[k].append(golden.dequantize(interpreter.get_tensor(d["index"]).reshape(-1).copy(),
                                                *d["quantization"]))
    progress.bar(label, count, count)
    scales = [d["quantization"][0] if np.issubdtype(d["dtype"], np.integer) and d["quantization"][0] else None
              for d in outs]
    return [np.stack(r) for r in results], scales


def _difference(got: list[np.ndarray], expected: list[np.ndarray], scales: list[float | None] | None,
                tolerance_steps: int | None = None) -> Difference:
    """Differences of `got` from `expected`. With `tolerance_steps`, also the first element
    beyond it: integer outputs (a scale in `scales`) compare in quantization steps, float
    ones with the float tolerance."""
    diffs = [np.abs(g - e) for g, e in zip(got, expected)]
    max_abs = max(float(d.max()) for d in diffs)
    mean_abs = float(np.mean(np.concatenate([d.reshape(-1) for d in diffs])))
    scales = scales or [None] * len(got)
    steps = [d / s for d, s in zip(diffs, scales) if s]
    max_steps = max(float(np.round(x.max(), 6)) for x in steps) if steps else None
    wide = [(g, e) for g, e in zip(got, expected) if g.shape[1] > 1]
    top1 = (float(np.mean(np.concatenate([g.argmax(1) == e.argmax(1) for g, e in wide])))
            if wide else None)
    first_failure = None
    if tolerance_steps is not None:
        for k, (g, e, d, s) in enumerate(zip(got, expected, diffs, scales)):
            if s:  # a quantized output: compare in steps (a little slack for float rounding)
                ok = d <= tolerance_steps * s + 1e-6 * s
            else:
                ok = golden.within_tolerance(g.astype(np.float32), e.astype(np.float32))
            if not ok.all():
                sample, element = (int(i) for i in np.argwhere(~ok)[0])
                first_failure = {"sample": sample, "output": k, "element": element,
                                 "got": float(g[sample, element]), "expected": float(e[sample, element])}
                break
    return Difference(max_abs=max_abs, mean_abs=mean_abs, max_steps=max_steps, top1_agreement=top1,
                      first_failure=first_failure)


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
