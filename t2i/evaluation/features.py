"""Feature networks for IS / FID / KID, loaded from local paths, and the image preparation in front of them.

Every extractor has the same face (`FeatureExtractor`): call it on a batch of images and get
``{"pool": float32 [B, feature_dim], "logits": float32 [B, num_logits]}`` ("logits" absent when the network has
none). `name` and `policy` describe exactly what produced the numbers, so reference-statistics caches and result
files can record them: scores are only comparable between identical networks *and* identical preparation.

Image preparation (`prepare_images`) is fixed and declared:

1. quantise to uint8 the way a saved PNG would be: float images in [-1, 1] become round((x + 1)·127.5), clipped
   to [0, 255] (round half to even, as `np.round`); uint8 images pass unchanged. Generated and real images then
   go through identical arithmetic from here on.
2. resize to the network's input size with the declared method (`tf.image.resize`, bilinear without antialiasing
   by default, as TF-GAN); skipped when the images already have that size.
3. map [0, 255] linearly to the network's input range ([-1, 1] for both Inception variants).

Implementations, all offline (nothing downloads; a missing path raises FileNotFoundError naming the flag):

- `HubInception`: the 2015 Inception graph as a TF-Hub module directory (TF-GAN's ``tfgan-eval-inception``):
  ``pool_3`` (2048) and ``logits`` (1008). The network of published IS / FID numbers.
- `KerasInceptionV3`: ``keras.applications.InceptionV3`` with weights from a local file.
- `SavedModelClassifier`: any classifier SavedModel (e.g. a fine-tuned birds/flowers Inception for StackGAN's
  per-dataset Inception Score, whose logit 0 is a background class to drop).

`extract` streams any number of images through an extractor in fixed-size batches into `GaussianStats`.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from t2i.evaluation.metrics import GaussianStats

__all__ = [
    "RESIZE_METHODS",
    "FeatureNetworkError",
    "quantize_images",
    "resize_policy",
    "prepare_images",
    "FeatureExtractor",
    "HubInception",
    "KerasInceptionV3",
    "SavedModelClassifier",
    "ExtractedFeatures",
    "extract",
]

RESIZE_METHODS = ("bilinear", "bicubic", "area", "nearest", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
INCEPTION_SIZE = 299
# Float inputs are expected in [-1, 1]; beyond this the caller almost surely passed [0, 255] or [0, 1] floats by
# mistake — quietly clipping those would give a meaningless score, so they are refused instead.
_FLOAT_RANGE_LIMIT = 1.5


class FeatureNetworkError(ValueError):
    """A feature network that cannot be loaded or used as declared; the message names the path or argument."""


# ---------------------------------------------------------------------------------------------------------------
# Image preparation


def quantize_images(images) -> tf.Tensor:
    """uint8 [B, H, W, 3]: float images in [-1, 1] → round((x + 1)·127.5) clipped to [0, 255]; uint8 unchanged.

    One-channel images are repeated to three (grey). Non-finite values or floats far outside [-1, 1] raise
    FeatureNetworkError rather than being clipped into a plausible-looking score.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise FeatureNetworkError(f"Images must be [batch, height, width, 3] (or 1 channel). "
                                  f"Received: images.shape={images.shape}")
    if images.dtype != tf.uint8:
        if not images.dtype.is_floating:
            raise FeatureNetworkError(f"Images must be uint8 or float in [-1, 1]. Received: dtype={images.dtype.name}")
        images = tf.cast(images, tf.float32)
        if not bool(tf.reduce_all(tf.math.is_finite(images))):
            raise FeatureNetworkError("Images contain NaN or infinity (a diverged generator?). "
                                      "Received: images=non-finite")
        peak = float(tf.reduce_max(tf.abs(images))) if tf.size(images) > 0 else 0.0
        if peak > _FLOAT_RANGE_LIMIT:
            raise FeatureNetworkError(f"Float images must lie in [-1, 1] (pass [0, 255] data as uint8). "
                                      f"Received: max_abs_value={peak:g}")
        images = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
    if images.shape[-1] == 1:
        images = tf.repeat(images, 3, axis=-1)
    return images


def _check_resize(resize: str, size: int):
    if resize not in RESIZE_METHODS:
        raise FeatureNetworkError(f"Unknown resize method; expected one of {', '.join(RESIZE_METHODS)}. "
                                  f"Received: resize={resize!r}")
    if int(size) < 1:
        raise FeatureNetworkError(f"The network input size must be positive. Received: size={size}")


