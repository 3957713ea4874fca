"""Exports generators as SavedModels in TF Serving's layout `<export_dir>/<name>/<version>/`.

Versions are integers that only increase; an export is written to a hidden temporary folder and renamed into place,
so TF Serving (which watches the folder) never loads a half-written version and nothing is overwritten.
"""
import json
import os
import re
import shutil

import tensorflow as tf

from t2i.export.serving import GeneratorModule, TextGeneratorModule

# Beside the model, where TF Serving looks for extras (e.g. warm-up requests) and ignores unknown files.
METADATA_PATH = os.path.join("assets.extra", "t2i.json")


def existing_versions(model_dir):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name))


def export_generator(generator, export_dir, name, metadata=None, noise_distribution=None):
    """Writes `generator` as the next version under export_dir/name and returns that version's path.

    Signatures: `serving_default` over the generator's named inputs and, for generators with a `noise` input,
    `seeded` (a `seed` per image instead of the noise, drawn from `noise_distribution`: default the metadata's
    "noise_distribution", else "normal"). `metadata`
    (JSON-serialisable: noise distribution, label names, ...) goes to `assets.extra/t2i.json`, so that clients such
    as `t2i-sample --saved_model` can build valid inputs.
    """
    module = GeneratorModule(generator, noise_distribution or (metadata or {}).get("noise_distribution", "normal"))
    return write_version(module, module.signatures(), export_dir, name, metadata)


def export_text_generator(encoder, generator, export_dir, name, noise_dim, noise_distribution="normal",
                          metadata=None):
    """Like `export_generator`, with the text encoder bundled: the SavedModel takes caption strings."""
    module = TextGeneratorModule(encoder, generator, noise_dim, noise_distribution)
    signatures = {"serving_default": module.serving_default, "seeded": module.seeded}
    return write_version(module, signatures, export_dir, name, dict(metadata or {}, text_input=True))


def write_version(module, signatures, export_dir, name, metadata):
    """Saves `module` with `signatures` as the next integer version under export_dir/name (written to a hidden
    temporary folder, then renamed), with `metadata` in assets.extra/t2i.json; returns the version's path."""
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"--export_name must be a plain folder name. Received: name={name!r}")
    model_dir = os.path.join(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    version = (existing_versions(model_dir) or [0])[-1] + 1
    final = os.path.join(model_dir, str(version))
    tmp = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, tmp, signatures=signatures)
    metadata = dict(metadata or {}, inputs=module.input_names, signatures=module.signature_inputs)
    os.makedirs(os.path.join(tmp, os.path.dirname(METADATA_PATH)), exist_ok=True)
    with open(os.path.join(tmp, METADATA_PATH), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
    os.rename(tmp, final)
    return final


def read_metadata(version_dir):
    """The export's t2i metadata ({} for exports without it)."""
    path = os.path.join(version_dir, METADATA_PATH)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)
