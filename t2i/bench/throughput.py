"""Steady-state throughput of t2i's DCGAN train step and generator sampling, per replica count and precision.

Honest by construction: synthetic in-memory batches (no input pipeline), the first `warmup` calls (tracing and
compilation) are excluded, and the timed loop runs `steps` calls back to back with one device sync at the end.

Replicated figures run the real train step under `tf.distribute.MirroredStrategy` (global batch split across the
replicas, BatchNorm synchronised as in `t2i.training.run`). On a machine with one CPU the replicas are logical CPU
devices, which must be configured before TensorFlow initialises its devices; `train_throughput_in_subprocess`
therefore measures each replica count in a fresh interpreter.
"""
import dataclasses
import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from t2i import configs
from t2i.training import distribute, factory


@dataclasses.dataclass
class Figure:
    kind: str  # "train" or "sample"
    images_per_second: float
    seconds_per_call: float
    jit_compile: bool
    replicas: int = 1
    precision: str = "float32"
    devices: str = ""  # what the replicas ran on, e.g. "2 logical CPU devices"


def _time_calls(fn, args, warmup, steps):
    """Seconds per call of `steps` calls after `warmup` untimed ones, each phase ending in one device sync;
    with `steps=0` only the warm-up runs (and 0.0 is returned)."""
    result = None
    for _ in range(warmup):
        result = fn(*args)
    if result is not None:
        tf.nest.map_structure(lambda t: t.numpy(), result)
    if steps <= 0:
        return 0.0
    start = time.perf_counter()
    for _ in range(steps):
        result = fn(*args)
    tf.nest.map_structure(lambda t: t.numpy(), result)
    return (time.perf_counter() - start) / steps


def dcgan_config(image_size=64, batch_size=64):
    """The classic DCGAN: z 100 → 4×4×512 → 256 → 128 → 64 → 3, 4×4 kernels, Adam(2e-4, 0.5), one D + one G update."""
    return configs.TrainConfig(model="dcgan", image_size=image_size, batch_size=batch_size, steps=1, gf_dim=64,
                               df_dim=64, max_filters=512, noise_dim=100, log_dir="unused")


def _images(config, seed):
    return tf.random.stateless_uniform(
        [config.batch_size, config.image_size, config.image_size, config.channels], [seed, 1], -1.0, 1.0
    )


def train_timer(config, jit_compile, warmup=3, seed=0):
    """Builds `config`'s trainer on one device, runs its step `warmup` times untimed and returns `measure(steps)`,
    which times `steps` further calls back to back and returns their Figure. The same compiled step serves every
    `measure` call, so a benchmark can time it in several rounds interleaved with another framework's."""
    keras.utils.set_random_seed(seed)
    config = config.replace(jit_compile=jit_compile)
    trainer = factory.build_trainer(config, total_steps=1)
    step = tf.function(trainer.train_step, jit_compile=jit_compile)
    args = ({"image": _images(config, seed)},)
    _time_calls(step, args, warmup, 0)

    def measure(steps):
        seconds = _time_calls(step, args, 0, steps)
        return Figure("train", config.batch_size / seconds, seconds, jit_compile,
                      precision=config.mixed_precision or "float32")

    return measure


def train_throughput(config, jit_compile, warmup=3, steps=10, seed=0, strategy=None):
    """Images/s of one train step on `config` (its `mixed_precision` included) on one device, or under `strategy`.

    Under a strategy the global batch `config.batch_size` is split across its replicas and the step is the one
    `fit` runs: `strategy.run(train_step)` inside one `tf.function`.
    """
    if strategy is None:
        return train_timer(config, jit_compile, warmup, seed)(steps)
    keras.utils.set_random_seed(seed)
    config = config.replace(jit_compile=jit_compile)
    distribute.check_batch_size(config.batch_size, strategy)
    with strategy.scope():
        trainer = factory.build_trainer(config, total_steps=1)
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        distribute.synchronize_batch_norm(trainer.generator, trainer.discriminator)
    images = _images(config, seed)
    per_replica = config.batch_size // replicas
    batch = strategy.experimental_distribute_values_from_function(
        lambda context: {"image": images[context.replica_id_in_sync_group * per_replica:][:per_replica]}
    )
    step = tf.function(lambda b: strategy.run(trainer.train_step, args=(b,)), jit_compile=jit_compile)
    seconds = _time_calls(lambda b: tf.nest.map_structure(strategy.experimental_local_results, step(b)), (batch,),
                          warmup, steps)
    return Figure("train", config.batch_size / seconds, seconds, jit_compile, replicas,
                  config.mixed_precision or "float32")


def replicated_train_throughput(config, replicas, jit_compile, warmup=3, steps=10, seed=0):
    """`train_throughput` under a MirroredStrategy over `replicas` devices: GPUs when there are enough, else that many
    logical CPU devices. Call it in a fresh process: logical devices can only be made before TensorFlow starts."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= replicas:
        devices, kind = [f"/gpu:{i}" for i in range(replicas)], "GPU"
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        devices, kind = [f"/cpu:{i}" for i in range(replicas)], "logical CPU"
    strategy = tf.distribute.MirroredStrategy(devices)
    figure = train_throughput(config, jit_compile, warmup, steps, seed, strategy=strategy)
    figure.devices = f"{replicas} {kind} device{'s' if replicas > 1 else ''}"
    return figure


def train_throughput_in_subprocess(config, replicas, jit_compile, warmup=3, steps=10, seed=0, timeout=1800):
    """`replicated_train_throughput` in a fresh interpreter; returns its Figure, or raises RuntimeError with the
    child's last error line."""
    code = (
        "import dataclasses, json, sys\n"
        "from t2i import configs\n"
        "from t2i.bench import throughput\n"
        "config = configs.TrainConfig.from_dict(json.loads(sys.argv[1]))\n"
        f"figure = throughput.replicated_train_throughput(config, {int(replicas)}, {bool(jit_compile)}, "
        f"{int(warmup)}, {int(steps)}, {int(seed)})\n"
        "print(json.dumps(dataclasses.asdict(figure)))\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = subprocess.run([sys.executable, "-c", code, config.to_json()], capture_output=True, text=True, env=env,
                         timeout=timeout, check=False)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"the {replicas}-replica run failed")
    return Figure(**json.loads(out.stdout.strip().splitlines()[-1]))


def sample_timer(config, jit_compile, warmup=3, seed=0):
    """The generator-sampling counterpart of `train_timer`: returns `measure(steps)` -> Figure after the warm-up."""
    keras.utils.set_random_seed(seed)
    generator = factory.build_generator(config)
    noise = tf.constant(np.random.default_rng(seed).standard_normal((config.batch_size, config.noise_dim)),
                        tf.float32)
    sample = tf.function(lambda z: generator(z, training=False), jit_compile=jit_compile)
    _time_calls(sample, (noise,), warmup, 0)

    def measure(steps):
        seconds = _time_calls(sample, (noise,), 0, steps)
        return Figure("sample", config.batch_size / seconds, seconds, jit_compile)

    return measure


def sample_throughput(config, jit_compile, warmup=3, steps=20, seed=0):
    return sample_timer(config, jit_compile, warmup, seed)(steps)
