import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.text import encoders, skip_thought, vocabulary

DIM_WORD, UNI_DIM, BI_DIM = 5, 7, 4
# 'UNK' and '<eos>' in the middle, so a lookup that fell back to row 0 would show.
WORDS = ["a", "red", "bird", "UNK", "has", "<eos>", "wings", ",", ".", "small"]
SENTENCES = [
    "A red bird has wings.",
    "small zebra, bird",  # "zebra" is not in the dictionary
    "",
    "Bird",
    "a red red bird , small wings has a bird .",
]


def gru_params(rng, prefix, dim):
    def draw(*shape):
        return rng.normal(0.0, 0.5, shape).astype(np.float32)

    return {
        f"{prefix}_W": draw(DIM_WORD, 2 * dim), f"{prefix}_U": draw(dim, 2 * dim), f"{prefix}_b": draw(2 * dim),
        f"{prefix}_Wx": draw(DIM_WORD, dim), f"{prefix}_Ux": draw(dim, dim), f"{prefix}_bx": draw(dim),
    }


def write_model(directory, seed=0, words=WORDS):
    """Writes tiny random model files in the original skip-thoughts layout; returns the directory as a str."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    np.savez(os.path.join(directory, "uni_skip.npz"), **gru_params(rng, "encoder", UNI_DIM))
    np.savez(os.path.join(directory, "bi_skip.npz"),
             **gru_params(rng, "encoder", BI_DIM), **gru_params(rng, "encoder_r", BI_DIM))
    np.save(os.path.join(directory, "utable.npy"), rng.normal(0.0, 1.0, (len(words), DIM_WORD)).astype(np.float32))
    np.save(os.path.join(directory, "btable.npy"), rng.normal(0.0, 1.0, (len(words), DIM_WORD)).astype(np.float32))
    with open(os.path.join(directory, "dictionary.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(words) + "\n")
    # The option pickles sit next to the models in the original layout; they must never be opened.
    for name in ("uni_skip.npz.pkl", "bi_skip.npz.pkl"):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"not a pickle")
    return str(directory)


# --- a straightforward numpy transcription of skipthoughts.py's encode / gru_layer -------------------------------


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_gru(embeddings, params, prefix):
    W, U, b = params[f"{prefix}_W"], params[f"{prefix}_U"], params[f"{prefix}_b"]
    Wx, Ux, bx = params[f"{prefix}_Wx"], params[f"{prefix}_Ux"], params[f"{prefix}_bx"]
    dim = Ux.shape[1]
    h = np.zeros(dim, np.float64)
    for x in embeddings:
        preact = h @ U + (x @ W + b)
        r, u = sigmoid(preact[:dim]), sigmoid(preact[dim:])
        candidate = np.tanh(r * (h @ Ux) + (x @ Wx + bx))
        h = u * h + (1.0 - u) * candidate
    return h


def reference_encode(directory, sentences, use_eos=True, use_norm=True):
    with open(os.path.join(directory, "dictionary.txt"), encoding="utf-8") as f:
        words = [line.strip() for line in f]
    utable = dict(zip(words, np.load(os.path.join(directory, "utable.npy")).astype(np.float64)))
    btable = dict(zip(words, np.load(os.path.join(directory, "btable.npy")).astype(np.float64)))
    uparams = dict(np.load(os.path.join(directory, "uni_skip.npz")))
    bparams = dict(np.load(os.path.join(directory, "bi_skip.npz")))
    out = []
    for sentence in sentences:
        caption = vocabulary.tokenize(sentence)
        uembedding = [utable[w] if w in utable else utable["UNK"] for w in caption]
        bembedding = [btable[w] if w in btable else btable["UNK"] for w in caption]
        if use_eos:
            uembedding.append(utable["<eos>"])
            bembedding.append(btable["<eos>"])
        uni = reference_gru(uembedding, uparams, "encoder")
        bi = np.concatenate([reference_gru(bembedding, bparams, "encoder"),
                             reference_gru(bembedding[::-1], bparams, "encoder_r")])
        if use_norm:
            uni, bi = uni / np.linalg.norm(uni), bi / np.linalg.norm(bi)
        out.append(np.concatenate([uni, bi]))
    return np.stack(out)


@pytest.fixture
def model_dir(tmp_path):
    return write_model(tmp_path / "skip")


# --- behaviour ------------------------------------------------------------------------------------------------------


def test_combined_vectors_equal_the_reference_for_a_mixed_batch(model_dir):
    encoder = skip_thought.load(model_dir)
    assert encoder.kind == "skip_thought" and encoder.dim == UNI_DIM + 2 * BI_DIM
    got = encoder(tf.constant(SENTENCES)).numpy()
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), UNI_DIM + 2 * BI_DIM)
    np.testing.assert_allclose(got, reference_encode(model_dir, SENTENCES), atol=1e-5)
    # Batching must not leak between sentences: each alone gives its row of the batch.
    for i, sentence in enumerate(SENTENCES):
        np.testing.assert_allclose(encoder(tf.constant([sentence])).numpy()[0], got[i], atol=1e-6)


@pytest.mark.parametrize("mode, columns", [
    ("uni", slice(0, UNI_DIM)), ("bi", slice(UNI_DIM, None)), ("combined", slice(None)),
])
@pytest.mark.parametrize("use_norm", [True, False])
def test_each_mode_and_norm_setting_equals_its_part_of_the_reference(model_dir, mode, columns, use_norm):
    encoder = skip_thought.load(model_dir, mode=mode, use_norm=use_norm)
    expected = reference_encode(model_dir, SENTENCES, use_norm=use_norm)[:, columns]
    assert encoder.dim == expected.shape[1] == {"uni": 7, "bi": 8, "combined": 15}[mode]
    np.testing.assert_allclose(encoder(tf.constant(SENTENCES)).numpy(), expected, atol=1e-5)


def test_each_half_has_unit_norm_only_when_normalised(model_dir):
    normed = skip_thought.load(model_dir)(tf.constant(SENTENCES)).numpy()
    np.testing.assert_allclose(np.linalg.norm(normed[:, :UNI_DIM], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(normed[:, UNI_DIM:], axis=1), 1.0, atol=1e-5)
    raw = skip_thought.load(model_dir, use_norm=False)(tf.constant(SENTENCES)).numpy()
    assert np.all(np.abs(np.linalg.norm(raw[:, UNI_DIM:], axis=1) - 1.0) > 1e-3)


def test_without_eos_matches_reference_and_an_empty_sentence_is_zero(model_dir):
    encoder = skip_thought.load(model_dir, use_eos=False)
    got = encoder(tf.constant(SENTENCES)).numpy()
    words = [i for i, s in enumerate(SENTENCES) if s]
    np.testing.assert_allclose(got[words], reference_encode(model_dir, [SENTENCES[i] for i in words], use_eos=False),
                               atol=1e-5)
    # The original divides 0 by 0 here; t2i returns the zero vector.
    np.testing.assert_array_equal(got[SENTENCES.index("")], 0.0)
    # The '<eos>' step changes every vector.
    with_eos = skip_thought.load(model_dir)(tf.constant(SENTENCES)).numpy()
    assert np.all(np.abs(with_eos[words] - got[words]).max(axis=1) > 1e-3)


def test_an_unknown_word_reads_the_unk_row(tmp_path):
    plain = write_model(tmp_path / "plain")
    # Same model, except that "wings" now has the 'UNK' rows: it must then encode exactly like an unknown word.
    aliased = str(tmp_path / "aliased")
    shutil.copytree(plain, aliased)
    for table in ("utable.npy", "btable.npy"):
        rows = np.load(os.path.join(aliased, table))
        rows[WORDS.index("wings")] = rows[WORDS.index("UNK")]
        np.save(os.path.join(aliased, table), rows)
    unknown = skip_thought.load(plain)(tf.constant(["red zebra bird", "red quokka bird", "red wings bird"])).numpy()
    np.testing.assert_array_equal(unknown[0], unknown[1])
    assert np.abs(unknown[0] - unknown[2]).max() > 1e-3
    aliased_wings = skip_thought.load(aliased)(tf.constant(["red wings bird"])).numpy()[0]
    np.testing.assert_allclose(aliased_wings, unknown[0], atol=1e-6)


def test_a_word_listed_twice_keeps_its_last_row_like_the_original(tmp_path):
    directory = write_model(tmp_path / "skip", words=WORDS + ["red"])
    utable = np.load(os.path.join(directory, "utable.npy"))
    assert np.abs(utable[WORDS.index("red")] - utable[-1]).max() > 1e-3  # the two "red" rows differ
    got = skip_thought.load(directory)(tf.constant(["a red bird"])).numpy()
    # The reference's dict(zip(words, table)) keeps the last row, as the original's OrderedDict does.
    np.testing.assert_allclose(got, reference_encode(directory, ["a red bird"]), atol=1e-5)


def test_registry_loads_it(model_dir):
    encoder = encoders.load_encoder("skip_thought", model_dir)
    assert isinstance(encoder, skip_thought.SkipThoughtEncoder) and encoder.dim == 15
    np.testing.assert_allclose(encoders.encode(encoder, SENTENCES, batch_size=2),
                               reference_encode(model_dir, SENTENCES), atol=1e-5)


def test_runs_inside_a_tf_function_with_a_string_signature(model_dir):
    encoder = skip_thought.load(model_dir)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed(texts):
        return encoder(texts)

    np.testing.assert_allclose(embed(tf.constant(SENTENCES)).numpy(), reference_encode(model_dir, SENTENCES),
                               atol=1e-5)
    np.testing.assert_allclose(embed(tf.constant([""])).numpy(), reference_encode(model_dir, [""]), atol=1e-5)


def test_keras_round_trip_reloads_from_path(model_dir, tmp_path):
    texts = keras.Input(shape=(), dtype="string", name="text")
    model = keras.Model(texts, skip_thought.load(model_dir, mode="bi", use_eos=False)(texts))
    model.save(tmp_path / "encoder.keras")
    restored = keras.saving.load_model(tmp_path / "encoder.keras")
    layer = restored.layers[-1]
    assert (layer.directory, layer.mode, layer.use_eos, layer.use_norm) == (model_dir, "bi", False, True)
    batch = tf.constant(SENTENCES[:2])
    np.testing.assert_allclose(restored(batch).numpy(), model(batch).numpy(), atol=1e-6)
    # The files stay the source of truth: the .keras file holds no copy of the tables.
    np.save(os.path.join(model_dir, "btable.npy"), np.ones((len(WORDS), DIM_WORD), np.float32))
    changed = keras.saving.load_model(tmp_path / "encoder.keras")(batch).numpy()
    assert np.abs(changed - model(batch).numpy()).max() > 1e-3


# --- errors ---------------------------------------------------------------------------------------------------------


def test_missing_directory_or_file_names_the_path(tmp_path, model_dir):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        skip_thought.load(str(tmp_path / "nowhere"))
    os.remove(os.path.join(model_dir, "btable.npy"))
    with pytest.raises(FileNotFoundError, match="btable.npy"):
        skip_thought.load(model_dir)
    # The uni-skip half needs none of the bi-skip files.
    assert skip_thought.load(model_dir, mode="uni").dim == UNI_DIM


def test_missing_npz_key_names_file_and_key(model_dir):
    path = os.path.join(model_dir, "bi_skip.npz")
    params = dict(np.load(path))
    del params["encoder_r_Ux"]
    np.savez(path, **params)
    with pytest.raises(skip_thought.SkipThoughtError, match=r"bi_skip\.npz: missing key 'encoder_r_Ux'"):
        skip_thought.load(model_dir)


def test_table_rows_must_follow_the_dictionary(model_dir):
    with open(os.path.join(model_dir, "dictionary.txt"), "a", encoding="utf-8") as f:
        f.write("extra\n")
    with pytest.raises(skip_thought.SkipThoughtError, match=r"utable\.npy has 10 rows but .*dictionary\.txt has 11"):
        skip_thought.load(model_dir)


def test_inconsistent_shapes_name_the_key(model_dir):
    path = os.path.join(model_dir, "uni_skip.npz")
    params = dict(np.load(path))
    params["encoder_U"] = params["encoder_U"][:, :-1]
    np.savez(path, **params)
    with pytest.raises(skip_thought.SkipThoughtError, match=r"encoder_U .*Received: shape=\(7, 13\)"):
        skip_thought.load(model_dir, mode="uni")
    np.save(os.path.join(model_dir, "btable.npy"), np.zeros((len(WORDS), DIM_WORD + 1), np.float32))
    with pytest.raises(skip_thought.SkipThoughtError, match=r"btable\.npy .*encoder_Wx"):
        skip_thought.load(model_dir, mode="bi")


def test_pickled_tables_are_refused_not_unpickled(model_dir):
    path = os.path.join(model_dir, "utable.npy")
    rows = np.load(path)
    np.save(path, np.array(list(rows), dtype=object), allow_pickle=True)
    with pytest.raises(skip_thought.SkipThoughtError, match="pickled object array.*re-save"):
        skip_thought.load(model_dir)
    with open(path, "wb") as f:
        f.write(b"\x80\x02not numpy")
    with pytest.raises(skip_thought.SkipThoughtError, match="not a numpy .npy"):
        skip_thought.load(model_dir)


def test_dictionary_needs_unk_and_eos(tmp_path):
    no_eos = write_model(tmp_path / "no_eos", words=[w if w != "<eos>" else "eos" for w in WORDS])
    with pytest.raises(skip_thought.SkipThoughtError, match="dictionary.txt: the dictionary has no '<eos>'"):
        skip_thought.load(no_eos)
    assert skip_thought.load(no_eos, use_eos=False).dim == 15
    no_unk = write_model(tmp_path / "no_unk", words=[w if w != "UNK" else "unk" for w in WORDS])
    with pytest.raises(skip_thought.SkipThoughtError, match="no 'UNK'"):
        skip_thought.load(no_unk)
    with pytest.raises(ValueError, match="Received: mode='both'"):
        skip_thought.load(no_unk, mode="both")


def test_saved_model_is_self_contained(model_dir, tmp_path):
    class Serve(tf.Module):
        def __init__(self, encoder):
            self.encoder = encoder

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def __call__(self, text):
            return self.encoder(text)

    expected = reference_encode(model_dir, SENTENCES)
    tf.saved_model.save(Serve(skip_thought.load(model_dir)), str(tmp_path / "saved"))
    shutil.rmtree(model_dir)  # tables, weights and dictionary must all be inside the SavedModel
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(restored(tf.constant(SENTENCES)).numpy(), expected, atol=1e-5)
