"""Skip-thought sentence encoder (Kiros et al. 2015) that runs the released model files in TensorFlow.

Reads the files of ryankiros/skip-thoughts from one directory, all given by the user (nothing downloads):

    uni_skip.npz   GRU parameters of the uni-skip encoder (2400 units)
    bi_skip.npz    GRU parameters of the bi-skip encoder (1200 units per direction)
    utable.npy     word-embedding table of the uni-skip encoder [num_words, 620]
    btable.npy     word-embedding table of the bi-skip encoder [num_words, 620]
    dictionary.txt one word per line (utf-8); row i of both tables belongs to line i; holds 'UNK' and '<eos>'

The `.npz.pkl` option files next to the models are pickles and are never read: every size is taken from the array
shapes. The tables must be plain float arrays. Some copies of `utable.npy`/`btable.npy` are pickled object arrays;
pickles can run code, so they are refused. Re-save such a file once, in a session you trust, with:

    numpy.save(PATH, numpy.stack(numpy.load(PATH, allow_pickle=True, encoding="latin1")).astype("float32"))

Encoding follows the original `encode(model, X, use_norm=True, use_eos=True)`:
- each word becomes its table row. A word not in `dictionary.txt` becomes the 'UNK' row. With `use_eos`, one more
  step follows the last word, and its input is the '<eos>' row. This is what `skipthoughts.py` does. Its
  `numpy.zeros` buffer is filled with that row, so the extra step is not a zero vector;
- GRU (the original `gru_layer`), h0 = 0:
      r, u = sigmoid(h·U + x·W + b)   split in two halves of `dim`
      h~   = tanh(r * (h·Ux) + x·Wx + bx)
      h    = u * h_prev + (1 - u) * h~
- uni vector = last state of the uni GRU. Bi vector = [last forward state, last backward state]; the backward GRU
  (`encoder_r_*`) reads the same steps, '<eos>' included, in reverse order;
- with `use_norm`, the uni and bi vectors are each scaled to unit L2 norm before they are joined: [uni, bi] → 4800.

The original groups sentences by length and so never pads. Here a batch of any lengths is padded on the right and
padded steps keep the previous state. The backward GRU reverses the padded batch. The padding then comes first,
where it leaves h0 = 0 unchanged, so every sentence gets exactly its own reversed sequence.

Differences from the original, on purpose:
- Tokenization is t2i's `vocabulary.tokenize_tf` (lower-case, punctuation split off), not nltk's `word_tokenize`.
  It runs in graph ops, so a SavedModel can take raw strings. Because of the lower-casing, a capitalised dictionary
  entry is never matched. Contractions split differently too ("bird's" → "bird", "'", "s", not "bird", "'s").
- With `use_eos=False` an empty sentence has no steps. It encodes to the zero vector, not to the original's
  division by zero. With `use_eos` (the default here) it is the single '<eos>' step.
- The original's `encode` defaults to `use_eos=False`. Text-to-image data-prep scripts that called
  `skipthoughts.encode(model, captions)` therefore got no '<eos>' step. Pass `use_eos=False` to reproduce their
  embeddings.

Saving: the weights are non-trainable Keras variables. A string-input SavedModel (`tf.saved_model.save`) is
therefore self-contained, and the lookup table goes in with it. A `.keras` file keeps only `directory` and the options
in its config, and it reloads the files from `directory`. The layer writes no weights into the `.keras` file, so a
model that embeds this encoder does not carry 4.6 GB of tables.
"""
import os

import keras
import numpy as np
import tensorflow as tf

from t2i.text import vocabulary

UNI_FILE, BI_FILE = "uni_skip.npz", "bi_skip.npz"
UNI_TABLE, BI_TABLE = "utable.npy", "btable.npy"
DICTIONARY = "dictionary.txt"
UNK, EOS = "UNK", "<eos>"
MODES = ("combined", "uni", "bi")
# One GRU's parameters in `gru_layer` order; the bi-skip model has them again under the prefix "encoder_r".
GRU_KEYS = ("W", "U", "b", "Wx", "Ux", "bx")
_NPY_MAGIC = b"\x93NUMPY"


class SkipThoughtError(ValueError):
    """A skip-thought model file that is unreadable or does not match the others."""


# --- reading the original files ------------------------------------------------------------------------------------


def _require_file(path: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Skip-thought model file not found: {path}")
    return path


def _pickle_refusal(path: str, what: str) -> SkipThoughtError:
    return SkipThoughtError(
        f"{path}: {what}; t2i does not unpickle files (pickles can run code). If you trust the file, re-save it as "
        f"a float array once: numpy.save(PATH, numpy.stack(numpy.load(PATH, allow_pickle=True, "
        f"encoding='latin1')).astype('float32'))"
    )


def read_table(path: str) -> np.ndarray:
    """A word-embedding table [num_words, dim_word] from a `.npy` file of floats; pickled contents are refused."""
    _require_file(path)
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if magic != _NPY_MAGIC:
        raise _pickle_refusal(path, "is not a numpy .npy array file (older copies of the tables are pickles)")
    try:
        # Memory-mapped: the real tables are 2.3 GB each and are copied once, into the layer's variables.
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        if "Python objects" in str(e) or "pickle" in str(e):
            raise _pickle_refusal(path, "holds a pickled object array") from None
        raise SkipThoughtError(f"{path}: cannot be read as a numpy array ({e})") from None
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.floating):
        raise SkipThoughtError(
            f"{path}: expected a float table [num_words, dim_word]. Received: shape={table.shape}, dtype={table.dtype}"
        )
    return table


