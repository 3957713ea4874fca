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


def test_linear_decay_held_for_part_of_the_run():
    # pix2pix-style: 1e-3 for 60 of 100 steps, then down to 0 at step 100 (2.5e-5 per step).
    schedule = schedules.LinearDecay(1e-3, total_steps=100, hold_steps=60)
    values = [float(schedule(s)) for s in (0, 59, 60, 61, 80, 99, 100, 150)]
    np.testing.assert_allclose(values, [1e-3, 1e-3, 1e-3, 9.75e-4, 5e-4, 2.5e-5, 0.0, 0.0], rtol=1e-5, atol=1e-9)
    # Counted in trainer steps: with 5 updates per batch, iteration 400 is step 80.
    schedule = schedules.LinearDecay(1e-3, total_steps=100, hold_steps=60, updates_per_step=5)
    assert float(schedule(400)) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="hold_steps=101"):
        schedules.LinearDecay(1e-3, total_steps=100, hold_steps=101)


def test_linear_schedule_from_the_hold_fraction_and_its_config_round_trip():
    schedule = schedules.build_schedule("linear", 8e-4, 1, minimum=0.0, total_steps=6500, hold_fraction=0.5)
    assert schedule.hold_steps == 3250
    assert float(schedule(3250)) == pytest.approx(8e-4) and float(schedule(4875)) == pytest.approx(4e-4)
    restored = schedules.LinearDecay(**schedule.get_config())
    assert restored.get_config() == schedule.get_config()
    # A config saved before hold_steps existed still loads, as a decay from the first step.
    old = {k: v for k, v in schedule.get_config().items() if k != "hold_steps"}
    assert float(schedules.LinearDecay(**old)(3250)) == pytest.approx(4e-4)


def test_trainers_get_the_held_schedule_from_the_config():
    from t2i import configs
    from t2i.training import factory

    config = configs.TrainConfig(log_dir="unused", steps=200, lr_schedule="linear", lr_hold_fraction=0.25)
    for optimizer in factory.build_optimizers(config, 200):
        assert optimizer._learning_rate.hold_steps == 50 and optimizer._learning_rate.total_steps == 200
