"""Stage 2: Keras model / SavedModel + quantization choice + calibration data -> .tflite bytes.

Runs TensorFlow's own TFLite converter. Batch is fixed to 1 (microcontrollers run one
sample at a time and TFLite-Micro needs static shapes).
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import TinygenError
from ..progress import Progress
from .calibration import InputSpec
from .capture import capture_native_output
from .load import LoadedModel

QUANTIZATIONS = {
    "int8": "full integer: int8 weights, activations, input and output (needs calibration data)",
    "float16": "float16 weights, float32 compute",
    "dynamic": "dynamic-range: int8 weights, float32 activations",
    "none": "float32 throughout",
}

def input_specs(loaded: LoadedModel) -> list[InputSpec]:
    """The model's inputs with batch fixed to 1; dynamic non-batch dimensions are an error."""
    raw: list[tuple[str, tuple]] = []
    if loaded.kind == "keras":
        model = loaded.keras_model
        try:
            tensors = list(model.inputs)
        except (AttributeError, ValueError):
            tensors = []
        if not tensors:
            raise TinygenError(
                f"The Keras model '{loaded.path}' has no defined inputs (a subclassed model "
                "that was never built?).",
                hint="Build the model with an Input layer, or export it to .tflite yourself.",
            )
        for t in tensors:
            name = getattr(t, "name", "input") or "input"
            raw.append((name.split(":")[0], tuple(t.shape)))
    elif loaded.kind == "saved_model":
        sig = _saved_model_signature(loaded)
        for name, spec in sorted(sig.structured_input_signature[1].items()):
            raw.append((name, tuple(spec.shape.as_list()) if spec.shape.rank is not None else ()))
    else:
        raise ValueError("input_specs() is for Keras models and SavedModels")

    specs = []
    for name, shape in raw:
        if not shape:
            raise TinygenError(f"Input '{name}' of '{loaded.path}' has an unknown rank; "
                               "TFLite-Micro needs static shapes.")
        dynamic = [i for i, d in enumerate(shape) if d is None and i > 0]
        if dynamic:
            shown = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
            raise TinygenError(
                f"Input '{name}' has shape {shown} with dynamic dimension(s) at axis "
                f"{', '.join(map(str, dynamic))}. TFLite-Micro needs every dimension but the "
                "batch fixed.",
                hint="Rebuild the model with a fixed input shape, e.g. keras.Input(shape=(96, 96, 1)).",
            )
        specs.append(InputSpec(name=name, shape=(1, *[int(d) for d in shape[1:]])))
    return specs


def integer_input_types(loaded: LoadedModel) -> list[str | None]:
    """Per input (input_specs' order), its integer or bool dtype name (e.g. 'int32' for the
    indices an Embedding looks up), or None for a float input. Integer inputs stay integers in
    the .tflite: quantizing indices to int8 would look up other rows."""
    if loaded.kind == "keras":
        dtypes = [getattr(t, "dtype", None) for t in loaded.keras_model.inputs]
    else:
        signature = _saved_model_signature(loaded)
        dtypes = [spec.dtype for _, spec in sorted(signature.structured_input_signature[1].items())]
    names = [str(getattr(d, "name", d)) for d in dtypes]
    return [name if name == "bool" or name.startswith(("int", "uint")) else None for name in names]


def output_names(loaded: LoadedModel) -> list[str]:
    """The Keras model's output names in its own order (the converter calls them output_<i>
    in the signature); [] for a SavedModel, whose signature already carries its names."""
    if loaded.kind != "keras":
        return []
    model = loaded.keras_model
    names = getattr(model, "output_names", None)  # functional models: the output layers' names
    if not names:  # Sequential: the layer that made each output tensor
        names = []
        for tensor in getattr(model, "outputs", None) or []:
            history = getattr(tensor, "_keras_history", None)
            producer = getattr(history, "operation", None) or getattr(history, "layer", None)
            names.append(getattr(producer, "name", None) or "")
    return [str(name) for name in names]


# How far calibration statistics may stray from an input Normalization layer's (adapted to
# the training data) before tinygen warns: mean off by this many training standard
# deviations, or spread this many times larger/smaller.
NORMALIZATION_MEAN_SIGMAS = 3.0
NORMALIZATION_SPREAD_RATIO = 5.0


