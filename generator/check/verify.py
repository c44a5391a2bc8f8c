"""`tinygen verify`: the same inputs through the TFLite-Micro runtime as the firmware runs it,
TFLite-Micro's own reference run, TensorFlow's TFLite interpreter and the Keras model.

The verdict (exit code) compares what the firmware does with what TFLite-Micro itself
computes, on the same model bytes and the same kernels:

- deployment: tinygen's I/O wrapper (its quantization of the inputs and dequantization of
  the outputs, from the parameters tinygen analyzed; `quantization.to_tensor_dtype` /
  `quantization.to_float`, mirrored by the firmware's model_set_input() / model_get_output())
  and the arena tinygen emits for the board, mapped to this 64-bit host
  (`ArenaPlan.host_arena_bytes`: an arena below the board's need is below the host's too);
- reference: TFLite-Micro with an ample arena, its inputs (de)quantized with the scale and
  zero point the runtime itself reads from the model.

Both run the host's TFLite-Micro reference kernels, so they must agree exactly: any
difference is a deployment bug (wrong scale or zero point in the wrapper, an arena too
small, a kernel computing something else), and `verify` fails. The board's optimized
kernels (CMSIS-NN, esp-nn) are checked on the board, by the boot self-test.

Both run the model as the board gets it (library/numerics.py may have rewritten it for the board's
library). For information only, never a failure:
- the model as given vs as rewritten for the board: what the rewrites changed;
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
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import TinygenError
from ..model import calibration, quantization
from ..model.analyze import TensorInfo, first_output, in_model_order
from ..model.capture import capture_native_output
from ..model.load import CONVERT_EXTRA_HINT, require_tensorflow
from ..model.tflm_host import HostRuntime
from ..progress import Progress
from . import golden
from .compare import Difference, difference

if TYPE_CHECKING:
    from ..pipeline import Prepared

DEFAULT_SAMPLES = 32  # pseudo-random inputs when the user gives no data
# The reference run's arena: ample, so that the arena tinygen computed is what is tested.
REFERENCE_ARENA_FACTOR = 4
REFERENCE_ARENA_MIN = 1 << 20
# Deployment vs reference: the same kernels on the same bytes agree exactly.
DEPLOYMENT_TOLERANCE_STEPS = 0


@dataclass
class Verification:
    samples: int
    inputs_from: str
    arena_bytes: int
    deployment: Difference | None  # None when the deployment run itself failed
    deployment_error: str  # why it failed to run ("" when it ran)
    rewrite_vs_original: Difference | None  # information: the model as given vs as the board gets it
    rewrites: list[str]  # what tinygen rewrote for the board's library (library/numerics.py)
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
            "rewrites": self.rewrites,
            "rewrite_vs_original": difference(self.rewrite_vs_original),
            "tflite_vs_tflm": difference(self.tflite_vs_tflm),
            "tflite_note": self.tflite_note or None,
            "keras_vs_tflite": difference(self.keras_vs_tflite),
            "keras_note": self.keras_note or None,
            "metric": self.metric,
            "scores": self.scores,
            "warnings": self.warnings,
        }


def firmware_model(prepared: Prepared) -> bytes:
    """The model bytes the firmware embeds (the seam a test replaces to play a deployment bug)."""
    return prepared.tflite


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
        inputs = [quantization.to_float(arr, t).astype(np.float32).reshape(DEFAULT_SAMPLES, *t.shape[1:])
                  for arr, t in zip(raw, report.inputs)]
        inputs_from = "pseudo-random inputs seeded by the model's SHA-256"
    count = len(inputs[0])
    arena = prepared.arena.arena_bytes
    host_arena = prepared.arena.host_arena_bytes  # the board's arena, as the host needs it

    progress(f"Running {count} samples through TFLite-Micro: as deployed (the board's {arena:,}-byte "
             f"arena, {host_arena:,} B on this 64-bit host) and as its reference run ...")
    raw_inputs = [quantization.to_tensor_dtype(arr.reshape(count, *t.shape), t)
                  for arr, t in zip(inputs, report.inputs)]
    reference_arena = max(REFERENCE_ARENA_MIN, REFERENCE_ARENA_FACTOR * host_arena)
    with HostRuntime(prepared.tflite) as runtime:
        reference = [out.reshape(count, -1) for out in runtime.run_float(reference_arena, inputs, len(report.outputs))]
    rewrite_change = None
    if prepared.adapted.applied:  # what tinygen's rewrites for the board did to the outputs
        with HostRuntime(prepared.original_tflite) as runtime:
            original = [out.reshape(count, -1) for out in runtime.run_float(reference_arena, inputs, len(report.outputs))]
        rewrite_change = difference(reference, original, [t.scale for t in report.outputs])
    deployment, deployment_error = None, ""
    with HostRuntime(firmware_model(prepared)) as runtime:
        try:
            deployed_raw = runtime.run(host_arena, raw_inputs, len(report.outputs))
        except TinygenError as exc:
            deployment_error = exc.message
        else:
            deployed = [quantization.to_float(raw, t).reshape(count, -1) for raw, t in zip(deployed_raw, report.outputs)]
            deployment = difference(deployed, reference, [t.scale for t in report.outputs],
                                     DEPLOYMENT_TOLERANCE_STEPS)

    tflite_out, tflite_note = None, ""
    if importlib.util.find_spec("tensorflow") is None:
        tflite_note = f"TensorFlow is not installed ({CONVERT_EXTRA_HINT})"
    else:
        try:
            tflite_out, tflite_scales = _run_tflite_interpreter(prepared.tflite, report.inputs,
                                                                report.outputs, inputs, progress)
        except (RuntimeError, ValueError) as exc:  # e.g. a TFLite-Micro custom op TensorFlow lacks
            said = str(exc).strip().splitlines()
            tflite_note = ("TensorFlow's TFLite interpreter cannot run this model"
                           + (f" ({said[0]})" if said else ""))
    tflite_vs_tflm = (None if tflite_out is None
                      else difference(reference, tflite_out, tflite_scales, tolerance_steps=None))

    keras_out, keras_vs_tflite, keras_note = None, None, ""
    if prepared.model_kind != "keras":
        keras_note = ("the input is a .tflite file" if prepared.model_kind == "tflite"
                      else "a SavedModel's outputs cannot be matched to the TFLite outputs by order")
    elif tflite_out is None:
        keras_note = tflite_note
    else:
        progress(f"Running {count} samples through the Keras model ...")
        try:
            keras_out = _run_keras(prepared, inputs)
        except TinygenError as exc:
            keras_note = f"the Keras model could not be run here ({exc.message})"
        except Exception as exc:  # noqa: BLE001 - Keras' own failure: the comparison is information only
            keras_note = f"the Keras model could not be run here ({type(exc).__name__}: {exc})"
        else:
            if [a.shape for a in keras_out] == [a.shape for a in tflite_out]:
                keras_vs_tflite = difference(tflite_out, keras_out, scales=None, tolerance_steps=None)
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
                        rewrite_vs_original=rewrite_change,
                        rewrites=[step.describe() for step in prepared.adapted.applied],
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
    from ..model import load
    from ..model.convert import output_names

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
            interpreter.set_tensor(d["index"], quantization.quantize(arr[n], scale, zero_point, d["dtype"])
                                   .reshape(d["shape"]))
        interpreter.invoke()
        for k, d in enumerate(outs):
            results[k].append(quantization.dequantize(interpreter.get_tensor(d["index"]).reshape(-1).copy(),
                                                *d["quantization"]))
    progress.bar(label, count, count)
    scales = [d["quantization"][0] if np.issubdtype(d["dtype"], np.integer) and d["quantization"][0] else None
              for d in outs]
    return [np.stack(r) for r in results], scales


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