def resize_policy(size: int, resize: str = "bilinear", antialias: bool = False) -> str:
    """The declared preparation as a string, e.g. ``"uint8→bilinear(aa=False)→299"`` (recorded with results)."""
    return f"uint8→{resize}(aa={bool(antialias)})→{int(size)}"


def _resize(pixels: tf.Tensor, size: int, resize: str, antialias: bool) -> tf.Tensor:
    """float32 [B, size, size, 3] in [0, 255] from uint8 (or float) pixels; identity when already at size."""
    pixels = tf.cast(pixels, tf.float32)
    if pixels.shape[1] == size and pixels.shape[2] == size:
        return pixels
    resized = tf.image.resize(pixels, [size, size], method=resize, antialias=antialias)
    # Bicubic / Lanczos overshoot; the network must still see values a real image could have.
    return tf.clip_by_value(resized, 0.0, 255.0)


def _to_range(pixels: tf.Tensor, input_range) -> tf.Tensor:
    if input_range is None:
        return pixels
    low, high = float(input_range[0]), float(input_range[1])
    # Written as a division so that [-1, 1] is x / 127.5 − 1 bit for bit, as Keras' Inception `preprocess_input`.
    return pixels / (255.0 / (high - low)) + low


def prepare_images(images, size: int, resize: str = "bilinear", antialias: bool = False,
                   input_range=(-1.0, 1.0)) -> tf.Tensor:
    """What a feature network sees: quantise to uint8 → resize to `size` → map [0, 255] to `input_range`.

    Args:
      images: uint8 [B, H, W, 3|1] or float in [-1, 1] (a generator's tanh output).
      size: the network's square input side (299 for Inception).
      resize: a `tf.image.resize` method name (see `RESIZE_METHODS`).
      antialias: `tf.image.resize` antialiasing (matters when shrinking large images).
      input_range: (low, high) the network expects, or None to keep [0, 255].

    Returns:
      float32 [B, size, size, 3].
    """
    _check_resize(resize, size)
    return _to_range(_resize(quantize_images(images), int(size), resize, antialias), input_range)


# ---------------------------------------------------------------------------------------------------------------
# Extractors


def _check_path(path, flag_name: str) -> str:
    if not path:
        raise FileNotFoundError(f"No feature network given: set {flag_name}. "
                                f"Received: {flag_name.lstrip('-')}={path!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: feature network not found (nothing is downloaded; point {flag_name} at a "
                                f"local copy). Received: {flag_name.lstrip('-')}={path!r}")
    return path


def _flatten_features(values) -> tf.Tensor:
    # Inception's pool_3 comes as [B, 1, 1, 2048] from some exports; features are always [B, d].
    values = tf.cast(values, tf.float32)
    return tf.reshape(values, [tf.shape(values)[0], -1])


class FeatureExtractor:
    """Common face of feature networks: ``extractor(images) -> {"pool": [B, d], "logits": [B, k] (optional)}``.

    Attributes:
      name: what network this is (recorded in caches and results).
      input_size: square input side the images are resized to.
      feature_dim: width of "pool".
      num_logits: width of "logits", or None when the network gives none.
      resize, antialias: the resize policy; `policy` is its string form.

    Subclasses implement `_network(inputs) -> dict` on prepared float32 batches and `_preprocess` mapping [0, 255]
    pixels to the network's range, then call `_probe()` at the end of `__init__` to learn the output widths.
    """

    def __init__(self, name: str, input_size: int, resize: str = "bilinear", antialias: bool = False):
        _check_resize(resize, input_size)
        self.name = name
        self.input_size = int(input_size)
        self.resize = resize
        self.antialias = bool(antialias)
        self.feature_dim = None
        self.num_logits = None

    @property
    def policy(self) -> str:
        return resize_policy(self.input_size, self.resize, self.antialias)

    def _preprocess(self, pixels: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _network(self, inputs: tf.Tensor) -> dict:
        raise NotImplementedError

    def _probe(self):
        """Runs one black image to learn (and check) the output widths before any real work."""
        outputs = self._network(self._preprocess(tf.zeros([1, self.input_size, self.input_size, 3], tf.float32)))
        self.feature_dim = int(outputs["pool"].shape[-1])
        self.num_logits = int(outputs["logits"].shape[-1]) if "logits" in outputs else None

    @tf.function(reduce_retracing=True)
    def _forward(self, pixels):
        return self._network(self._preprocess(_resize(pixels, self.input_size, self.resize, self.antialias)))

    def __call__(self, images) -> dict:
        """Features of a batch: images uint8 [B, H, W, 3] or float in [-1, 1]; returns numpy float32 arrays."""
        outputs = self._forward(quantize_images(images))
        return {key: np.asarray(value, np.float32) for key, value in outputs.items()}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, policy={self.policy!r})"