def normalization_warnings(loaded: LoadedModel, samples: list[np.ndarray], specs: list[InputSpec]) -> list[str]:
    """What the Keras model itself says about its inputs' scale: a Normalization layer holds
    the training data's mean and variance, a Rescaling layer the factor the model applies
    itself. Calibration data far from them is scaled unlike the training data."""
    if loaded.kind != "keras":
        return []
    model = loaded.keras_model
    notes = []
    inputs = list(getattr(model, "inputs", []) or [])
    for layer in getattr(model, "layers", []):
        kind = type(layer).__name__
        if kind not in ("Normalization", "Rescaling"):
            continue
        try:
            feeding = [i for i, tensor in enumerate(inputs)
                       if any(tensor is node_input for node_input in _layer_inputs(layer))]
        except Exception:  # a layer graph tinygen cannot walk: no warning
            continue
        for position in feeding:
            data, name = samples[position], specs[position].name
            if kind == "Normalization":
                note = _normalization_note(layer, data, name)
            else:
                note = _rescaling_note(layer, data, name)
            if note:
                notes.append(note)
    return notes


def _layer_inputs(layer) -> list:
    node_inputs = []
    for node in getattr(layer, "_inbound_nodes", []):
        tensors = getattr(node, "input_tensors", None) or []
        node_inputs.extend(tensors if isinstance(tensors, (list, tuple)) else [tensors])
    return node_inputs


def _normalization_note(layer, data: np.ndarray, name: str) -> str | None:
    weights = [np.asarray(w, dtype=np.float64) for w in layer.get_weights()]
    if len(weights) < 2:
        return None
    mean, variance = np.broadcast_to(weights[0].reshape(-1), (data.shape[-1],)), \
        np.broadcast_to(weights[1].reshape(-1), (data.shape[-1],))
    std = np.sqrt(np.maximum(variance, 1e-12))
    flat = data.reshape(-1, data.shape[-1]).astype(np.float64)
    mean_off = float(np.max(np.abs(flat.mean(0) - mean) / std))
    spread = flat.std(0) / std
    ratio = float(np.max(np.maximum(spread, 1 / np.maximum(spread, 1e-12))))
    if mean_off > NORMALIZATION_MEAN_SIGMAS or ratio > NORMALIZATION_SPREAD_RATIO:
        return (f"Calibration data for input '{name}' does not look like the model's training data: "
                f"its Normalization layer '{layer.name}' was adapted to a mean and spread that the "
                f"calibration data misses (mean off by {mean_off:.1f} training standard deviations, "
                f"spread {ratio:.1f}x off). Calibrate with samples preprocessed like the training data.")
    return None


def _rescaling_note(layer, data: np.ndarray, name: str) -> str | None:
    scale = float(np.max(np.abs(np.asarray(getattr(layer, "scale", 1.0), dtype=np.float64))))
    if scale >= 1 or data.size == 0:
        return None
    largest = float(np.max(np.abs(data)))
    # The model multiplies its input by `scale` (e.g. 1/255): inputs that are already that
    # small were probably rescaled twice.
    if largest * scale < 0.05:
        return (f"Calibration data for input '{name}' reaches only {largest:.3g}, but the model's "
                f"Rescaling layer '{layer.name}' multiplies inputs by {scale:.4g} itself: were the "
                "samples rescaled before saving? Calibrate with raw inputs, as the model gets them.")
    return None


def _saved_model_signature(loaded: LoadedModel):
    import tensorflow as tf

    with capture_native_output():
        obj = tf.saved_model.load(str(loaded.saved_model_dir))
    if "serving_default" not in obj.signatures:
        raise TinygenError(f"SavedModel '{loaded.path}' has no 'serving_default' signature.")
    return obj.signatures["serving_default"]


def convert(
    loaded: LoadedModel,
    quantize: str,
    samples: list[np.ndarray] | None,
    progress: Progress = Progress(),
    per_channel_dense: bool = True,
) -> bytes:
    """Convert with the TFLite converter. `samples` (one array per input) calibrate int8.
    `per_channel_dense=False`: Dense layers (FULLY_CONNECTED) get one weight scale per layer
    instead of one per output channel, for libraries whose kernel reads only one
    (data/numerics.yaml)."""
    if quantize not in QUANTIZATIONS:
        raise TinygenError(f"Unknown quantization '{quantize}'; choose one of {', '.join(QUANTIZATIONS)}.")
    if quantize == "int8" and not samples:
        raise TinygenError(
            "int8 quantization needs representative input data to calibrate activation ranges.",
            hint="Pass --calibration-data FILE.npy (an array of 100-500 real input samples), "
            "or choose --quantize float16/dynamic/none.",
        )
    specs = input_specs(loaded)
    with capture_native_output() as native:
        try:
            import tensorflow as tf

            integer_types = integer_input_types(loaded)
            converter = _make_converter(tf, loaded, specs, integer_types, progress)
            _configure(tf, converter, quantize, samples, integer_types, progress)
            if not per_channel_dense:
                # TensorFlow's own switch (lite/python/lite.py); the converter otherwise gives
                # FULLY_CONNECTED weights per-channel scales by default (TensorFlow 2.21).
                converter._experimental_disable_per_channel_quantization_for_dense_layers = True
            progress(f"Converting with the TFLite converter (TensorFlow {tf.__version__}, {quantize})")
            return bytes(converter.convert())
        except TinygenError:
            raise
        except Exception as exc:
            error = exc
    raise _conversion_error(error, native.tail())


