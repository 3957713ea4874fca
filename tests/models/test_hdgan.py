"""HDGAN networks: side outputs and their channel table, per-scale discriminator heads, shared trunks, round trips,
gradients and argument errors."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.models import hdgan
from t2i.models.hdgan import HDGANDiscriminator, HDGANDiscriminators, HDGANGenerator

SMALL_G = dict(output_scales=(16, 32), noise_dim=10, embedding_dim=12, ef_dim=6, gf_dim=8)
SMALL_D = dict(embedding_dim=12, ef_dim=6, df_dim=8)
RNG = np.random.default_rng(0)


def _normal(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _images(scales, batch=2):
    return {f"image_{s}": RNG.uniform(-1, 1, (batch, s, s, 3)).astype("float32") for s in scales}


def _generator_inputs(batch=2, noise_dim=10, embedding_dim=12):
    return {"noise": _normal(batch, noise_dim), "embedding": _normal(batch, embedding_dim)}


def _conv3x3_same(x, kernel, bias):
    """Reference 3×3 'same' convolution in numpy: x [B, H, W, C], kernel [3, 3, C, F]."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],), "float64")
    for i in range(3):
        for j in range(3):
            out += np.einsum("bhwc,cf->bhwf", padded[:, i:i + height, j:j + width], kernel[i, j])
    return out + bias


def _sync_ca_noise(*generators, state=(1234, 0)):
    # The CA noise generator's state is not saved; give both copies the same one to compare deterministic outputs.
    for generator in generators:
        generator.get_layer("ca").seed_generator.state.assign(np.array(state, "int64"))


def test_channel_tables_halve_with_resolution_with_cap_and_floor():
    # Generator: gf_dim at the largest scale, doubling per halving, capped at max_filters.
    assert [hdgan.generator_filters(r, 256, 64, 512) for r in (4, 32, 64, 128, 256)] == [512, 512, 256, 128, 64]
    assert [hdgan.generator_filters(r, 32, 8, 512) for r in (4, 8, 16, 32)] == [64, 32, 16, 8]
    assert hdgan.generator_filters(64, 64, 4, 512) == 8  # floor
    # Discriminators: df_dim at 32×32 whatever the scale, so scales agree on widths at a shared resolution.
    assert [hdgan.discriminator_filters(r, 64, 512) for r in (4, 8, 16, 32, 64, 128, 256)] == [
        512, 256, 128, 64, 32, 16, 8]
    assert hdgan.discriminator_filters(512, 64, 512) == 8
    assert [hdgan.default_patch_size(s) for s in (16, 32, 64, 128, 256)] == [4, 4, 8, 16, 32]


def test_default_generator_gives_tanh_images_at_64_128_256():
    generator = HDGANGenerator()
    assert generator.output_scales == (64, 128, 256)
    assert generator.largest_output_key == "image_256"
    images = generator(_generator_inputs(1, 100, 1024))
    assert sorted(images) == ["image_128", "image_256", "image_64"]
    for scale in (64, 128, 256):
        assert images[f"image_{scale}"].shape == (1, scale, scale, 3)
        assert np.abs(np.asarray(images[f"image_{scale}"])).max() <= 1
    # Side branches read 256, 128 and 64 channels (gf_dim 64 at 256 px, ×2 per halving).
    assert [generator.get_layer(f"to_rgb_{s}").kernel.shape for s in (64, 128, 256)] == [
        (3, 3, 256, 3), (3, 3, 128, 3), (3, 3, 64, 3)]
    assert generator.get_layer("project").kernel.shape == (128 + 100, 4 * 4 * 512)


def test_small_generator_side_output_is_tanh_of_to_rgb_on_the_trunk():
    generator = HDGANGenerator(**SMALL_G)
    assert generator.output_scales == (16, 32) and generator.largest_output_key == "image_32"
    assert generator.get_layer("project_reshape").output.shape == (None, 4, 4, 64)
    assert generator.get_layer("res32_0_add").output.shape == (None, 32, 32, 8)
    # One call returns both the trunk at 16 px and the side output, so they share the CA sample.
    probe = keras.Model(generator.input, [generator.get_layer("res16_0_add").output, generator.output["image_16"]])
    features, image = (np.asarray(t, "float64") for t in probe(_generator_inputs()))
    to_rgb = generator.get_layer("to_rgb_16")
    expected = np.tanh(_conv3x3_same(features, np.asarray(to_rgb.kernel, "float64"), np.asarray(to_rgb.bias)))
    np.testing.assert_allclose(image, expected, rtol=1e-4, atol=1e-5)


def test_generator_scales_are_sorted_and_ca_statistics_match_the_layer_maths():
    generator = HDGANGenerator(**{**SMALL_G, "output_scales": [32, 16]})
    assert generator.output_scales == (16, 32)
    embedding = _normal(3, 12)
    mean, log_sigma = (np.asarray(t) for t in generator.ca_statistics(embedding))
    dense = generator.get_layer("ca").dense
    hidden = embedding @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    hidden = np.where(hidden > 0, hidden, 0.2 * hidden)
    np.testing.assert_allclose(mean, hidden[:, :6], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_sigma, hidden[:, 6:], rtol=1e-5, atol=1e-6)