def read_dictionary(path: str) -> list[str]:
    """The words of `dictionary.txt`, one per line, stripped as the original `load_tables` strips them."""
    _require_file(path)
    with open(path, "rb") as f:
        # Split on b"\n" only, as the original's `for line in f` does (str.splitlines would also split on U+2028).
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    words = []
    for number, line in enumerate(lines, start=1):
        try:
            words.append(line.decode("utf-8").strip())
        except UnicodeDecodeError:
            raise SkipThoughtError(f"{path}: line {number} is not valid utf-8") from None
    return words


def read_gru(path: str, prefix: str) -> dict[str, np.ndarray]:
    """The six GRU arrays `{prefix}_{W,U,b,Wx,Ux,bx}` of an original `.npz`, checked against each other."""
    _require_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise SkipThoughtError(f"{path}: cannot be read as a numpy .npz archive ({e})") from None
    with archive:
        params = {}
        for key in GRU_KEYS:
            name = f"{prefix}_{key}"
            if name not in archive.files:
                raise SkipThoughtError(f"{path}: missing key {name!r}. Received: keys={sorted(archive.files)}")
            try:
                params[key] = np.asarray(archive[name], np.float32)
            except ValueError:
                raise _pickle_refusal(path, f"key {name!r} holds a pickled object array") from None
    # Sizes come from the arrays (the .pkl option files are not read); -1 makes a malformed array fail the check below.
    dim = params["Ux"].shape[1] if params["Ux"].ndim == 2 else -1
    dim_word = params["Wx"].shape[0] if params["Wx"].ndim == 2 else -1
    expected = {
        "W": (dim_word, 2 * dim), "U": (dim, 2 * dim), "b": (2 * dim,),
        "Wx": (dim_word, dim), "Ux": (dim, dim), "bx": (dim,),
    }
    for key in GRU_KEYS:
        if params[key].shape != expected[key]:
            raise SkipThoughtError(
                f"{path}: key {prefix}_{key} has the wrong shape; expected {expected[key]} from {prefix}_Ux and "
                f"{prefix}_Wx. Received: shape={params[key].shape}"
            )
    return params


# --- the encoder ---------------------------------------------------------------------------------------------------


def _gru_final_state(inputs, mask, weights):
    """Last state of the original `gru_layer` over time-major `inputs` [T, B, dim_word]; `mask` [T, B] bool."""
    W, U, b, Wx, Ux, bx = weights
    dim = tf.shape(Ux)[0]
    # The input projections of all steps at once, as `gru_layer` precomputes state_below_ and state_belowx.
    x_gates = tf.tensordot(inputs, W, axes=1) + b
    x_candidate = tf.tensordot(inputs, Wx, axes=1) + bx

    def step(h, elems):
        keep, xg, xc = elems
        gates = tf.sigmoid(tf.matmul(h, U) + xg)
        reset, update = gates[:, :dim], gates[:, dim:]
        candidate = tf.tanh(reset * tf.matmul(h, Ux) + xc)
        new_h = update * h + (1.0 - update) * candidate
        return tf.where(keep[:, None], new_h, h)

    h0 = tf.zeros(tf.stack([tf.shape(inputs)[1], dim]), inputs.dtype)
    return tf.foldl(step, (mask, x_gates, x_candidate), initializer=h0)


