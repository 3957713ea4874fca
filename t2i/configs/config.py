"""Typed training configuration, named presets, and up-front validation.

A run is described entirely by a `TrainConfig`. Binaries build one from a preset plus the flags the user gave;
the library validates it before any work starts and writes it to `<log_dir>/config.json`, which is what
`t2i-sample`, `t2i-export` and resumed runs read back.
"""
import dataclasses
import json
import os

from t2i.utils import files

MODELS = ("dcgan",)
DATASETS = ("shapes", "folder")
LOSSES = ("minimax", "non_saturating", "hinge", "wasserstein", "least_squares")
LR_SCHEDULES = ("constant", "step", "linear")
STRATEGIES = ("default", "mirrored", "multi_worker")

# Fields that fix the networks' shapes or the data they were trained on: a resumed run must not change them.
ARCHITECTURE_FIELDS = (
    "model", "dataset", "image_size", "channels", "noise_dim", "gf_dim", "df_dim", "max_filters", "upsampling",
)


class ConfigError(ValueError):
    """A bad flag or config value; the message names the flag."""


@dataclasses.dataclass
class TrainConfig:
    # What to train.
    model: str = "dcgan"
    # Data.
    dataset: str = "shapes"
    data_dir: str = ""
    num_examples: int = 10000
    dataset_seed: int = 0
    image_size: int = 64
    channels: int = 3
    class_subfolders: bool = False
    on_bad_image: str = "skip"
    # Networks.
    noise_dim: int = 100
    gf_dim: int = 64
    df_dim: int = 64
    max_filters: int = 512
    upsampling: str = "transposed"
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    # Objective and update rule.
    loss: str = "non_saturating"
    label_smoothing: float = 0.0
    gp_weight: float = 0.0
    n_critic: int = 1
    n_gen: int = 1
    batch_size: int = 64
    steps: int = 0
    epochs: int = 0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_schedule: str = "constant"
    lr_decay_steps: int = 0
    lr_decay_rate: float = 0.5
    lr_min: float = 0.0
    # Run bookkeeping.
    log_dir: str = ""
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 200
    num_samples: int = 64
    log_every: int = 10
    seed: int = 0
    jit_compile: bool = False
    strategy: str = "default"
    export_dir: str = ""
    export_name: str = ""

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown config keys {unknown}; known keys are the t2i-train flags.")
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# Named presets: the hyperparameters of the original experiments. Every field stays overridable by its flag.
PRESETS = {
    # Radford et al. 2016: Adam 2e-4, β1 0.5, batch 128, z 100, N(0, 0.02) init, 64×64.
    "dcgan": dict(model="dcgan", image_size=64, batch_size=128, noise_dim=100, lr_g=2e-4, lr_d=2e-4, beta1=0.5),
    # The README's main job: DCGAN on the embedded shapes at 32×32, sized to finish in minutes on 2 CPU cores.
    # Nearest-upsampling removed the transposed convs' checkerboard; one-sided smoothing 0.1 calmed the
    # D-dominant oscillation (both chosen by looking at the grids of 1200-1600-step runs).
    "dcgan_shapes": dict(
        model="dcgan", dataset="shapes", image_size=32, batch_size=64, steps=1600, gf_dim=32, df_dim=32,
        upsampling="nearest", label_smoothing=0.1,
        lr_g=2e-4, lr_d=2e-4, beta1=0.5, sample_every=200, checkpoint_every=200,
    ),
}


def from_preset(name, **overrides):
    """A config from a named preset with `overrides` applied on top."""
    if name and name not in PRESETS:
        raise ConfigError(f"Unknown --preset; expected one of {sorted(PRESETS)}. Received: preset={name!r}")
    values = dict(PRESETS.get(name, {}))
    values.update(overrides)
    return TrainConfig.from_dict(values)


def _power_of_two(value):
    return isinstance(value, int) and value > 0 and value & (value - 1) == 0


