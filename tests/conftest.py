"""Shared fixtures: tiny configs that train in seconds on 2 CPU cores."""
import os
import subprocess
import sys

import pytest

from t2i import configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(log_dir, **overrides):
    values = dict(
        model="dcgan", dataset="shapes", image_size=32, batch_size=4, steps=4, num_examples=16, gf_dim=8, df_dim=8,
        max_filters=32, checkpoint_every=2, sample_every=2, log_every=1, num_samples=4, log_dir=str(log_dir),
    )
    values.update(overrides)
    return configs.TrainConfig(**values)


@pytest.fixture
def make_config(tmp_path):
    return lambda **overrides: tiny_config(tmp_path / "run", **overrides)


def run_python(code, timeout=300, **kwargs):
    """Runs `code` in a fresh interpreter (nothing cached from this process) and returns the CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
                          **kwargs)


def run_binary(module, *args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="session")
def text_data(tmp_path_factory):
    """An (untrained, so instant) seq2seq encoder directory and 16 shapes images' captions embedded with it (16-d)."""
    import numpy as np

    from t2i.data import captions, embeddings
    from t2i.text import seq2seq, vocabulary

    root = tmp_path_factory.mktemp("text")
    corpus = captions.shapes_corpus(num_examples=16, seed=0)
    vocab = vocabulary.Vocabulary.build(c for record in corpus for c in record.captions)
    model = seq2seq.Seq2SeqAutoencoder(len(vocab), embedding_dim=8, units=8)
    model(np.zeros((1, 4), np.int32))
    encoder_dir = seq2seq.save_encoder_dir(model, vocab, {"max_length": 24}, str(root / "encoder"))
    path = embeddings.write_embeddings(str(root / "shapes.h5"), corpus, seq2seq.load(encoder_dir), batch_size=8,
                                       progress=False, encoder_path=encoder_dir)
    return {"embeddings": path, "encoder": encoder_dir, "dim": 16}