def test_generator_images_depend_on_the_text():
    generator = HDGANGenerator(**SMALL_G)
    inputs = _generator_inputs()
    _sync_ca_noise(generator)
    first = np.asarray(generator(inputs, training=False)["image_32"], "float64")
    _sync_ca_noise(generator)
    same = np.asarray(generator(inputs, training=False)["image_32"], "float64")
    _sync_ca_noise(generator)
    other = np.asarray(generator({**inputs, "embedding": _normal(2, 12)}, training=False)["image_32"], "float64")
    # Same noise and text: identical images, so any change below comes from the text alone.
    np.testing.assert_array_equal(first, same)
    # At initialisation the CA noise (σ ≈ 1) dominates c next to μ from N(0, 0.02) weights, so the text moves the
    # images by a few percent of their scale — far above float error, which is all an unused input would leave.
    assert np.abs(first - other).max() > 1e-3 * np.abs(first).max()


@pytest.mark.parametrize("scale,patch_size,expected_patch", [(16, None, 4), (64, None, 8), (32, 8, 8)])
def test_discriminator_outputs_and_patch_map(scale, patch_size, expected_patch):
    discriminator = HDGANDiscriminator(scale, patch_size=patch_size, **SMALL_D)
    outputs = discriminator({"image": _images([scale])[f"image_{scale}"], "embedding": _normal(2, 12)})
    assert sorted(outputs) == ["pair_logits", "patch_logits"]
    assert outputs["pair_logits"].shape == (2, 1) and outputs["pair_logits"].dtype == "float32"
    assert outputs["patch_logits"].shape == (2, expected_patch, expected_patch, 1)
    # The pair head sees 4×4 image features next to the tiled ef_dim text code.
    assert discriminator.get_layer("image_text").output.shape == (None, 4, 4, 64 + 6)


def test_only_the_pair_head_depends_on_the_text():
    discriminator = HDGANDiscriminator(32, **SMALL_D)
    image = _images([32])["image_32"]
    first = discriminator({"image": image, "embedding": _normal(2, 12)}, training=False)
    second = discriminator({"image": image, "embedding": _normal(2, 12)}, training=False)
    np.testing.assert_array_equal(np.asarray(first["patch_logits"]), np.asarray(second["patch_logits"]))
    assert np.abs(np.asarray(first["pair_logits"]) - np.asarray(second["pair_logits"])).min() > 0


def test_unconditional_discriminator_takes_only_images_and_returns_global_logits():
    discriminator = HDGANDiscriminator(32, embedding_dim=0, df_dim=8)
    assert list(discriminator.input) == ["image"]
    outputs = discriminator({"image": _images([32])["image_32"]})
    assert sorted(outputs) == ["logits", "patch_logits"]
    assert outputs["logits"].shape == (2, 1) and outputs["patch_logits"].shape == (2, 4, 4, 1)
    discriminators = HDGANDiscriminators((16, 32), embedding_dim=0, df_dim=8)
    outputs = discriminators({"images": _images((16, 32))})
    assert {key: sorted(value) for key, value in outputs.items()} == {
        "image_16": ["logits", "patch_logits"], "image_32": ["logits", "patch_logits"]}


def test_separate_discriminators_are_the_single_scale_networks():
    discriminators = HDGANDiscriminators((16, 32), **SMALL_D)
    single = HDGANDiscriminator(32, **SMALL_D)
    # Copy the d32_* weights into the stand-alone network: the outputs must then agree exactly.
    for layer in single.layers:
        if layer.weights:
            layer.set_weights(discriminators.get_layer(f"d32_{layer.name}").get_weights())
    images, embedding = _images((16, 32)), _normal(2, 12)
    both = discriminators({"images": images, "embedding": embedding}, training=False)
    alone = single({"image": images["image_32"], "embedding": embedding}, training=False)
    for key in ("pair_logits", "patch_logits"):
        np.testing.assert_allclose(np.asarray(both["image_32"][key]), np.asarray(alone[key]), rtol=1e-5, atol=1e-6)
    assert both["image_16"]["patch_logits"].shape == (2, 4, 4, 1)


def test_shared_trunk_shares_deep_layers_and_heads():
    scales = (16, 32, 64)
    separate = HDGANDiscriminators(scales, **SMALL_D)
    shared = HDGANDiscriminators(scales, shared_trunk=True, **SMALL_D)
    assert shared.count_params() < separate.count_params()
    names = {layer.name for layer in shared.layers}
    # Stems bring every image to 8×8 (the smallest scale's s/2); the trunk from there down and the heads are shared.
    assert {"d16_down8_conv", "d32_down8_conv", "d64_down8_conv", "shared_down4_conv", "shared_pair_conv",
            "shared_text_dense", "shared_patch_logits"} <= names
    assert not any(name.startswith(("d16_down4", "d32_pair", "d64_patch")) for name in names)
    outputs = shared({"images": _images(scales), "embedding": _normal(2, 12)})
    for scale in scales:
        assert outputs[f"image_{scale}"]["pair_logits"].shape == (2, 1)
        assert outputs[f"image_{scale}"]["patch_logits"].shape == (2, 4, 4, 1)
        assert np.isfinite(np.asarray(outputs[f"image_{scale}"]["pair_logits"])).all()