def validate(config):
    """Raises ConfigError naming the first bad flag; runs before any data is read or graph built."""
    def fail(flag, message):
        raise ConfigError(f"--{flag}: {message}. Received: {flag}={getattr(config, flag)!r}")

    def choice(flag, allowed):
        if getattr(config, flag) not in allowed:
            fail(flag, f"must be one of {', '.join(allowed)}")

    choice("model", MODELS)
    choice("dataset", DATASETS)
    choice("loss", LOSSES)
    choice("lr_schedule", LR_SCHEDULES)
    choice("strategy", STRATEGIES)
    choice("upsampling", ("transposed", "nearest"))
    choice("on_bad_image", ("skip", "fail"))
    if not config.log_dir:
        fail("log_dir", "is required (the run directory for checkpoints, samples and logs)")
    if not _power_of_two(config.image_size) or not 32 <= config.image_size <= 256:
        fail("image_size", "must be a power of two in [32, 256]")
    if config.dataset == "shapes" and config.channels != 3:
        fail("channels", "the shapes dataset is RGB; use 3")
    if config.dataset == "folder":
        if not config.data_dir:
            fail("data_dir", "is required with --dataset=folder")
        if not os.path.isdir(config.data_dir):
            fail("data_dir", "no such directory")
    for flag in ("batch_size", "channels", "noise_dim", "gf_dim", "df_dim", "max_filters", "n_critic", "n_gen",
                 "checkpoint_every", "sample_every", "num_samples", "log_every", "keep_checkpoints",
                 "num_examples"):
        if getattr(config, flag) <= 0:
            fail(flag, "must be > 0")
    if config.steps < 0:
        fail("steps", "must be >= 0")
    if config.epochs < 0:
        fail("epochs", "must be >= 0")
    if (config.steps > 0) == (config.epochs > 0):
        fail("steps", "give exactly one of --steps or --epochs (> 0)")
    for flag in ("lr_g", "lr_d"):
        if not getattr(config, flag) > 0:
            fail(flag, "must be > 0")
    for flag in ("beta1", "beta2"):
        if not 0 <= getattr(config, flag) < 1:
            fail(flag, "must be in [0, 1)")
    if not 0 <= config.label_smoothing < 1:
        fail("label_smoothing", "must be in [0, 1)")
    if config.label_smoothing and config.loss not in ("minimax", "non_saturating"):
        fail("label_smoothing", "applies to --loss=minimax or non_saturating only")
    if config.gp_weight < 0:
        fail("gp_weight", "must be >= 0")
    if config.lr_schedule == "step" and config.lr_decay_steps <= 0:
        fail("lr_decay_steps", "must be > 0 with --lr_schedule=step")
    if not 0 < config.lr_decay_rate <= 1:
        fail("lr_decay_rate", "must be in (0, 1]")
    if config.export_dir and not config.export_name:
        fail("export_name", "is required with --export_dir")
    return config


def save(config, log_dir):
    files.atomic_write_text(os.path.join(log_dir, "config.json"), config.to_json())


def load(log_dir):
    """The config a run was trained with; a missing or broken file is one clear error naming it."""
    path = os.path.join(log_dir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"--log_dir: {path} not found; is {log_dir!r} a t2i run directory?")
    try:
        with open(path, encoding="utf-8") as f:
            return TrainConfig.from_dict(json.load(f))
    except (json.JSONDecodeError, TypeError) as error:
        raise ConfigError(f"{path}: not a valid t2i config ({error})") from None


def check_resume_compatible(saved, requested):
    """A resumed run may change how long or how fast it trains, never what it trains."""
    for field in ARCHITECTURE_FIELDS:
        old, new = getattr(saved, field), getattr(requested, field)
        if old != new:
            raise ConfigError(
                f"--{field}: log_dir {requested.log_dir!r} holds a run trained with {field}={old!r}; "
                f"use that value or a new --log_dir. Received: {field}={new!r}"
            )
