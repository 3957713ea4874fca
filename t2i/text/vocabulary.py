"""Tokenizer and vocabulary shared by every text encoder, with identical Python and TensorFlow-graph paths.

Tokenization: lower-case, then every run of ASCII letters/digits is a word and every other non-space character
(punctuation, symbols, non-ASCII letters) is a token of its own:

    "A Red-winged bird, 2 legs." -> ["a", "red", "-", "winged", "bird", ",", "2", "legs", "."]

The same rule is written twice: `tokenize` (Python, for building vocabularies and data_prep) and `tokenize_tf`
(graph ops, so a SavedModel can take raw strings). Tests check they agree.

A `Vocabulary` maps tokens to ids. Ids 0-3 are reserved: 0 `<pad>`, 1 `<unk>`, 2 `<bos>`, 3 `<eos>`; the rest are the
kept words, most frequent first (ties alphabetical, so building twice gives the same ids). It is saved as
`vocabulary.txt`, one token per line in id order, next to the model that uses it.
"""
import collections
import os
import re
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from t2i.utils import files

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
FILENAME = "vocabulary.txt"

# Whitespace is spelled out: Python's \s knows Unicode spaces that RE2's does not.
_SPACE = " \t\n\r\f\v"
_TOKEN = re.compile(rf"[a-z0-9]+|[^a-z0-9{_SPACE}]")
_TF_SPLIT_OFF = rf"([^a-z0-9{_SPACE}])"


class VocabularyError(ValueError):
    """A vocabulary file that cannot be read back."""


def tokenize(text: str) -> list[str]:
    """Splits one sentence into lower-case tokens (see the module docstring)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _TOKEN.findall(text.lower())


def tokenize_tf(texts) -> tf.RaggedTensor:
    """`tokenize` as graph ops: string tensor [B] → ragged string tensor [B, None]."""
    texts = tf.strings.lower(tf.convert_to_tensor(texts, tf.string), encoding="utf-8")
    texts = tf.strings.regex_replace(texts, _TF_SPLIT_OFF, r" \1 ")
    return tf.strings.split(texts)


class Vocabulary:
    """Token ↔ id table. Build with `Vocabulary.build(sentences)`, persist with `save` / `Vocabulary.load`."""

    def __init__(self, words: Sequence[str] = ()):
        tokens = list(SPECIAL_TOKENS)
        seen = set(tokens)
        for word in words:
            if not isinstance(word, str) or not word or any(c in _SPACE for c in word):
                raise VocabularyError(f"Vocabulary entries must be non-empty strings without spaces. Received: {word!r}")
            if word in seen:
                raise VocabularyError(f"Vocabulary entry appears twice. Received: {word!r}")
            seen.add(word)
            tokens.append(word)
        self._tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}
        self._table = None

    # --- building and persistence ---------------------------------------------------------------------------------

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1, max_size: int | None = None) -> "Vocabulary":
        """Words seen at least `min_count` times; at most `max_size` entries in all (specials included)."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive integer. Received: min_count={min_count!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size <= len(SPECIAL_TOKENS)):
            raise ValueError(
                f"max_size must be an integer above {len(SPECIAL_TOKENS)} (the reserved tokens) or None. "
                f"Received: max_size={max_size!r}"
            )
        counts = collections.Counter()
        for sentence in sentences:
            counts.update(tokenize(sentence))
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - len(SPECIAL_TOKENS)]
        return cls(words)

    def save(self, path: str) -> str:
        """Writes `vocabulary.txt` into directory `path` (or to the file `path` if it ends in .txt); returns the file."""
        if not path.endswith(".txt"):
            path = os.path.join(path, FILENAME)
        files.atomic_write_text(path, "\n".join(self._tokens) + "\n")
        return path

    @classmethod
    def load(cls, path: str) -> "Vocabulary":
        """Reads a file written by `save` (a directory holding `vocabulary.txt`, or the file itself)."""
        if os.path.isdir(path):
            path = os.path.join(path, FILENAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Vocabulary file not found: {path}")
        with open(path, encoding="utf-8") as f:
            tokens = f.read().split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise VocabularyError(f"{path}: the first lines must be {' '.join(SPECIAL_TOKENS)}; not a t2i vocabulary")
        return cls(tokens[len(SPECIAL_TOKENS):])

    # --- lookups ---------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self._tokens)

    def token_id(self, token: str) -> int:
        return self._ids.get(token, UNK_ID)

    def encode(self, text: str, max_length: int | None = None, add_eos: bool = False) -> list[int]:
        """Token ids of one sentence (unknown words → `<unk>`), truncated to `max_length` (EOS kept last)."""
        ids = [self.token_id(t) for t in tokenize(text)]
        if max_length is not None:
            ids = ids[: max_length - 1 if add_eos else max_length]
        return ids + [EOS_ID] if add_eos else ids

    def encode_batch(self, texts: Sequence[str], max_length: int, add_eos: bool = False) -> np.ndarray:
        """int32 [B, max_length], padded with `<pad>` (0) on the right."""
        out = np.full((len(texts), max_length), PAD_ID, np.int32)
        for row, text in enumerate(texts):
            ids = self.encode(text, max_length, add_eos)
            out[row, : len(ids)] = ids
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for `ids`, stopping at the first `<eos>` or `<pad>`."""
        tokens = []
        for i in ids:
            i = int(i)
            if i in (PAD_ID, EOS_ID):
                break
            tokens.append(self._tokens[i] if 0 <= i < len(self._tokens) else UNK)
        return tokens

    # --- graph path -------------------------------------------------------------------------------------------------

    def lookup_table(self) -> tf.lookup.StaticHashTable:
        """A TF hash table token → id (unknown → `<unk>`); built once and reused."""
        if self._table is None:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(self._tokens), tf.range(len(self._tokens), dtype=tf.int64)
                ),
                default_value=UNK_ID,
            )
        return self._table

    def encode_tf(self, texts, max_length: int, add_eos: bool = False) -> tf.Tensor:
        """`encode_batch` as graph ops: string tensor [B] → int32 [B, max_length]."""
        ids = self.lookup_table().lookup(tokenize_tf(texts))
        if add_eos:
            ids = ids[:, : max_length - 1]
            eos = tf.fill([ids.nrows(), 1], tf.constant(EOS_ID, tf.int64))
            ids = tf.concat([ids, tf.RaggedTensor.from_tensor(eos)], axis=1)
        else:
            ids = ids[:, :max_length]
        dense = ids.to_tensor(default_value=PAD_ID, shape=[None, max_length])
        return tf.cast(dense, tf.int32)
