"""Learning-rate schedules against hand values, counted in trainer steps."""
import numpy as np
import pytest

from t2i.training import schedules


def test_step_decay_halves_and_floors():
    schedule = schedules.StepDecay(8e-5, decay_steps=10, rate=0.5, minimum=2e-5)
    values = [float(schedule(step)) for step in (0, 9, 10, 19, 20, 30, 1000)]
    np.testing.assert_allclose(values, [8e-5, 8e-5, 4e-5, 4e-5, 2e-5, 2e-5, 2e-5], rtol=1e-6)


def test_step_decay_counts_trainer_steps_not_updates():
    # 5 critic updates per batch: optimizer iteration 49 is trainer step 9, iteration 50 is step 10.
    schedule = schedules.StepDecay(1e-4, decay_steps=10, rate=0.5, updates_per_step=5)
    assert float(schedule(49)) == pytest.approx(1e-4)
    assert float(schedule(50)) == pytest.approx(5e-5)


def test_linear_decay_reaches_the_minimum():
    schedule = schedules.LinearDecay(1e-3, total_steps=100, minimum=1e-4)
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 50, 100, 200)], [1e-3, 5.5e-4, 1e-4, 1e-4],
                               rtol=1e-5)


def test_schedules_serialise():
    schedule = schedules.StepDecay(2e-4, 100, 0.5, 1e-5, 2)
    assert schedules.StepDecay(**schedule.get_config()).get_config() == schedule.get_config()