class SavedModelClassifier(FeatureExtractor):
    """Features and logits from a signature of a classifier SavedModel.

    Args:
      path: SavedModel directory.
      signature: signature to call; it must take one image input (its name is read from the signature).
      pool_key: output used as features; None uses the logits as features (a classifier with no exported pool).
      logits_key: output holding the logits; None with `pool_key` None takes the signature's only output, None with
        a `pool_key` means no logits (features only).
      drop_background_logit: drop logit 0 (Inception models fine-tuned in TF-Slim style keep a background class,
        e.g. StackGAN's birds/flowers Inception), so probabilities cover the real classes only.
      input_size: input side; None reads it from the signature when static, else 299.
      input_range: range [0, 255] pixels are mapped to (TF-Slim Inception: [-1, 1]).
      resize, antialias: resize policy.
      flag_name: the flag named in errors.
      name: recorded name; defaults to ``"savedmodel(<dir name>)"``.
    """

    _kind = "savedmodel"

    def __init__(self, path, signature: str = "serving_default", pool_key: str | None = None,
                 logits_key: str | None = None, drop_background_logit: bool = False, input_size: int | None = None,
                 input_range=(-1.0, 1.0), resize: str = "bilinear", antialias: bool = False,
                 flag_name: str = "--feature_network_path", name: str | None = None):
        self.path = _check_path(path, flag_name)
        self.signature = signature
        self.pool_key = pool_key
        self.logits_key = logits_key
        self.drop_background_logit = bool(drop_background_logit)
        self.input_range = input_range
        self.flag_name = flag_name
        self._module = self._load(self.path)
        self._function, self._input_name, self._input_dtype, static_size = self._resolve_signature()
        if input_size is None:
            input_size = static_size or INCEPTION_SIZE
        elif static_size and int(input_size) != static_size:
            raise FeatureNetworkError(f"{self.path}: signature {signature!r} takes {static_size}px images. "
                                      f"Received: input_size={input_size}")
        name = name or f"{self._kind}({os.path.basename(os.path.normpath(self.path))})"
        super().__init__(name, input_size, resize, antialias)
        self._probe()

    def _load(self, path):
        return tf.saved_model.load(path)

    def _resolve_signature(self):
        signatures = getattr(self._module, "signatures", None) or {}
        if self.signature in signatures:
            function = signatures[self.signature]
            _, input_specs = function.structured_input_signature
            if len(input_specs) != 1:
                raise FeatureNetworkError(f"{self.path}: signature {self.signature!r} must take exactly one (image) "
                                          f"input. Received: inputs={sorted(input_specs)}")
            (input_name, spec), = input_specs.items()
            static_size = spec.shape[1] if spec.shape.rank == 4 and spec.shape[1] == spec.shape[2] else None
            return function, input_name, spec.dtype, static_size
        if self._allow_direct_call() and callable(self._module):
            return self._module, None, tf.float32, None
        raise FeatureNetworkError(f"{self.path}: no signature {self.signature!r}; the SavedModel has "
                                  f"{sorted(signatures) or 'none'}. Received: signature={self.signature!r}")

    def _allow_direct_call(self) -> bool:
        return False

    def _preprocess(self, pixels):
        return _to_range(pixels, self.input_range)

    def _pick(self, outputs: dict, key: str, role: str):
        if key not in outputs:
            raise FeatureNetworkError(f"{self.path}: the network has no output {key!r} for the {role}; it has "
                                      f"{sorted(outputs)}. Received: {role}_key={key!r}")
        return outputs[key]

    def _network(self, inputs):
        inputs = tf.cast(inputs, self._input_dtype)
        if self._input_name is None:
            outputs = self._function(inputs)
        else:
            outputs = self._function(**{self._input_name: inputs})
        if not isinstance(outputs, dict):
            outputs = {"output_0": outputs}
        result = {}
        if self.logits_key is not None:
            logits = self._pick(outputs, self.logits_key, "logits")
        elif self.pool_key is None:
            if len(outputs) != 1:
                raise FeatureNetworkError(f"{self.path}: several outputs {sorted(outputs)}; say which holds the "
                                          f"logits. Received: logits_key=None")
            logits = next(iter(outputs.values()))
        else:
            logits = None
        if logits is not None:
            logits = _flatten_features(logits)
            if self.drop_background_logit:
                logits = logits[:, 1:]
            result["logits"] = logits
        result["pool"] = _flatten_features(self._pick(outputs, self.pool_key, "pool")) if self.pool_key else logits
        return result


