"""The training pipeline around each dataset: batch shapes, dtypes and value ranges."""
import numpy as np

from t2i import configs
from t2i.data import datasets, shapes


def test_shapes_training_pipeline_batches_images_in_unit_range(tmp_path):
    config = configs.TrainConfig(dataset="shapes", image_size=32, num_examples=20, log_dir=str(tmp_path), steps=1)
    dataset, size = datasets.build_dataset(config)
    assert size == 20
    batches = datasets.training_pipeline(dataset, batch_size=8, keys=("image", "label"), seed=0)
    seen = []
    for batch in batches.take(5):  # 40 images > 20: the pipeline repeats
        image = batch["image"].numpy()
        assert image.shape == (8, 32, 32, 3) and image.dtype == np.float32
        assert image.min() >= -1.0 and image.max() <= 1.0
        assert batch["label"].shape == (8, shapes.NUM_LABELS)
        seen.append(image)
    # The plain background maps to its exact [-1, 1] value.
    background = np.asarray(shapes.BACKGROUND, np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(seen[0][0, 0, 0], background, atol=1e-6)
    # Shuffled differently each epoch, but every image comes from the dataset.
    originals = {shapes.render_example(i, image_size=32)["image"].tobytes() for i in range(20)}
    restored = np.round((np.concatenate(seen) + 1.0) * 127.5).astype(np.uint8)
    assert {image.tobytes() for image in restored} <= originals
