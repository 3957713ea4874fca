import numpy as np
import pytest

from t2i.text import vocabulary
from t2i.text.vocabulary import Vocabulary

SENTENCES = [
    "A Red-winged bird, 2 legs.",
    "this bird has a red crown and a short beak",
    "The bird's wings are   BLACK\tand white!",
    "Café déjà vu: naïve",
    "",
]


def test_tokenize_lowercases_and_splits_punctuation():
    assert vocabulary.tokenize("A Red-winged bird, 2 legs.") == ["a", "red", "-", "winged", "bird", ",", "2", "legs", "."]
    assert vocabulary.tokenize("  two\tspaces\n") == ["two", "spaces"]
    assert vocabulary.tokenize("") == []


def test_graph_tokenizer_agrees_with_python():
    graph = vocabulary.tokenize_tf(SENTENCES).to_list()
    assert [[t.decode("utf-8") for t in row] for row in graph] == [vocabulary.tokenize(s) for s in SENTENCES]


def test_build_orders_by_count_then_alphabet_and_respects_limits():
    vocab = Vocabulary.build(["b a b c", "a b", "d"], min_count=1)
    assert vocab.tokens == vocabulary.SPECIAL_TOKENS + ("b", "a", "c", "d")
    assert Vocabulary.build(["b a b c", "a b", "d"], min_count=2).tokens[4:] == ("b", "a")
    assert Vocabulary.build(["b a b c", "a b", "d"], max_size=5).tokens[4:] == ("b",)


def test_save_load_round_trip_is_exact(tmp_path):
    vocab = Vocabulary.build(SENTENCES)
    path = vocab.save(str(tmp_path))
    assert path.endswith(vocabulary.FILENAME)
    loaded = Vocabulary.load(str(tmp_path))
    assert loaded == vocab
    assert loaded.tokens == vocab.tokens
    for sentence in SENTENCES:
        assert loaded.encode(sentence) == vocab.encode(sentence)
        # Every word of a sentence the vocabulary was built from comes back.
        assert vocab.decode(vocab.encode(sentence)) == vocabulary.tokenize(sentence)


def test_unknown_words_map_to_unk_and_padding_is_zero():
    vocab = Vocabulary.build(["red bird"])
    ids = vocab.encode_batch(["red zebra", "bird"], max_length=4, add_eos=True)
    red, bird = vocab.token_id("red"), vocab.token_id("bird")
    np.testing.assert_array_equal(
        ids, [[red, vocabulary.UNK_ID, vocabulary.EOS_ID, 0], [bird, vocabulary.EOS_ID, 0, 0]]
    )
    assert vocab.decode(ids[0]) == ["red", vocabulary.UNK]


def test_graph_encoding_equals_python_encoding_with_truncation():
    vocab = Vocabulary.build(SENTENCES[:3])
    for add_eos in (False, True):
        for max_length in (3, 12):
            np.testing.assert_array_equal(
                vocab.encode_tf(SENTENCES, max_length, add_eos).numpy(),
                vocab.encode_batch(SENTENCES, max_length, add_eos),
            )


def test_bad_files_and_arguments_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary.txt"):
        Vocabulary.load(str(tmp_path))
    bad = tmp_path / "vocabulary.txt"
    bad.write_text("hello\nworld\n")
    with pytest.raises(vocabulary.VocabularyError, match="not a t2i vocabulary"):
        Vocabulary.load(str(bad))
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(["a"], min_count=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(["a"], max_size=4)
