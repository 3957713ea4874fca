"""DiffAugment: each policy against a numpy reference, its gradient, its seeding, and the trainers applying it to every
image the discriminator sees."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator
from t2i.training import augment
from t2i.training.conditional import ACGANTrainer


def _images(batch=3, size=8, channels=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)).astype(np.float32)


def _translate_reference(images, dy, dx):
    out = np.zeros_like(images)
    _, height, width, _ = images.shape
    for b in range(len(images)):
        for r in range(height):
            for c in range(width):
                if 0 <= r - dy[b] < height and 0 <= c - dx[b] < width:
                    out[b, r, c] = images[b, r - dy[b], c - dx[b]]
    return out


def test_translate_moves_each_image_by_its_own_shift_and_zero_fills():
    images = _images()
    dy, dx = np.array([1, -2, 0]), np.array([3, 0, -1])
    np.testing.assert_array_equal(augment.translate(tf.constant(images), tf.constant(dy), tf.constant(dx)).numpy(),
                                  _translate_reference(images, dy, dx))
    zero = np.zeros(3, np.int32)
    np.testing.assert_array_equal(augment.translate(tf.constant(images), zero, zero).numpy(), images)


def test_translate_gradient_is_the_reverse_shift():
    images, weights = tf.constant(_images()), _images(seed=1)
    dy, dx = tf.constant([2, -1, 0]), tf.constant([0, 1, -3])
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(augment.translate(images, dy, dx) * weights)
    # ∂/∂x of Σ w·T(x) = Tᵀ(w): w shifted back; input pixels shifted out of the frame get no gradient.
    expected = _translate_reference(weights, -dy.numpy(), -dx.numpy())
    np.testing.assert_allclose(tape.gradient(total, images).numpy(), expected, atol=1e-6)


def test_cutout_zeroes_a_square_clipped_at_the_border():
    images = _images(batch=2, size=8)
    out = augment.cutout(tf.constant(images), tf.constant([3, 0]), tf.constant([4, 7]), 4).numpy()
    expected = images.copy()
    expected[0, 1:5, 2:6] = 0.0  # centre (3, 4), size 4: rows 1-4, columns 2-5
    expected[1, 0:2, 5:8] = 0.0  # centre (0, 7): rows -2..1 and columns 5..8 clipped to the image
    np.testing.assert_array_equal(out, expected)


def test_color_follows_the_brightness_saturation_contrast_formulas():
    images = _images()
    u1, u2, u3 = np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.3, 0.75]), np.array([0.2, 0.6, 0.95])
    x = images + (u1 - 0.5)[:, None, None, None]
    mean_c = x.mean(axis=3, keepdims=True)
    x = (x - mean_c) * (2 * u2)[:, None, None, None] + mean_c
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * (u3 + 0.5)[:, None, None, None] + mean
    out = augment.color(tf.constant(images), tf.constant(u1, tf.float32), tf.constant(u2, tf.float32),
                        tf.constant(u3, tf.float32)).numpy()
    np.testing.assert_allclose(out, x, atol=1e-5)


def test_diff_augment_translation_shifts_stay_within_the_ratio_and_vary_per_image_and_seed():
    size, batch = 32, 64
    images = np.full((batch, size, size, 1), -1.0, np.float32)
    images[:, 16, 16, 0] = 1.0  # one bright pixel: where it lands is the shift

    def shifts(seed):
        out = augment.diff_augment(tf.constant(images), ("translation",), tf.constant(seed)).numpy()
        found = [np.argwhere(image[..., 0] == 1.0) for image in out]
        assert all(len(f) == 1 for f in found)  # ±4 pixels never push the pixel out of a 32-pixel image
        return np.array([f[0] - 16 for f in found])

    first = shifts([1, 2])
    assert np.abs(first).max() == 4  # round(32 · 1/8)
    assert len({tuple(s) for s in first}) > 20  # per-image draws, not one shift for the batch
    np.testing.assert_array_equal(shifts([1, 2]), first)  # stateless: the seed decides
    assert not np.array_equal(shifts([1, 3]), first)
    wide = augment.diff_augment(tf.constant(images), ("translation",), tf.constant([1, 2]), translation_ratio=0.25)
    assert np.abs([np.argwhere(i[..., 0] == 1.0)[0] - 16 for i in wide.numpy()]).max() == 8


def test_diff_augment_applies_the_policies_in_order_and_nothing_without_one():
    images = tf.constant(_images(batch=4, size=16, channels=3))
    assert augment.diff_augment(images, (), tf.constant([0, 0])) is images
    out = augment.diff_augment(images, ("color", "translation", "cutout"), tf.constant([5, 6])).numpy()
    assert out.shape == images.shape and np.isfinite(out).all()
    # Cutout last: every image has an 8×8 block (half the side) of exact zeros, at least where it is not clipped.
    assert all((image == 0).all(axis=-1).sum() >= 16 for image in out)


def test_diff_augment_traced_equals_eager():
    images = tf.constant(_images(batch=4, size=16, channels=3))
    policy = ("color", "translation", "cutout")
    traced = tf.function(lambda x, seed: augment.diff_augment(x, policy, seed))
    np.testing.assert_allclose(traced(images, tf.constant([3, 4])).numpy(),
                               augment.diff_augment(images, policy, tf.constant([3, 4])).numpy(), atol=1e-6)


def test_parse_policy():
    assert augment.parse_policy("translation, cutout") == ("translation", "cutout")
    assert augment.parse_policy("") == ()
    assert augment.parse_policy(["color"]) == ("color",)
    with pytest.raises(ValueError, match="Unknown augmentation 'flip'"):
        augment.parse_policy("translation,flip")
    with pytest.raises(ValueError, match="listed twice"):
        augment.parse_policy("cutout,cutout")


# -- in the trainers ---------------------------------------------------------------------------------------------

SMALL = dict(image_size=32, base_filters=4, max_filters=16)


class _RecordingDiscriminator(ConditionalDiscriminator):
    """Keeps the images of every call (traced eagerly here), so a test can see what D was shown."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def __call__(self, inputs, *args, **kwargs):
        self.seen.append((inputs["image"] if isinstance(inputs, dict) else inputs).numpy())
        return super().__call__(inputs, *args, **kwargs)


