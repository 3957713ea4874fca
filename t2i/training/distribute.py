"""`tf.distribute` strategies by name, and who is the chief."""
import json
import os

import tensorflow as tf


def get_strategy(name="default"):
    """'default' (one device), 'mirrored' (all local devices), 'multi_worker' (TF_CONFIG describes the cluster)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy; expected default, mirrored or multi_worker. Received: strategy={name!r}")


def is_chief():
    """Only the chief writes checkpoints, samples and exports; workers without a TF_CONFIG are their own chief."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    if not task:
        return True
    cluster = config.get("cluster", {})
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in cluster
