"""`.keras` files of every t2i network family, encoder and custom layer load in a fresh process after only `import t2i`
(default safe_mode) and give the outputs they gave when saved."""
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from t2i.data.captions import shapes_corpus
from t2i.evaluation.classifier import ShapesEvaluator
from t2i.layers.conditioning import ConditioningAugmentation
from t2i.layers.pixel_shuffle import PixelShuffle
from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator
from t2i.models.began import BEGANDiscriminator, BEGANGenerator
from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator
from t2i.models.hdgan import HDGANDiscriminators, HDGANGenerator
from t2i.models.srgan import SRGANDiscriminator, SRGANGenerator
from t2i.models.stackgan import (StackGANStage1Discriminator, StackGANStage1Generator, StackGANStage2Discriminator,
                                 StackGANStage2Generator)
from t2i.models.wgan_gp import WGANGPCritic
from t2i.text import seq2seq
from t2i.text.vocabulary import Vocabulary

EMBEDDING = 12


def _random_inputs(structure, rng):
    """Float inputs matching a model's input structure (batch 2)."""
    def one(tensor):
        return rng.standard_normal((2, *tensor.shape[1:])).astype("float32")
    return tf.nest.map_structure(one, structure)


def _flatten(prefix, structure):
    """{prefix + "key.subkey": array} for nested dicts of arrays ({prefix: array} for one array)."""
    if not isinstance(structure, dict):
        return {prefix: np.asarray(structure)}
    flat = {}
    for key, value in structure.items():
        flat.update(_flatten(f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}", value))
    return flat


def _layer_model(layer, shape, dtype="float32"):
    inputs = keras.Input(shape=shape, dtype=dtype, name="x")
    return keras.Model(inputs, layer(inputs), name=f"{layer.name}_model")


def _models():
    keras.utils.set_random_seed(0)
    stage1 = StackGANStage1Generator(image_size=16, noise_dim=8, embedding_dim=EMBEDDING, ef_dim=4, gf_dim=16,
                                     variant="complex", name="stage1")
    sentences = [c for r in shapes_corpus(3) for c in r.captions]
    vocab = Vocabulary.build(sentences)
    autoencoder = seq2seq.Seq2SeqAutoencoder(len(vocab), embedding_dim=6, units=5)
    autoencoder.build()
    encoder = seq2seq.Seq2SeqSentenceEncoder.from_autoencoder(autoencoder, vocab, max_length=8)
    return {
        "dcgan_g": DCGANGenerator(image_size=32, noise_dim=8, base_filters=8, upsampling="nearest"),
        "dcgan_d": DCGANDiscriminator(image_size=32, base_filters=8),
        "cgan_g": ConditionalGenerator(num_labels=24, image_size=32, noise_dim=8, condition_dim=8, base_filters=8),
        "acgan_d": ConditionalDiscriminator(num_labels=24, image_size=32, base_filters=8, auxiliary=True,
                                            condition_input=False),
        "cgan_d": ConditionalDiscriminator(num_labels=24, image_size=32, base_filters=8),
        "acgan_projection_d": ConditionalDiscriminator(num_labels=24, image_size=32, base_filters=8, auxiliary=True,
                                                       projection=True),
        "cgan_cbn_g": ConditionalGenerator(num_labels=24, image_size=32, noise_dim=8, condition_dim=8, base_filters=8,
                                           conditional_bn=True),
        "wgan_gp_critic": WGANGPCritic(num_labels=0, image_size=32, base_filters=8, normalization="layer"),
        "began_g": BEGANGenerator(image_size=32, noise_dim=8, hidden_dim=8),
        "began_d": BEGANDiscriminator(image_size=32, noise_dim=8, hidden_dim=8),
        "srgan_g": SRGANGenerator(image_size=32, scale=4, filters=8, residual_blocks=1),
        "srgan_d": SRGANDiscriminator(image_size=32, filters=8),
        "stackgan1_g": stage1,
        "stackgan1_d": StackGANStage1Discriminator(image_size=16, embedding_dim=EMBEDDING, ef_dim=4, df_dim=8,
                                                   variant="complex", num_labels=24),
        "stackgan2_g": StackGANStage2Generator(stage1, gf_dim=8, ef_dim=4, encoded_size=8, num_residual=1),
        "stackgan2_d": StackGANStage2Discriminator(image_size=64, embedding_dim=EMBEDDING, ef_dim=4, df_dim=8),
        "hdgan_g": HDGANGenerator(output_scales=(16, 32), noise_dim=8, embedding_dim=EMBEDDING, ef_dim=4, gf_dim=16,
                                  max_filters=32),
        "hdgan_d": HDGANDiscriminators(scales=(16, 32), shared_trunk=True, embedding_dim=EMBEDDING, ef_dim=4,
                                       df_dim=8, max_filters=32),
        "evaluator": ShapesEvaluator(image_size=32, feature_dim=16),
        "conditioning_augmentation": _layer_model(ConditioningAugmentation(units=4, name="ca"), (EMBEDDING,)),
        "pixel_shuffle": _layer_model(PixelShuffle(scale=2, name="shuffle"), (4, 4, 8)),
        "seq2seq_encoder": _layer_model(encoder, (), dtype="string"),
    }


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import t2i                      # the only t2i import: it must register everything with Keras
    import keras
    import tensorflow as tf

    directory = sys.argv[1]
    data = np.load(f"{directory}/io.npz", allow_pickle=False)
    names = sys.argv[2:]
    for name in names:
        model = keras.models.load_model(f"{directory}/{name}.keras")   # default safe_mode
        assert type(model).__module__.startswith(("t2i.", "keras.")), type(model)
        for variable in model.variables:    # Conditioning Augmentation's ε state: not part of a .keras file
            key = f"{name}/seed/{variable.path}"
            if key in data.files:
                variable.assign(data[key])
        keys = sorted(k[len(name) + 4:] for k in data.files if k.startswith(f"{name}/in/"))
        if keys == [""]:
            inputs = data[f"{name}/in/"]
        else:
            inputs = {}
            for key in keys:                # "images.image_16" → inputs["images"]["image_16"]
                *parents, leaf = key.split(".")
                node = inputs
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[leaf] = data[f"{name}/in/{key}"]
        if name == "seq2seq_encoder":
            inputs = tf.constant(inputs.astype(str))
        outputs = tf.nest.flatten(model(inputs, training=False))
        expected = [data[k] for k in sorted(k for k in data.files if k.startswith(f"{name}/out/"))]
        assert len(outputs) == len(expected), (name, len(outputs), len(expected))
        for got, want in zip(outputs, expected):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5, err_msg=name)
        print("ok", name, type(model).__name__)
