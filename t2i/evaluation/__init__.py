"""Offline GAN evaluation: metric maths (IS, FID, KID), local feature networks, cached reference statistics, and the
`shapes` evaluator classifier with its metrics (iCLEVR accuracy, caption accuracy, evaluator FID)."""
from t2i.evaluation.classifier import ShapesEvaluator, load_evaluator, train_evaluator  # noqa: F401
from t2i.evaluation.evaluate import (  # noqa: F401
    caption_attribute_accuracy,
    caption_labels,
    iclevr_accuracy,
    run_evaluation,
)
from t2i.evaluation.features import (  # noqa: F401
    ExtractedFeatures,
    FeatureExtractor,
    FeatureNetworkError,
    HubInception,
    KerasInceptionV3,
    SavedModelClassifier,
    extract,
    prepare_images,
    resize_policy,
)
from t2i.evaluation.metrics import (  # noqa: F401
    GaussianStats,
    MetricError,
    fid_from_stats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)
from t2i.evaluation.reference_stats import cache_path, reference_key, reference_statistics  # noqa: F401
