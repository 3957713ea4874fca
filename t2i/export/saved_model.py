"""Exports generators as SavedModels in TF Serving's layout `<export_dir>/<name>/<version>/`.

Versions are integers that only increase; an export is written to a hidden temporary folder and renamed into place,
so TF Serving (which watches the folder) never loads a half-written version and nothing is overwritten.
"""
import os
import re
import shutil

import tensorflow as tf

from t2i.export.serving import NoiseGeneratorModule


def existing_versions(model_dir):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name))


def export_generator(generator, export_dir, name):
    """Writes `generator` as the next version under export_dir/name and returns that version's path."""
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"--export_name must be a plain folder name. Received: name={name!r}")
    model_dir = os.path.join(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    version = (existing_versions(model_dir) or [0])[-1] + 1
    final = os.path.join(model_dir, str(version))
    tmp = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    module = NoiseGeneratorModule(generator)
    tf.saved_model.save(module, tmp, signatures={"serving_default": module.serving_default})
    os.rename(tmp, final)
    return final