def _trainer(diff_augment, discriminator=None):
    keras.utils.set_random_seed(0)
    discriminator = discriminator or ConditionalDiscriminator(auxiliary=True, condition_input=False, **SMALL)
    trainer = ACGANTrainer(ConditionalGenerator(noise_dim=8, condition_dim=8, **SMALL), discriminator,
                           num_samples=4, aux_weight=1.0, diff_augment=diff_augment)
    trainer.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return trainer


def _batch():
    labels = np.zeros((4, 24), np.float32)
    labels[np.arange(4), [0, 5, 9, 20]] = 1.0
    images = np.full((4, 32, 32, 3), -1.0, np.float32)
    images[:, 14:18, 14:18] = 1.0  # a centred white square: any shift moves it
    return {"image": tf.constant(images), "label": tf.constant(labels)}


def test_the_discriminator_sees_translated_reals_and_fakes_in_both_updates():
    batch = _batch()
    trainer = _trainer("translation", _RecordingDiscriminator(auxiliary=True, condition_input=False, **SMALL))
    trainer.train_step(batch)
    real, fake_d, fake_g = trainer.discriminator.seen[-3:]
    # Every real image is the square shifted by at most 4 pixels, and not all by the same amount.
    shifts = []
    for image in real:
        top, left = np.argwhere(image[..., 0] == 1.0).min(axis=0)
        shifts.append((top - 14, left - 14))
        np.testing.assert_array_equal(image, _translate_reference(batch["image"].numpy()[:1], [top - 14],
                                                                  [left - 14])[0])
    assert max(abs(s) for pair in shifts for s in pair) <= 4 and len(set(shifts)) > 1
    # The fakes of the two updates are the same images (one generator pass) under different draws.
    assert not np.allclose(fake_d, fake_g)
    plain = _trainer("", _RecordingDiscriminator(auxiliary=True, condition_input=False, **SMALL))
    plain.train_step(batch)
    np.testing.assert_array_equal(plain.discriminator.seen[-3], batch["image"].numpy())


def test_a_step_with_augmentation_is_reproducible_and_trains_both_networks():
    assert np.isfinite(float(tf.function(_trainer("translation").train_step)(_batch())["d_loss"]))  # traced, as fit
    first = _trainer("color,translation,cutout")
    g_before = [v.numpy().copy() for v in first.generator.trainable_variables]
    d_before = [v.numpy().copy() for v in first.discriminator.trainable_variables]
    logs = [first.train_step(_batch())]
    second = _trainer("color,translation,cutout")  # reseeds the noise too
    logs.append(second.train_step(_batch()))
    assert all(np.isfinite(float(v)) for v in logs[0].values())
    # The generator learns through the augmentation of its fakes; the discriminator through both.
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(g_before, first.generator.trainable_variables))
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(d_before, first.discriminator.trainable_variables))
    # Seeded by (sample_seed, step, call site): the same model and batch give the same step.
    for a, b in zip(first.discriminator.trainable_variables, second.discriminator.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(logs[0]["d_loss"]) == float(logs[1]["d_loss"])
    # A different step draws differently.
    assert float(first.train_step(_batch())["d_loss"]) != float(logs[0]["d_loss"])