class HubInception(SavedModelClassifier):
    """The 2015 Inception graph as a TF-Hub module directory (TF-GAN's ``tfgan-eval-inception`` layout).

    Loaded with `tensorflow_hub.load(path)` (which also reads plain SavedModels); its `signature` ("default") is
    called on [-1, 1] images of `input_size` (299) and returns a dict holding `pool_key` ("pool_3", 2048 features)
    and `logits_key` ("logits", 1008 classes; None to skip). A module without that signature but callable as
    ``module(images)`` is called directly.
    """

    _kind = "hub_inception"

    def __init__(self, path, pool_key: str = "pool_3", logits_key: str | None = "logits", signature: str = "default",
                 input_size: int | None = None, input_range=(-1.0, 1.0), resize: str = "bilinear",
                 antialias: bool = False, flag_name: str = "--inception_path", name: str | None = None):
        super().__init__(path, signature=signature, pool_key=pool_key, logits_key=logits_key, input_size=input_size,
                         input_range=input_range, resize=resize, antialias=antialias, flag_name=flag_name, name=name)

    def _load(self, path):
        from t2i.text.hub_encoder import hub  # only this extractor needs TF-Hub

        return hub.load(path)

    def _allow_direct_call(self) -> bool:
        return True


class KerasInceptionV3(FeatureExtractor):
    """``keras.applications.InceptionV3`` (include_top) with weights from a local file.

    "pool" is the 2048-wide global-average-pool output; "logits" are the top layer before its softmax, computed
    from the pool with the top Dense layer's own kernel and bias (the Keras model only exposes probabilities).
    Pixels are prepared with `keras.applications.inception_v3.preprocess_input` ([-1, 1]).

    Args:
      weights_path: a Keras weights file (``.weights.h5``, or the legacy ``.h5`` Keras Applications ship).
      input_size: input side (≥ 75; the ImageNet weights were trained at 299).
      classes: size of the top layer in the weights file.
      resize, antialias: resize policy.
      flag_name: the flag named in errors.
      name: recorded name; defaults to ``"keras_inception_v3(<file name>)"``.
    """

    def __init__(self, weights_path, input_size: int = INCEPTION_SIZE, classes: int = 1000,
                 resize: str = "bilinear", antialias: bool = False, flag_name: str = "--inception_path",
                 name: str | None = None):
        import keras  # noqa: PLC0415 (the Keras model is only built when asked for)

        self.weights_path = _check_path(weights_path, flag_name)
        self.classes = int(classes)
        self.flag_name = flag_name
        name = name or f"keras_inception_v3({os.path.basename(self.weights_path)})"
        super().__init__(name, input_size, resize, antialias)
        if self.input_size < 75:
            raise FeatureNetworkError(f"InceptionV3 needs inputs of at least 75px. Received: input_size={input_size}")
        self.model = keras.applications.InceptionV3(
            weights=None, include_top=True, input_shape=(self.input_size, self.input_size, 3), classes=self.classes)
        try:
            self.model.load_weights(self.weights_path)
        except (ValueError, OSError, KeyError) as e:
            raise FeatureNetworkError(f"{self.weights_path}: not InceptionV3 weights with {self.classes} classes at "
                                      f"{self.input_size}px ({e}). Received: {flag_name.lstrip('-')}="
                                      f"{self.weights_path!r}") from e
        self._top = self.model.get_layer("predictions")
        self._pool_model = keras.Model(self.model.input, self.model.get_layer("avg_pool").output)
        self._preprocess_input = keras.applications.inception_v3.preprocess_input
        # Widths are known from the architecture; a probe run would cost a full (slow, eager) forward pass.
        self.feature_dim = int(self._pool_model.outputs[0].shape[-1])
        self.num_logits = self.classes

    def _preprocess(self, pixels):
        return self._preprocess_input(pixels)

    def _network(self, inputs):
        pool = self._pool_model(inputs, training=False)
        logits = tf.matmul(pool, tf.convert_to_tensor(self._top.kernel)) + tf.convert_to_tensor(self._top.bias)
        return {"pool": tf.cast(pool, tf.float32), "logits": tf.cast(logits, tf.float32)}