def _make_converter(tf, loaded: LoadedModel, specs: list[InputSpec], integer_types: list[str | None],
                    progress: Progress):
    if loaded.kind == "saved_model":
        # The SavedModel's own signature is used as is; a dynamic batch becomes 1 in the
        # flatbuffer's `shape`, which is what TFLite-Micro reads.
        return tf.lite.TFLiteConverter.from_saved_model(str(loaded.saved_model_dir))
    return tf.lite.TFLiteConverter.from_keras_model(_with_batch_one(loaded, specs, integer_types, progress))


def _micro_layers(keras_module, model, progress: Progress):
    """The model with Keras 3 layers whose conversion TFLite-Micro cannot run replaced by
    equivalent ones it can (`_micro_layer`). A model that cannot be cloned (subclassed) is
    kept as it is."""
    replacements = {layer.name: found for layer in getattr(model, "layers", [])
                    if (found := _micro_layer(keras_module, layer)) is not None}
    if not replacements:
        return model

    def swap(layer):
        if layer.name not in replacements:
            return layer.__class__.from_config(layer.get_config())
        replacement, said = replacements[layer.name]
        progress(said)
        return replacement

    try:
        clone = keras_module.models.clone_model(model, clone_function=swap)
        clone.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - a model clone_model cannot rebuild: convert it unchanged
        return model
    return clone


def _micro_layer(keras_module, layer):
    """(replacement layer, what to tell the user), or None for a layer converted as it is.

    - UpSampling2D(interpolation="nearest") repeats rows and columns (ops.repeat,
      keras/src/layers/reshaping/up_sampling2d.py:149-152), which converts to TILE, an operator
      no pinned TFLite-Micro has; Resizing to the same size with nearest interpolation becomes
      RESIZE_NEAREST_NEIGHBOR, which picks the same pixels for a whole-number factor.
    - UpSampling1D repeats each step `size` times the same way (ops.repeat,
      keras/src/layers/reshaping/up_sampling1d.py): it is run as a RESIZE_NEAREST_NEIGHBOR of
      the steps seen as an image one column wide (`_nearest_upsampling_1d`), which picks the
      same steps.
    - Embedding looks its rows up with ops.take, which first wraps negative indices
      (tf.where(i < 0, i + n, i), keras 3.15 keras/src/backend/tensorflow/numpy.py:3056-3058):
      LESS, ADD and SELECT, and TFLite-Micro has no SELECT (only SELECT_V2, and not for int32).
      A plain GATHER looks up the same rows for every index an Embedding is defined for (0 to
      input_dim - 1). Not for mask_zero (the mask feeds later layers) or a quantized Embedding.
    """
    layers = keras_module.layers
    if isinstance(layer, layers.UpSampling2D) and layer.interpolation == "nearest" \
            and layer.data_format == "channels_last":
        height, width = layer.output.shape[1:3]
        said = (f"UpSampling2D '{layer.name}' is converted as Resizing({height}, {width}, interpolation='nearest'): "
                "the same values, as RESIZE_NEAREST_NEIGHBOR (TFLite-Micro has no TILE)")
        return layers.Resizing(height, width, interpolation="nearest", name=layer.name), said
    if isinstance(layer, layers.UpSampling1D):
        said = (f"UpSampling1D '{layer.name}' is converted as a nearest-neighbour resize of its steps: the same "
                "values, as RESIZE_NEAREST_NEIGHBOR (TFLite-Micro has no TILE)")
        return _nearest_upsampling_1d(keras_module)(layer.size, name=layer.name), said
    if isinstance(layer, layers.Embedding) and not layer.mask_zero \
            and getattr(layer, "quantization_mode", None) is None:
        said = (f"Embedding '{layer.name}' is converted as one GATHER: the same rows for indices 0 to "
                f"{layer.input_dim - 1} (Keras 3 wraps negative indices with SELECT, which TFLite-Micro lacks)")
        return _gather_embedding(keras_module)(layer.input_dim, layer.output_dim, name=layer.name), said
    return None