@keras.saving.register_keras_serializable(package="t2i")
class SkipThoughtEncoder(keras.layers.Layer):
    """tf.string [B] raw captions → float32 [B, dim] skip-thought vectors (see the module docstring).

    Args:
        directory: the directory holding the original files. Only the files `mode` needs are read.
        mode: "combined" ([uni, bi], 2400 + 2400 for the real model), "uni" or "bi".
        use_eos: add the '<eos>' step after the last word, as `encode(..., use_eos=True)` does.
        use_norm: scale the uni and bi vectors each to unit L2 norm, as `encode(..., use_norm=True)` does.
    """

    kind = "skip_thought"

    def __init__(self, directory: str, mode: str = "combined", use_eos: bool = True, use_norm: bool = True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"Unknown skip-thought mode; expected one of {list(MODES)}. Received: mode={mode!r}")
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"Skip-thought model directory not found: {directory}")
        # Not `path`: keras.layers.Layer already has a `path` property (its name scope).
        self.directory = directory
        self.mode = mode
        self.use_eos = bool(use_eos)
        self.use_norm = bool(use_norm)

        dictionary_path = os.path.join(directory, DICTIONARY)
        words = read_dictionary(dictionary_path)
        parts = (("uni", UNI_FILE, UNI_TABLE, ("encoder",)), ("bi", BI_FILE, BI_TABLE, ("encoder", "encoder_r")))
        self._grus = {}
        self._tables = {}
        dims = {}
        for name, model_file, table_file, prefixes in parts:
            if mode not in ("combined", name):
                continue
            table_path = os.path.join(directory, table_file)
            table = read_table(table_path)
            if table.shape[0] != len(words):
                raise SkipThoughtError(
                    f"{table_path} has {table.shape[0]} rows but {dictionary_path} has {len(words)} lines; the rows "
                    f"must follow the dictionary"
                )
            grus = [read_gru(os.path.join(directory, model_file), prefix) for prefix in prefixes]
            dim_word = grus[0]["Wx"].shape[0]
            if table.shape[1] != dim_word:
                raise SkipThoughtError(
                    f"{table_path} has word vectors of size {table.shape[1]} but {model_file} key "
                    f"{prefixes[0]}_Wx expects {dim_word}. Received: shape={table.shape}"
                )
            if len(grus) == 2 and grus[1]["Ux"].shape != grus[0]["Ux"].shape:
                raise SkipThoughtError(
                    f"{os.path.join(directory, model_file)}: key encoder_r_Ux must match encoder_Ux "
                    f"{grus[0]['Ux'].shape}. Received: shape={grus[1]['Ux'].shape}"
                )
            self._tables[name] = self._constant_weight(f"{name}_table", table)
            self._grus[name] = [
                [self._constant_weight(f"{name}_{prefix}_{key}", gru[key]) for key in GRU_KEYS]
                for prefix, gru in zip(prefixes, grus)
            ]
            dims[name] = sum(gru["Ux"].shape[0] for gru in grus)
        self.dim = sum(dims.values())

        # word → row. A word listed twice keeps its last row, as the original's OrderedDict(zip(words, table)) does.
        row_of = {word: row for row, word in enumerate(words)}
        for required in (UNK, EOS) if self.use_eos else (UNK,):
            if required not in row_of:
                raise SkipThoughtError(f"{dictionary_path}: the dictionary has no {required!r} entry")
        self._eos_row = row_of.get(EOS, 0)
        self._word_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(row_of), tf.string), tf.constant(list(row_of.values()), tf.int64)
            ),
            default_value=row_of[UNK],
        )
        self.built = True

    def _constant_weight(self, name, array):
        return self.add_weight(
            name=name, shape=array.shape, dtype="float32", trainable=False,
            initializer=lambda shape, dtype=None: np.asarray(array, np.float32),
        )

    def call(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        rows = tf.ragged.map_flat_values(self._word_rows.lookup, vocabulary.tokenize_tf(texts))
        if self.use_eos:
            eos = tf.fill(tf.stack([rows.nrows(), 1]), tf.constant(self._eos_row, tf.int64))
            rows = tf.concat([rows, tf.RaggedTensor.from_tensor(eos)], axis=1)
        # Time-major like the original: [T, B]. Padded steps (mask False) read row 0 and are ignored.
        steps = tf.transpose(rows.to_tensor(default_value=0))
        mask = tf.transpose(tf.sequence_mask(rows.row_lengths(), tf.shape(steps)[0]))
        vectors = []
        if "uni" in self._tables:
            inputs = tf.gather(self._tables["uni"], steps)
            vectors.append(self._normalize(_gru_final_state(inputs, mask, self._grus["uni"][0])))
        if "bi" in self._tables:
            inputs = tf.gather(self._tables["bi"], steps)
            forward_weights, backward_weights = self._grus["bi"]
            forward = _gru_final_state(inputs, mask, forward_weights)
            backward = _gru_final_state(tf.reverse(inputs, [0]), tf.reverse(mask, [0]), backward_weights)
            vectors.append(self._normalize(tf.concat([forward, backward], axis=1)))
        return tf.concat(vectors, axis=1)

    def _normalize(self, vectors):
        # A zero vector (an empty sentence without '<eos>') stays zero instead of dividing by zero.
        return tf.math.l2_normalize(vectors, axis=1) if self.use_norm else vectors

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    # The variables are the files in `directory`, reloaded by `from_config`; writing them into a .keras file would copy
    # 4.6 GB of tables for nothing.
    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass

    def get_config(self):
        config = super().get_config()
        config.update(directory=self.directory, mode=self.mode, use_eos=self.use_eos, use_norm=self.use_norm)
        return config


def load(path: str, mode: str = "combined", use_eos: bool = True, use_norm: bool = True) -> SkipThoughtEncoder:
    """The skip-thought encoder of the original files in directory `path` (what `encoders.load_encoder` calls)."""
    return SkipThoughtEncoder(path, mode=mode, use_eos=use_eos, use_norm=use_norm)
