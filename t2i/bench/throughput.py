"""Steady-state throughput of t2i's DCGAN train step and generator sampling.

Honest by construction: synthetic in-memory batches (no input pipeline), the first `warmup` calls (tracing and
compilation) are excluded, and the timed loop runs `steps` calls back to back with one device sync at the end.
"""
import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from t2i import configs
from t2i.training import factory


@dataclasses.dataclass
class Figure:
    kind: str  # "train" or "sample"
    images_per_second: float
    seconds_per_call: float
    jit_compile: bool


def _time_calls(fn, args, warmup, steps):
    result = None
    for _ in range(warmup):
        result = fn(*args)
    tf.nest.map_structure(lambda t: t.numpy(), result)
    start = time.perf_counter()
    for _ in range(steps):
        result = fn(*args)
    tf.nest.map_structure(lambda t: t.numpy(), result)
    return (time.perf_counter() - start) / steps


def dcgan_config(image_size=64, batch_size=64):
    """The classic DCGAN: z 100 → 4×4×512 → 256 → 128 → 64 → 3, 4×4 kernels, Adam(2e-4, 0.5), one D + one G update."""
    return configs.TrainConfig(model="dcgan", image_size=image_size, batch_size=batch_size, steps=1, gf_dim=64,
                               df_dim=64, max_filters=512, noise_dim=100, log_dir="unused")


def train_throughput(config, jit_compile, warmup=3, steps=10, seed=0):
    keras.utils.set_random_seed(seed)
    trainer = factory.build_trainer(config.replace(jit_compile=jit_compile), total_steps=1)
    images = tf.random.stateless_uniform(
        [config.batch_size, config.image_size, config.image_size, config.channels], [seed, 1], -1.0, 1.0
    )
    step = tf.function(trainer.train_step, jit_compile=jit_compile)
    seconds = _time_calls(step, ({"image": images},), warmup, steps)
    return Figure("train", config.batch_size / seconds, seconds, jit_compile)


def sample_throughput(config, jit_compile, warmup=3, steps=20, seed=0):
    keras.utils.set_random_seed(seed)
    generator = factory.build_generator(config)
    noise = tf.constant(np.random.default_rng(seed).standard_normal((config.batch_size, config.noise_dim)),
                        tf.float32)
    sample = tf.function(lambda z: generator(z, training=False), jit_compile=jit_compile)
    seconds = _time_calls(sample, (noise,), warmup, steps)
    return Figure("sample", config.batch_size / seconds, seconds, jit_compile)