def _nearest_upsampling_1d(keras_module):
    """A Keras 3 layer that repeats each step `size` times as UpSampling1D does, through a
    RESHAPE to [batch, steps, 1, channels], a nearest-neighbour resize to steps * size rows (its
    half-pixel centres pick row j // size) and a RESHAPE back."""
    import tensorflow as tf

    class NearestUpSampling1D(keras_module.layers.Layer):
        def __init__(self, size: int, **kwargs):
            super().__init__(**kwargs)
            self.size = size

        def call(self, steps):
            count, channels = steps.shape[1], steps.shape[2]
            column = tf.reshape(steps, [-1, count, 1, channels])
            resized = tf.image.resize(column, [count * self.size, 1], method="nearest")
            return tf.reshape(resized, [-1, count * self.size, channels])

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[1] * self.size, input_shape[2])

    return NearestUpSampling1D


def _gather_embedding(keras_module):
    """A Keras 3 layer with Embedding's weight that looks rows up with tf.gather alone."""
    import tensorflow as tf

    class GatherEmbedding(keras_module.layers.Layer):
        def __init__(self, input_dim: int, output_dim: int, **kwargs):
            super().__init__(**kwargs)
            self.input_dim, self.output_dim = input_dim, output_dim

        def build(self, input_shape):
            self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim), name="embeddings")

        def call(self, indices):
            if indices.dtype not in (tf.int32, tf.int64):  # as Embedding.call casts
                indices = tf.cast(indices, tf.int32)
            return tf.gather(self.embeddings, indices)

        def compute_output_shape(self, input_shape):
            return (*input_shape, self.output_dim)

    return GatherEmbedding


def _with_batch_one(loaded: LoadedModel, specs: list[InputSpec], integer_types: list[str | None],
                    progress: Progress = Progress()):
    """Re-wrap the model behind inputs of batch size 1 (integer inputs keep their type).

    With a dynamic batch the converter keeps shape arithmetic in the graph (e.g. Flatten
    becomes SHAPE + STRIDED_SLICE + PACK + RESHAPE); with batch 1 every shape is static and
    Flatten is one RESHAPE, which is smaller and faster on a microcontroller.
    """
    if loaded.loader.startswith("tf_keras"):
        import tf_keras as keras_module
        model = loaded.keras_model
    else:
        import keras as keras_module
        model = _micro_layers(keras_module, loaded.keras_model, progress)
    inputs = [keras_module.Input(shape=spec.shape[1:], batch_size=1, name=_layer_name(spec.name),
                                 **({"dtype": integer} if integer else {}))
              for spec, integer in zip(specs, integer_types)]
    outputs = model(inputs[0] if len(inputs) == 1 else inputs)
    return keras_module.Model(inputs, outputs, name=_layer_name(model.name or "model"))


def _layer_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "input"


def _configure(tf, converter, quantize: str, samples, integer_types: list[str | None], progress: Progress) -> None:
    if quantize == "none":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        count = len(samples[0])

        def representative_dataset():
            step = max(1, count // 50)  # at most ~50 bar updates
            for i in range(count):
                if i % step == 0:
                    progress.bar("calibrating int8 ranges", i, count)
                yield [arr[i:i + 1].astype(integer) if integer else arr[i:i + 1]
                       for arr, integer in zip(samples, integer_types)]
            progress.bar("calibrating int8 ranges", count, count)

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8


def _conversion_error(exc: Exception, native_tail: str) -> TinygenError:
    text = str(exc)
    tf_ops = sorted(set(re.findall(r"'tf\.(\w+)'", text + native_tail)))
    if tf_ops:
        return TinygenError(
            "The TFLite converter cannot express these TensorFlow ops as TFLite builtin ops: "
            + ", ".join(tf_ops) + ". TFLite-Micro runs builtin ops only (no Flex/SELECT_TF_OPS).",
            hint="Replace the layers that produce them with ones TFLite supports natively.",
        )
    unsupported = re.findall(r"Quantization not yet supported for op: '?(\w+)'?", text + native_tail)
    if unsupported:
        return TinygenError(
            "int8 quantization is not supported for op(s): " + ", ".join(sorted(set(unsupported))) + ".",
            hint="Try --quantize float16 or none, or replace those layers.",
        )
    detail = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return TinygenError(
        f"The TFLite converter failed: {detail}" + (f"\nConverter log (last lines):\n{native_tail}" if native_tail else ""),
    )