# ---------------------------------------------------------------------------------------------------------------
# Streaming extraction


@dataclasses.dataclass
class ExtractedFeatures:
    """What `extract` collected: Gaussian statistics of "pool" always; arrays only when asked for."""

    stats: GaussianStats
    num_images: int
    logits: np.ndarray | None = None  # [n, num_logits] for the Inception Score (n×1008 floats stay small)
    pool: np.ndarray | None = None  # [n, feature_dim] for KID, which needs the features themselves
    extractor_name: str = ""
    policy: str = ""


def _batches(images, batch_size: int, image_key: str):
    """Yields image batches of exactly `batch_size` (the last one smaller) from an array or any iterable of batches."""
    if isinstance(images, (np.ndarray, tf.Tensor)):
        if len(images.shape) == 3:  # one image
            images = images[None]
        for start in range(0, int(images.shape[0]), batch_size):
            yield images[start:start + batch_size]
        return
    pending, pending_count = [], 0
    for element in images:
        if isinstance(element, dict):
            if image_key not in element:
                raise FeatureNetworkError(f"Dataset elements have no {image_key!r}; they have {sorted(element)}. "
                                          f"Received: image_key={image_key!r}")
            element = element[image_key]
        element = np.asarray(element)
        if element.ndim == 3:  # an unbatched dataset yields single images
            element = element[None]
        pending.append(element)
        pending_count += element.shape[0]
        while pending_count >= batch_size:
            joined = np.concatenate(pending, axis=0)
            yield joined[:batch_size]
            rest = joined[batch_size:]
            pending, pending_count = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
    if pending_count:
        yield np.concatenate(pending, axis=0)


def extract(extractor: FeatureExtractor, images, batch_size: int = 64, max_images: int | None = None,
            keep_logits: bool = True, keep_pool: bool = False, image_key: str = "image") -> ExtractedFeatures:
    """Runs `extractor` over all `images` in batches of `batch_size`, streaming "pool" into `GaussianStats`.

    Every image is used: the last batch holds the remainder (10 images in batches of 4 → 4, 4, 2), and batch
    boundaries of the input do not matter (inputs are re-batched to `batch_size`).

    Args:
      extractor: a `FeatureExtractor`.
      images: an array/tensor [N, H, W, 3] (uint8, or float in [-1, 1]), or any iterable (a `tf.data.Dataset`, a
        generator) of such batches, of single images, or of dicts holding them under `image_key`.
      batch_size: images per network call.
      max_images: stop after this many images (None: all).
      keep_logits: also return all logits (for the Inception Score); ignored when the network has none.
      keep_pool: also return all features (for KID).
      image_key: key of the images in dict elements (t2i datasets yield {"image": ...}).

    Returns:
      `ExtractedFeatures`.
    """
    if int(batch_size) < 1:
        raise FeatureNetworkError(f"batch_size must be at least 1. Received: batch_size={batch_size}")
    if max_images is not None and int(max_images) < 1:
        raise FeatureNetworkError(f"max_images must be at least 1 (or None for all). Received: max_images={max_images}")
    stats = GaussianStats(extractor.feature_dim)
    logits, pool = [], []
    count = 0
    for batch in _batches(images, int(batch_size), image_key):
        if max_images is not None:
            batch = batch[:int(max_images) - count]
        if int(batch.shape[0]) == 0:
            break
        outputs = extractor(batch)
        stats.update(outputs["pool"])
        if keep_logits and "logits" in outputs:
            logits.append(outputs["logits"])
        if keep_pool:
            pool.append(outputs["pool"])
        count += int(batch.shape[0])
        if max_images is not None and count >= int(max_images):
            break
    if count == 0:
        raise FeatureNetworkError("No images to extract features from. Received: images=empty")
    return ExtractedFeatures(
        stats=stats,
        num_images=count,
        logits=np.concatenate(logits, axis=0) if logits else None,
        pool=np.concatenate(pool, axis=0) if pool else None,
        extractor_name=extractor.name,
        policy=extractor.policy,
    )
