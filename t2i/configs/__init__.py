"""Training configuration: dataclass, presets, validation."""
from t2i.configs.config import (  # noqa: F401
    DATASETS, MODELS, PRESETS, TEXT_DATASETS, TEXT_MODELS, ConfigError, TrainConfig, check_resume_compatible, from_preset, load, save, validate,
)
