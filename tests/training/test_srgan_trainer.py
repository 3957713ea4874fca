"""SRGANTrainer: both networks train, the generator loss is the weighted sum of its tracked parts, labels reach both
networks, sample inputs are fixed, and `low_resolution` is a clipped antialiased bicubic downscale."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.losses.image import pixel_mse, total_variation
from t2i.losses.perceptual import perceptual_loss
from t2i.models.srgan import SRGANDiscriminator, SRGANGenerator
from t2i.training.srgan import SRGANTrainer, low_resolution

NUM_LABELS = 4


def _images(batch=2, size=32, seed=(1, 2)):
    return tf.random.stateless_uniform([batch, size, size, 3], seed=seed, minval=-1, maxval=1)


def _labels():
    return tf.constant([[1, 0, 0, 1], [0, 1, 0, 0]], tf.float32)


def _trainer(scale=2, num_labels=0, **kwargs):
    keras.utils.set_random_seed(0)
    generator = SRGANGenerator(image_size=32, scale=scale, filters=8, residual_blocks=1, num_labels=num_labels)
    discriminator = SRGANDiscriminator(image_size=32, filters=8, num_labels=num_labels)
    kwargs.setdefault("sample_images", _images(seed=(3, 4)).numpy())
    trainer = SRGANTrainer(generator, discriminator, scale=scale, num_samples=2, **kwargs)
    trainer.compile(keras.optimizers.Adam(1e-3, beta_1=0.9), keras.optimizers.Adam(1e-3, beta_1=0.9))
    return trainer


def _tiny_feature_network():
    """A frozen 3×3 conv standing in for VGG: the trainer only needs images → features."""
    inputs = keras.Input(shape=(None, None, 3))
    network = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs))
    network.trainable = False
    return network


def _snapshot(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _unchanged(before, model):
    return [v.path for a, v in zip(before, model.trainable_variables) if np.allclose(a, v.numpy())]


def test_one_step_changes_both_networks_and_losses_are_finite():
    trainer = _trainer()
    g_before, d_before = _snapshot(trainer.generator), _snapshot(trainer.discriminator)
    batches = tf.data.Dataset.from_tensors({"image": _images()}).repeat()
    history = trainer.fit(batches, epochs=1, steps_per_epoch=1, verbose=0)
    assert _unchanged(g_before, trainer.generator) == []
    assert _unchanged(d_before, trainer.discriminator) == []
    assert sorted(history.history) == ["adversarial_loss", "d_loss", "g_loss", "pixel_loss", "tv_loss"]
    for name, values in history.history.items():
        assert np.isfinite(values).all(), name
    assert int(trainer.global_step.numpy()) == 1
    assert int(trainer.g_optimizer.iterations.numpy()) == 1 and int(trainer.d_optimizer.iterations.numpy()) == 1


def test_generator_loss_is_the_weighted_sum_of_its_tracked_parts():
    weights = dict(pixel_weight=0.5, adversarial_weight=0.1, perceptual_weight=2.0, tv_weight=1e-3)
    trainer = _trainer(feature_network=_tiny_feature_network(), **weights)
    high_res = _images()
    # The terms that do not involve the discriminator can be computed before the step: the step's generator pass
    # happens before either update, and BatchNorm in training mode uses batch statistics only.
    super_res = trainer.generator(low_resolution(high_res, 2), training=True)
    features = trainer.feature_network
    expected_pixel = float(tf.reduce_mean(pixel_mse(high_res, super_res)))
    expected_tv = float(tf.reduce_mean(total_variation(super_res)))
    expected_perceptual = float(tf.reduce_mean(perceptual_loss(features(high_res), features(super_res))))

    logs = {name: float(value) for name, value in trainer.train_step({"image": high_res}).items()}
    assert sorted(logs) == ["adversarial_loss", "d_loss", "g_loss", "perceptual_loss", "pixel_loss", "tv_loss"]
    assert logs["pixel_loss"] == pytest.approx(expected_pixel, rel=1e-5)
    assert logs["tv_loss"] == pytest.approx(expected_tv, rel=1e-5)
    assert logs["perceptual_loss"] == pytest.approx(expected_perceptual, rel=1e-5)
    weighted = (0.5 * logs["pixel_loss"] + 0.1 * logs["adversarial_loss"] + 2.0 * logs["perceptual_loss"]
                + 1e-3 * logs["tv_loss"])
    assert logs["g_loss"] == pytest.approx(weighted, rel=1e-5)
    # Every part matters at these weights, so the check would catch a dropped term.
    assert min(0.1 * logs["adversarial_loss"], 2.0 * logs["perceptual_loss"], 1e-3 * logs["tv_loss"]) > 1e-3 * weighted


def test_perceptual_weight_needs_a_feature_network():
    with pytest.raises(ValueError, match="needs a feature_network.*Received: perceptual_weight=1.0"):
        _trainer(perceptual_weight=1.0)


def test_scale_must_match_the_generator():
    generator = SRGANGenerator(image_size=32, scale=4, filters=8, residual_blocks=1)
    discriminator = SRGANDiscriminator(image_size=32, filters=8)
    with pytest.raises(ValueError, match="Received: scale=2"):
        SRGANTrainer(generator, discriminator, scale=2)


def test_jit_compile_is_refused_with_the_reason():
    trainer = _trainer()
    with pytest.raises(ValueError, match="no XLA kernel. Received: jit_compile=True"):
        trainer.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), jit_compile=True)


def test_labels_reach_both_networks():
    trainer = _trainer(scale=4, num_labels=NUM_LABELS, label_key="label", sample_labels=_labels().numpy())
    g_before, d_before = _snapshot(trainer.generator), _snapshot(trainer.discriminator)
    logs = trainer.train_step({"image": _images(), "label": _labels()})
    assert np.isfinite([float(value) for value in logs.values()]).all()
    # The label inputs' weights (first convs of both networks) receive gradients only if labels were fed in.
    assert _unchanged(g_before, trainer.generator) == []
    assert _unchanged(d_before, trainer.discriminator) == []


def test_integer_class_ids_are_one_hot_encoded():
    trainer = _trainer(scale=4, num_labels=NUM_LABELS, label_key="label", sample_labels=np.array([3, 1]))
    np.testing.assert_array_equal(trainer.sample_inputs()["labels"], [[0, 0, 0, 1], [0, 1, 0, 0]])
    logs = trainer.train_step({"image": _images(), "label": tf.constant([2, 0], tf.int32)})
    assert np.isfinite(float(logs["g_loss"]))


def test_sample_inputs_are_fixed_low_resolution_arrays():
    sample_images = _images(batch=3, seed=(5, 6)).numpy()
    trainer = _trainer(scale=4, sample_images=sample_images)  # num_samples=2: the first two images
    first, second = trainer.sample_inputs(), trainer.sample_inputs()
    assert isinstance(first, np.ndarray) and first.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, low_resolution(sample_images[:2], 4).numpy())
    assert trainer.generate(first).shape == (2, 32, 32, 3)

    conditional = _trainer(scale=4, num_labels=NUM_LABELS, label_key="label", sample_images=sample_images,
                           sample_labels=_labels().numpy())
    inputs = conditional.sample_inputs()
    assert sorted(inputs) == ["labels", "low_res"]
    assert all(isinstance(value, np.ndarray) for value in inputs.values())
    np.testing.assert_array_equal(inputs["labels"], _labels().numpy())
    assert conditional.generate(inputs).shape == (2, 32, 32, 3)


def test_sample_inputs_without_sample_images_is_a_clear_error():
    with pytest.raises(ValueError, match="Received: sample_images=None"):
        _trainer(sample_images=None).sample_inputs()


def test_low_resolution_shape_and_range():
    images = _images(batch=2, size=32)
    small = low_resolution(images, 4)
    assert small.shape == (2, 8, 8, 3) and small.dtype == tf.float32
    # A flat image stays flat: the antialiasing kernel's weights sum to one.
    np.testing.assert_allclose(low_resolution(tf.fill([1, 16, 16, 1], 0.3), 2).numpy(), 0.3, rtol=1e-6)
    # Hard ±1 stripes make the cubic kernel overshoot; the clip keeps the input of the generator in [-1, 1].
    stripes = np.where(np.arange(32) % 8 < 4, 1.0, -1.0).astype(np.float32)
    stripes = np.broadcast_to(stripes[None, None, :, None], (1, 32, 32, 1))
    raw = tf.image.resize(stripes, [16, 16], method="bicubic", antialias=True).numpy()
    assert raw.max() > 1.0 and raw.min() < -1.0
    clipped = low_resolution(stripes, 2).numpy()
    assert clipped.max() == 1.0 and clipped.min() == -1.0
    np.testing.assert_allclose(clipped, np.clip(raw, -1, 1))


def test_low_resolution_handles_unknown_static_sizes():
    resize = tf.function(lambda x: low_resolution(x, 2),
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    np.testing.assert_allclose(resize(_images(size=16)).numpy(), low_resolution(_images(size=16), 2).numpy())


def test_calling_the_trainer_on_a_batch_super_resolves_it():
    """Keras builds a trainer under a distribution strategy by calling it on a training batch."""
    trainer = _trainer(scale=4, num_labels=NUM_LABELS, label_key="label", sample_labels=_labels().numpy())
    batch = {"image": _images(), "label": _labels()}
    expected = trainer.generator({"low_res": low_resolution(batch["image"], 4), "labels": batch["label"]})
    np.testing.assert_allclose(trainer(batch), expected, rtol=1e-6)
