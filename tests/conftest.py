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
