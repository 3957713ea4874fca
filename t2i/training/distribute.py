"""`tf.distribute` strategies by name, who is the chief, and what a replicated run must change.

The trainers are written once for any strategy: per-example losses are reduced over the global batch
(`tf.nn.compute_average_loss`), so the gradients summed across replicas equal the single-device ones, and Keras
averages the trackers' per-replica results (each replica holds an equal share of the batch, so that average is the
global mean). Two things still differ from one device and are fixed here:

- BatchNorm normalises with the statistics of the batch it sees. Under a strategy with N replicas each replica sees
  1/N of the batch, so its statistics, the fakes, the losses and hence the gradients differ from a single-device
  step (measured: weights after one DCGAN step differ by a whole learning rate). `synchronize_batch_norm` makes the
  layers all-reduce their moments over the replicas, which restores single-device gradients.
- Under `MultiWorkerMirroredStrategy` every worker must take part in a checkpoint save; only the chief's copy is
  kept. `checkpoint_directory` gives the others a private scratch folder outside the run directory.
"""
import json
import os
import tempfile

import keras
import tensorflow as tf
from absl import logging

from t2i import configs
from t2i.configs import config as config_module

STRATEGIES = config_module.STRATEGIES


def get_strategy(name="default"):
    """'default' (one device), 'mirrored' (all local devices), 'multi_worker' (TF_CONFIG describes the cluster).

    Create the strategy before any other TensorFlow op runs: `MultiWorkerMirroredStrategy` configures the
    collective ops of the process and refuses once the runtime is initialised.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy; expected one of {', '.join(STRATEGIES)}. Received: strategy={name!r}")


def configure_threads(intra_op_threads=0, inter_op_threads=0):
    """Sizes TensorFlow's CPU thread pools (0 leaves a pool at TensorFlow's default, one thread per core).

    Must run before the first TensorFlow op of the process, as `get_strategy` must: the pools are created with the
    runtime. Called later with other sizes, it logs a warning naming the flag and changes nothing (a library user
    who already ran ops keeps a working process). Returns True when the pools have the requested sizes.
    """
    threading = tf.config.threading
    cores = os.cpu_count() or 1
    if intra_op_threads and cores >= 4 * intra_op_threads:
        logging.warning("--intra_op_threads=%d: each op uses %d of this machine's %d cores (the right size for many "
                        "small ops on 2 cores); --intra_op_threads=0 lets each op use them all", intra_op_threads,
                        intra_op_threads, cores)
    applied = True
    for flag, value, getter, setter in (
            ("intra_op_threads", intra_op_threads, threading.get_intra_op_parallelism_threads,
             threading.set_intra_op_parallelism_threads),
            ("inter_op_threads", inter_op_threads, threading.get_inter_op_parallelism_threads,
             threading.set_inter_op_parallelism_threads)):
        if not value or getter() == value:
            continue
        try:
            setter(value)
        except RuntimeError:
            logging.warning("--%s=%d not applied: TensorFlow's runtime was already initialised in this process "
                            "(set it before the first TensorFlow op, as t2i-train does)", flag, value)
            applied = False
    return applied


CPU_BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpu_flags(cpuinfo_path):
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """(bool, reason): does the hardware t2i trains on compute bfloat16 natively?

    With visible GPUs (TensorFlow places the networks on them): every one of compute capability 8.0 or newer
    (Ampere on). Otherwise the CPU: AMX or AVX512-BF16 among its flags (Linux' /proc/cpuinfo; other systems count
    as no) with TensorFlow's oneDNN kernels on — elsewhere bfloat16 is emulated, measured at 0.18x the float32 step
    on an AVX2-only CPU against 0.8x with AMX.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") for gpu in gpus]
        old = [c for c in capabilities if not c or tuple(c) < (8, 0)]
        if old:
            return False, f"GPU compute capability {old[0]} < 8.0"
        return True, f"GPU compute capability {min(tuple(c) for c in capabilities)}"
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return False, "TF_ENABLE_ONEDNN_OPTS=0 turns off oneDNN's bfloat16 kernels"
    flags = _cpu_flags(cpuinfo_path) & set(CPU_BFLOAT16_FLAGS)
    if flags:
        return True, f"CPU with {', '.join(sorted(flags))}"
    return False, "CPU without AMX or AVX512-BF16"


def auto_precision():
    """(policy, reason) that `mixed_precision="auto"` stands for on this hardware: what runs fastest without loss
    scaling — mixed_bfloat16 where bfloat16 is native (`native_bfloat16`), float32 ("") elsewhere."""
    native, reason = native_bfloat16()
    return ("mixed_bfloat16" if native else ""), reason


def resolve_precision(config):
    """The config with `mixed_precision="auto"` replaced by `auto_precision()`'s choice, which it prints."""
    if config.mixed_precision != "auto":
        return config
    chosen, reason = auto_precision()
    print(f"--mixed_precision=auto: {chosen or 'float32'} ({reason})", flush=True)
    return config.replace(mixed_precision=chosen)


def _task():
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    return config.get("task", {}), config.get("cluster", {})


def is_chief():
    """Only the chief writes checkpoints, samples and exports; workers without a TF_CONFIG are their own chief.

    The chief is the task of type "chief", or worker 0 when the cluster has no "chief" job (TF's convention).
    """
    task, cluster = _task()
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in cluster


def checkpoint_directory(chief_directory):
    """Where this process writes its checkpoints: the run's folder on the chief, a fresh temporary folder elsewhere.

    Every worker of a `MultiWorkerMirroredStrategy` must call save (it may run collective ops), but only the
    chief's files are the run's: the others write to a scratch folder they delete at the end (see
    `remove_worker_directory`), so they never touch the chief's log_dir. All workers restore from the chief's
    folder, which they share.
    """
    if is_chief():
        return chief_directory
    task, _ = _task()
    return tempfile.mkdtemp(prefix=f"t2i-{task.get('type', 'worker')}{task.get('index', 0)}-checkpoints-")


def remove_worker_directory(directory, chief_directory):
    """Deletes a non-chief worker's scratch checkpoint folder (never the chief's)."""
    if os.path.abspath(directory) != os.path.abspath(chief_directory):
        tf.io.gfile.rmtree(directory)


def batch_norm_layers(*models):
    """Every `keras.layers.BatchNormalization` inside `models`, nested layers included."""
    found = []
    for model in models:
        # `_flatten_layers` walks tracked sub-layers of custom layers too, which `Model.layers` does not.
        found += [layer for layer in model._flatten_layers(include_self=True, recursive=True)
                  if isinstance(layer, keras.layers.BatchNormalization)]
    return found


def synchronize_batch_norm(*models):
    """Makes every BatchNorm layer in `models` use the moments of the global batch; returns how many it changed.

    With one replica this changes nothing but adds three trivial all-reduces per layer; with several it makes a
    replicated step compute the single-device step (see the module docstring). It is a training-time setting:
    t2i's networks serialise their constructor arguments, so a saved `.keras` generator comes back unsynchronised
    (and synchronisation changes nothing outside a multi-replica strategy anyway).
    """
    layers = batch_norm_layers(*models)
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def check_batch_size(batch_size, strategy):
    """The global batch must split evenly: every replica gets the same number of examples."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise configs.ConfigError(f"--batch_size must be a multiple of the {replicas} replicas of the strategy. "
                                  f"Received: batch_size={batch_size}")
