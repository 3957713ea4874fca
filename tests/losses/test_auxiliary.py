"""The AC-GAN multi-label loss against hand-computed binary cross-entropies."""
import math

import numpy as np
import pytest

from t2i.losses.auxiliary import multilabel_classification_loss


def test_multilabel_loss_is_the_mean_per_label_bce():
    labels = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], "float32")
    logits = np.array([[2.0, -1.0, 0.0], [1.0, -3.0, 4.0]], "float32")

    def bce(y, x):
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    # Row 0: -log σ(2) = 0.126928, -log(1-σ(-1)) = 0.313262, -log σ(0) = 0.693147 → mean 0.377779.
    expected = [np.mean([bce(y, x) for y, x in zip(row_y, row_x)]) for row_y, row_x in zip(labels, logits)]
    assert expected[0] == pytest.approx(0.377779, abs=1e-6)
    np.testing.assert_allclose(multilabel_classification_loss(labels, logits), expected, rtol=1e-6)


def test_confident_correct_predictions_cost_almost_nothing():
    labels = np.array([[1.0, 0.0]], "float32")
    assert float(multilabel_classification_loss(labels, np.array([[20.0, -20.0]], "float32"))[0]) < 1e-8
    assert float(multilabel_classification_loss(labels, np.array([[-20.0, 20.0]], "float32"))[0]) == \
        pytest.approx(20.0, rel=1e-6)
