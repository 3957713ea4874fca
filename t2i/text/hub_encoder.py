"""A TF-Hub sentence encoder (e.g. the Universal Sentence Encoder) as a Keras 3 layer, loaded from a local folder.

`hub.KerasLayer` cannot be used inside Keras 3 models (it is a tf_keras layer and fails on KerasTensors), so this
wraps `tensorflow_hub.load` in a `keras.layers.Layer` of its own. Two module formats are served:

* TF2 SavedModels with a `__call__` (Universal Sentence Encoder 4+): called on the strings directly;
* TF1 Hub format and signature-only SavedModels: the "default" signature (or the only one), called with the strings
  as its single input.

Either may return a tensor or a dict of tensors; a dict is read at `output_key` ("default", or its only entry, when
not given). The module is loaded from a path the user gives and is never downloaded. It stays attached to the layer,
so the layer works inside `tf.function`s and its variables are written into any SavedModel the layer is part of;
`.keras` files store only the path, and loading one re-reads the module from that path.
"""
from __future__ import annotations

import os
import warnings

import keras
import tensorflow as tf

with warnings.catch_warnings():
    # tensorflow_hub 0.16 imports setuptools' pkg_resources only to compare version strings; the deprecation
    # warning that import prints is about tensorflow_hub, not anything a t2i user can act on.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import tensorflow_hub as hub

__all__ = ["HubEncoderError", "HubSentenceEncoder", "load"]

# Called once at construction to learn `dim`; any sentence would do.
_PROBE = "a small bird with a red head and a short beak"


class HubEncoderError(ValueError):
    """A TF-Hub module that loads but is not a sentence encoder this layer can call."""


def _check_path(module_path) -> str:
    module_path = os.fspath(module_path) if module_path is not None else ""
    # hub.load would also accept a tfhub.dev or https handle and download it; only local folders are allowed.
    if not module_path or not os.path.isdir(module_path):
        raise FileNotFoundError(
            f"{module_path}: TF-Hub module folder not found; pass the extracted module's local folder with "
            f"--encoder_path (nothing is downloaded). Received: encoder_path={module_path!r}"
        )
    if not any(os.path.isfile(os.path.join(module_path, name)) for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise HubEncoderError(
            f"{module_path}: not a SavedModel / TF-Hub module folder (no saved_model.pb); extract the module's "
            f".tar.gz and pass the folder with --encoder_path. Received: encoder_path={module_path!r}"
        )
    return module_path


@keras.saving.register_keras_serializable(package="t2i")
class HubSentenceEncoder(keras.layers.Layer):
    """Sentences → vectors with a TF-Hub module: `call` maps a tf.string tensor [B] to float32 [B, dim].

    Args:
      module_path: local folder of the module (a SavedModel or TF1 Hub format module, extracted). Called
        `module_path` because `Layer.path` is Keras' own attribute (the layer's path inside a model).
      output_key: the entry of a dict output to use; default "default", or the only entry.

    The module's variables are frozen (`trainable=False`): embeddings are computed once and stored.
    """

    kind = "hub"

    def __init__(self, module_path, output_key: str | None = None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.module_path = _check_path(module_path)
        self.output_key = output_key
        self._module = hub.load(self.module_path)
        self._function, self._input_name = self._select_function()
        probe = self._embed(tf.constant([_PROBE]))
        if probe.shape.rank != 2 or probe.shape[0] != 1 or not probe.shape[1]:
            raise HubEncoderError(
                f"{self.module_path}: a sentence encoder must map [B] strings to [B, dim] vectors. "
                f"Received: output shape={probe.shape} for 1 sentence"
            )
        self.dim = int(probe.shape[1])

    def _select_function(self):
        """The callable to run and, for a signature, the keyword its strings go to."""
        if callable(self._module):
            return self._module, None
        signatures = dict(getattr(self._module, "signatures", {}) or {})
        if "default" in signatures:
            function = signatures["default"]
        elif len(signatures) == 1:
            function = next(iter(signatures.values()))
        else:
            raise HubEncoderError(
                f"{self.module_path}: the module has no __call__ and no 'default' signature. "
                f"Received: signatures={sorted(signatures)}"
            )
        inputs = function.structured_input_signature[1]
        if len(inputs) != 1:
            raise HubEncoderError(
                f"{self.module_path}: the signature must take the sentences as its one input. "
                f"Received: inputs={sorted(inputs)}"
            )
        return function, next(iter(inputs))

    def _embed(self, sentences) -> tf.Tensor:
        if self._input_name is None:
            outputs = self._function(sentences)
        else:
            outputs = self._function(**{self._input_name: sentences})
        if isinstance(outputs, dict):
            outputs = outputs[self._pick_key(outputs)]
        elif self.output_key is not None:
            raise HubEncoderError(
                f"{self.module_path}: output_key is set but the module returns a single tensor, not a dict. "
                f"Received: output_key={self.output_key!r}"
            )
        return tf.cast(outputs, tf.float32)

    def _pick_key(self, outputs: dict) -> str:
        if self.output_key is not None:
            if self.output_key not in outputs:
                raise HubEncoderError(
                    f"{self.module_path}: no output {self.output_key!r}; the module returns {sorted(outputs)}. "
                    f"Received: output_key={self.output_key!r}"
                )
            return self.output_key
        if "default" in outputs:
            return "default"
        if len(outputs) == 1:
            return next(iter(outputs))
        raise HubEncoderError(
            f"{self.module_path}: the module returns several outputs {sorted(outputs)} and none is 'default'; "
            f"choose one with output_key. Received: output_key=None"
        )

    def call(self, inputs):
        return self._embed(tf.convert_to_tensor(inputs, tf.string))

    def compute_output_spec(self, inputs):
        # Symbolic (functional-model) use must not trace the module with a KerasTensor: the shape is known already.
        return keras.KerasTensor((inputs.shape[0], self.dim), dtype="float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update({"module_path": self.module_path, "output_key": self.output_key})
        return config


def load(path, output_key: str | None = None) -> HubSentenceEncoder:
    """The encoder registry's entry point (`encoders.load_encoder("hub", path)`): the module at `path` as a layer.

    Raises:
      FileNotFoundError: `path` is not a local folder (the message names it and --encoder_path).
      HubEncoderError: the folder is not a SavedModel, or the module is not a strings → [B, dim] encoder.
    """
    return HubSentenceEncoder(path, output_key=output_key)
