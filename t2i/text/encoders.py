"""Sentence-encoder registry: `load_encoder(kind, path)` → a Keras layer mapping strings to vectors.

Every encoder kind is a `keras.layers.Layer` whose `call` takes a `tf.string` tensor [B] of raw captions and returns
float32 [B, dim]; it carries `kind` (its registry name) and `dim` (the vector size). Tokenization happens inside, in
graph ops, so the same layer serves data_prep (captions → HDF5) and a string-input SavedModel.
"""
import importlib
import weakref

import numpy as np
import tensorflow as tf

# kind → module holding `load(path) -> layer`; imported on first use so `import t2i.text.encoders` stays cheap.
ENCODER_MODULES = {
    "seq2seq": "t2i.text.seq2seq",
    "skip_thought": "t2i.text.skip_thought",
    "hub": "t2i.text.hub_encoder",
}


def load_encoder(kind: str, path: str):
    """Loads the encoder of `kind` stored at `path` (a directory or module path the user gives; nothing downloads)."""
    if kind not in ENCODER_MODULES:
        raise ValueError(f"Unknown encoder; expected one of {sorted(ENCODER_MODULES)}. Received: encoder={kind!r}")
    if not path:
        raise ValueError(f"The {kind} encoder needs a path (--encoder_path). Received: encoder_path={path!r}")
    return importlib.import_module(ENCODER_MODULES[kind]).load(path)


_GRAPH_CALLS = weakref.WeakKeyDictionary()


def graph_call(encoder):
    """`encoder` as one `tf.function` over string batches of any size, traced once per encoder: called eagerly, a
    recurrent encoder runs its time loop op by op (embedding shapes' 200000 captions: 19 s of 26 eagerly)."""
    function = _GRAPH_CALLS.get(encoder)
    if function is None:
        layer = weakref.ref(encoder)  # the cached function must not keep its encoder alive
        function = tf.function(lambda texts: layer()(texts), input_signature=[tf.TensorSpec([None], tf.string)])
        _GRAPH_CALLS[encoder] = function
    return function


def encode(encoder, sentences, batch_size: int = 256) -> np.ndarray:
    """float32 [len(sentences), encoder.dim]: runs `encoder` over a Python list of strings in batches."""
    sentences = list(sentences)
    if not sentences:
        return np.zeros((0, encoder.dim), np.float32)
    call = graph_call(encoder)
    out = []
    for start in range(0, len(sentences), batch_size):
        batch = tf.constant(sentences[start:start + batch_size], tf.string)
        out.append(np.asarray(call(batch), np.float32))
    return np.concatenate(out, axis=0)