def test_shared_heads_give_equal_logits_for_equal_stem_features():
    shared = HDGANDiscriminators((16, 32), shared_trunk=True, **SMALL_D)
    # Zero kernels (and bias) in both stems' last convs make both stems output zeros at 8×8 (inference-mode BN
    # keeps 0 at its initial statistics): the shared trunk and heads then see the same input.
    for name in ("d16_down8_conv", "d32_down8_conv"):
        layer = shared.get_layer(name)
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    outputs = shared({"images": _images((16, 32)), "embedding": _normal(2, 12)}, training=False)
    for key in ("pair_logits", "patch_logits"):
        np.testing.assert_allclose(np.asarray(outputs["image_16"][key]), np.asarray(outputs["image_32"][key]),
                                   rtol=1e-6, atol=1e-6)


def test_generator_keras_round_trip(tmp_path):
    generator = HDGANGenerator(**SMALL_G)
    path = tmp_path / "generator.keras"
    generator.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is HDGANGenerator
    assert reloaded.output_scales == (16, 32)
    inputs = _generator_inputs()
    for a, b in zip(generator.ca_statistics(inputs["embedding"]), reloaded.ca_statistics(inputs["embedding"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    _sync_ca_noise(generator, reloaded)
    before, after = generator(inputs, training=False), reloaded(inputs, training=False)
    assert sorted(after) == ["image_16", "image_32"]
    for key in before:
        np.testing.assert_allclose(np.asarray(before[key]), np.asarray(after[key]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("build", [
    lambda: HDGANDiscriminators((16, 32), **SMALL_D),
    lambda: HDGANDiscriminators((16, 32), shared_trunk=True, patch_size=8, **SMALL_D),
    lambda: HDGANDiscriminator(32, embedding_dim=0, df_dim=8),
])
def test_discriminator_keras_round_trip(tmp_path, build):
    model = build()
    if isinstance(model, HDGANDiscriminators):
        inputs = {"images": _images((16, 32)), "embedding": _normal(2, 12)}
    else:
        inputs = {"image": _images([32])["image_32"]}
    path = tmp_path / "discriminator.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is type(model)
    assert reloaded.get_config() == model.get_config()
    before, after = model(inputs, training=False), reloaded(inputs, training=False)
    assert keras.tree.map_structure(lambda t: tuple(t.shape), before) == keras.tree.map_structure(
        lambda t: tuple(t.shape), after)
    for a, b in zip(keras.tree.flatten(before), keras.tree.flatten(after)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("build,inputs", [
    (lambda: HDGANGenerator(**SMALL_G), lambda: _generator_inputs()),
    (lambda: HDGANDiscriminators((16, 32), shared_trunk=True, **SMALL_D),
     lambda: {"images": _images((16, 32)), "embedding": _normal(2, 12)}),
    (lambda: HDGANDiscriminators((16, 32), **SMALL_D),
     lambda: {"images": _images((16, 32)), "embedding": _normal(2, 12)}),
])
def test_gradients_reach_every_trainable_weight(build, inputs):
    model, values = build(), inputs()
    with tf.GradientTape() as tape:
        outputs = keras.tree.flatten(model(values, training=True))
        # Random weights per element: a plain sum of BatchNorm outputs has zero gradient by construction.
        total = tf.add_n([tf.reduce_sum(t * _normal(*t.shape)) for t in outputs])
    gradients = tape.gradient(total, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, gradients)
               if g is None or not np.any(np.asarray(g))]
    assert not missing


@pytest.mark.parametrize("scales", [(48,), (8, 16), (16, 16), (), 32, (16.0,)])
def test_bad_scales_are_clear_errors(scales):
    with pytest.raises(ValueError, match=r"output_scales must be .*Received: output_scales="):
        HDGANGenerator(**{**SMALL_G, "output_scales": scales})
    with pytest.raises(ValueError, match=r"^scales must be .*Received: scales="):
        HDGANDiscriminators(scales, **SMALL_D)


def test_bad_discriminator_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="Received: scale=24"):
        HDGANDiscriminator(24, **SMALL_D)
    with pytest.raises(ValueError, match="Received: patch_size=16"):
        HDGANDiscriminator(16, patch_size=16, **SMALL_D)
    with pytest.raises(ValueError, match="Received: patch_size=2"):
        HDGANDiscriminators((16, 32), patch_size=2, **SMALL_D)
    with pytest.raises(ValueError, match="Received: embedding_dim=-1"):
        HDGANDiscriminator(16, embedding_dim=-1)
    with pytest.raises(ValueError, match="Received: num_residual=-1"):
        HDGANGenerator(**SMALL_G, num_residual=-1)