""")


def test_every_family_loads_with_only_import_t2i_in_a_fresh_process(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for name, model in _models().items():
        # Conditioning Augmentation's ε state before the call, for the child to start from.
        arrays.update({f"{name}/seed/{v.path}": v.numpy() for v in model.variables if "seed_generator" in v.path})
        if name == "seq2seq_encoder":
            inputs = np.array(["a red circle", "two blue squares and a zebra"])
            outputs = model(tf.constant(inputs), training=False)
        else:
            inputs = _random_inputs(model.input, rng)
            outputs = model(inputs, training=False)
        arrays.update(_flatten(f"{name}/in/", inputs))
        flat = tf.nest.flatten(outputs)
        # tf.nest flattens dicts in sorted-key order; zero-padded indices keep that order when the child sorts.
        arrays.update({f"{name}/out/{i:02d}": np.asarray(o) for i, o in enumerate(flat)})
        model.save(tmp_path / f"{name}.keras")
    np.savez(tmp_path / "io.npz", **arrays)

    names = sorted(k.split("/")[0] for k in arrays if k.endswith("/out/00"))
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), *names], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("ok ")]
    assert loaded == names
    assert "seq2seq_encoder" in loaded and "stackgan2_g" in loaded and "hdgan_d" in loaded


def test_the_registration_list_names_every_module_that_registers_objects():
    import pathlib

    from t2i import registration
    package = pathlib.Path(registration.__file__).parent
    registering = sorted(
        ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for path in package.rglob("*.py")
        if "register_keras_serializable(" in path.read_text(encoding="utf-8") and path.name != "registration.py"
    )
    assert registering and sorted(registration.MODULES) == registering


def test_registration_waits_for_the_t2i_module_that_imported_tensorflow():
    """`from t2i.data import shapes` imports TensorFlow half-way through shapes.py; registering then would import
    modules that read the half-initialised module. It has to happen once shapes.py is complete, without a warning."""
    child = textwrap.dedent("""
        import warnings
        warnings.simplefilter("error")
        from t2i.data import shapes
        import keras
        assert shapes.NUM_LABELS == 24
        for name in ("t2i>DCGANGenerator", "t2i>ConditionalScaleOffset", "t2i>TextGANTrainer", "t2i>ShapesEvaluator"):
            assert keras.saving.get_registered_object(name) is not None, name
        print("registered")
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "could not register" not in out.stderr, out.stderr[-3000:]
    assert out.stdout.split() == ["registered"]
