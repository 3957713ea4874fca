"""--time_budget: the run ends at the last step that fits, its linear schedule fitted to that step.

A fake clock stands in for the wall clock (seconds as a function of the step), so every figure here is exact and
no test depends on how fast the machine is.
"""
import io
import os

import numpy as np
import pytest
import tensorflow as tf

from t2i import configs
from t2i.training import callbacks as cb
from t2i.training import run, schedules

_TimeBudget = cb.TimeBudget


def test_linear_decay_follows_its_horizon_variable():
    horizon = tf.Variable(100, dtype=tf.int64)
    followed = schedules.LinearDecay(1.0, total_steps=100, hold_steps=50, horizon=horizon)
    fixed = schedules.LinearDecay(1.0, total_steps=100, hold_steps=50)
    steps = [0, 49, 50, 60, 75, 99, 100, 120]
    np.testing.assert_allclose([float(followed(s)) for s in steps], [float(fixed(s)) for s in steps])
    # The run now ends at step 60: a hold of round(0.5 · 60) = 30 steps, then 1/30 per step down to 0 at 60.
    horizon.assign(60)
    values = [float(followed(s)) for s in (0, 29, 30, 45, 59, 60, 100)]
    np.testing.assert_allclose(values, [1.0, 1.0, 1.0, 0.5, 1 / 30, 0.0, 0.0], rtol=1e-6, atol=1e-7)
    # In trainer steps: with 5 updates per batch, optimizer iteration 225 is trainer step 45.
    counted = schedules.LinearDecay(1.0, total_steps=100, hold_steps=50, updates_per_step=5, horizon=horizon)
    assert float(counted(225)) == pytest.approx(0.5)


def test_decay_start_of_the_schedules():
    start = schedules.horizon_decay_start("linear", 0.5, 7500)
    assert [start(h) for h in (7500, 3000, 91)] == [3750, 1500, 46]  # round half to even, as tf.round: 45.5 → 46
    assert schedules.horizon_decay_start("linear", 0.0, 7500)(3000) == 0
    assert schedules.horizon_decay_start("constant", 0.5, 7500) is None
    assert schedules.horizon_decay_start("step", 0.5, 7500) is None


class _Trainer:
    def __init__(self, step=0, horizon=1000):
        self.global_step = tf.Variable(step, dtype=tf.int64)
        self.step_horizon = tf.Variable(horizon, dtype=tf.int64)
        self.stop_training = False


def _drive(budget, trainer, seconds_at, freeze_step, max_steps=1000, probe_steps=20):
    """Runs steps until the callback stops them; the clock reads seconds_at(step). -> (callback, printed text)."""
    stream = io.StringIO()
    callback = cb.TimeBudget(trainer, budget, max_steps, freeze_step, probe_steps=probe_steps,
                             clock=lambda: seconds_at(int(trainer.global_step.numpy())), stream=stream)
    callback.on_train_begin()
    while not trainer.stop_training and int(trainer.global_step.numpy()) < max_steps:
        trainer.global_step.assign_add(1)
        callback.on_train_batch_end(0)
    return callback, stream.getvalue()


def test_budget_sets_the_last_step_and_freezes_it_when_the_decay_starts():
    # Tracing takes 10 s (step 1 ends at t = 10), then 1 s per step; budget 100 s. From step 21 (20 timed steps)
    # on, the rate is 1 s/step and step s leaves 100 - (9 + s) seconds: the last step that fits is 91.
    trainer = _Trainer()
    callback, printed = _drive(100, trainer, lambda s: 0.0 if s == 0 else 9.0 + s,
                               schedules.horizon_decay_start("linear", 0.5, 1000))
    assert int(trainer.global_step.numpy()) == 91 and int(trainer.step_horizon.numpy()) == 91
    assert callback.frozen and not callback.ran_out and callback.seconds_per_step == pytest.approx(1.0)
    # Frozen where the decay of a 91-step schedule starts: step round(45.5) = 46.
    assert printed == "--time_budget=100: 1.000 s/step over 45 timed steps; training to step 91 of 1000\n"


def test_a_slower_machine_after_the_freeze_stops_at_the_budget():
    # As above until step 46 (t = 55), then 2 s per step: the budget is spent at step 69 (t = 101), short of 91.
    trainer = _Trainer()
    callback, _ = _drive(100, trainer, lambda s: 0.0 if s == 0 else (9.0 + s if s <= 46 else 55.0 + 2 * (s - 46)),
                         schedules.horizon_decay_start("linear", 0.5, 1000))
    assert int(trainer.global_step.numpy()) == 69 and int(trainer.step_horizon.numpy()) == 91
    assert callback.ran_out


def test_schedules_independent_of_the_length_keep_re_estimating():
    # A constant rate: nothing to freeze, the last step follows the measured rate (here the steps speed up
    # from 2 s to 0.5 s after step 30, so the run goes further than the first estimate said).
    trainer = _Trainer()
    seconds = lambda s: 0.0 if s == 0 else (2.0 * s if s <= 30 else 60.0 + 0.5 * (s - 30))
    callback, printed = _drive(100, trainer, seconds, None)
    first = "--time_budget=100: 2.000 s/step over 20 timed steps; training to about step 50 of 1000\n"
    assert printed == first
    # Step 108 ends at t = 99 with 1 s left at (97 / 107) s/step: one more fits. Step 109 ends at t = 99.5 with
    # 0.5 s left at (97.5 / 108) = 0.903 s/step: none fits, so 109 is the last step (t = 100 would be step 110).
    assert int(trainer.global_step.numpy()) == 109 and int(trainer.step_horizon.numpy()) == 109
    assert not callback.ran_out


def test_a_budget_counted_from_an_earlier_moment_has_that_time_spent():
    # The job began 40 s before training (earlier commands): of 100 s, 60 are left. Tracing 10 s, then 1 s/step:
    # step s ends 49 + s s into the budget, so the last step that fits is 51 (its decay starts at 26).
    trainer = _Trainer()
    stream = io.StringIO()
    seconds_at = lambda s: 0.0 if s == 0 else 9.0 + s
    callback = cb.TimeBudget(trainer, 100, 1000, schedules.horizon_decay_start("linear", 0.5, 1000),
                             clock=lambda: seconds_at(int(trainer.global_step.numpy())), stream=stream,
                             started_at=5000.0, wall_clock=lambda: 5040.0)
    callback.on_train_begin()
    while not trainer.stop_training:
        trainer.global_step.assign_add(1)
        callback.on_train_batch_end(0)
    assert callback.spent_before == 40.0
    assert int(trainer.global_step.numpy()) == 51 and int(trainer.step_horizon.numpy()) == 51
    assert stream.getvalue() == ("--time_budget=100 (40 s of it spent before training): 1.000 s/step over 25 timed "
                                 "steps; training to step 51 of 1000\n")


def test_a_budget_that_holds_every_step_changes_nothing():
    trainer = _Trainer()
    callback, printed = _drive(1e6, trainer, lambda s: float(s), schedules.horizon_decay_start("linear", 0.5, 300),
                               max_steps=300)
    assert int(trainer.global_step.numpy()) == 300 and int(trainer.step_horizon.numpy()) == 300
    assert not callback.ran_out and "training to step 300 of 300" in printed


def _fake_clock(monkeypatch, seconds_at):
    """Runs under `run.train` read `seconds_at(global step)` as TimeBudget's clock."""
    class FakeClockBudget(_TimeBudget):
        def __init__(self, trainer, *args, **kwargs):
            kwargs["clock"] = lambda: seconds_at(int(trainer.global_step.numpy()))
            super().__init__(trainer, *args, **kwargs)

    monkeypatch.setattr(cb, "TimeBudget", FakeClockBudget)


def _lr_at(log_dir, step):
    return {row["step"]: row for row in cb.read_csv_rows(os.path.join(log_dir, "losses.csv"))}[step]["lr_g"]


def test_train_ends_at_the_budgeted_step_with_the_schedule_run_out_and_a_rerun_does_nothing(make_config,
                                                                                           monkeypatch):
    # 0.5 s per step from the start: 30 s hold steps 1..60; the linear schedule holds 30 of them, then decays
    # to 0 at step 60, where the run checkpoints, draws and exports.
    _fake_clock(monkeypatch, lambda s: 0.5 * s)
    config = make_config(steps=100000, time_budget=30.0, lr_schedule="linear", lr_hold_fraction=0.5,
                         checkpoint_every=1000, sample_every=1000, lr_g=1e-3, lr_d=1e-3)
    result = run.train(config, verbose=0)
    assert result.step == 60 and result.checkpoint.endswith("ckpt-60")
    assert result.samples.endswith("step_0000060.png")
    assert _lr_at(config.log_dir, 30) == pytest.approx(1e-3)
    assert _lr_at(config.log_dir, 45) == pytest.approx(0.5e-3, rel=1e-5)
    assert _lr_at(config.log_dir, 60) == pytest.approx(0.0, abs=1e-9)
    assert configs.load(config.log_dir).time_budget == 30.0

    again = run.train(config, verbose=0)
    assert again.resumed_from == 60 and again.step == 60


def test_a_run_that_ran_out_resumes_to_its_frozen_last_step(make_config, monkeypatch):
    # First invocation: 0.5 s per step up to step 40, then 5 s per step. The end froze at step 60 when the decay
    # began (step 30); the budget runs out at step 42 (t = 20 + 10 = 30 s).
    _fake_clock(monkeypatch, lambda s: 0.5 * s if s <= 40 else 20.0 + 5.0 * (s - 40))
    config = make_config(steps=100000, time_budget=30.0, lr_schedule="linear", lr_hold_fraction=0.5,
                         checkpoint_every=1000, sample_every=1000, lr_g=1e-3, lr_d=1e-3)
    first = run.train(config, verbose=0)
    assert first.step == 42 and first.checkpoint.endswith("ckpt-42")
    # The second invocation keeps that end (a new estimate would stretch a decay already under way).
    _fake_clock(monkeypatch, lambda s: 0.5 * (s - 42))
    second = run.train(config, verbose=0)
    assert second.resumed_from == 42 and second.step == 60
    assert _lr_at(config.log_dir, 45) == pytest.approx(0.5e-3, rel=1e-5)
    assert _lr_at(config.log_dir, 60) == pytest.approx(0.0, abs=1e-9)

    # Without a budget the run trains to --steps again (the user's explicit length): the checkpointed end yields.
    monkeypatch.undo()
    third = run.train(config.replace(time_budget=0.0, steps=64), verbose=0)
    assert third.resumed_from == 60 and third.step == 64


def test_a_budget_spent_before_training_stops_after_one_step(make_config, capsys):
    import time

    # The job "began" 2000 s ago against a 1000 s budget: one step (the trace) runs, and the run says why it stopped.
    config = make_config(steps=50, time_budget=1000.0, time_budget_start=time.time() - 2000.0,
                         lr_schedule="linear", lr_hold_fraction=0.5)
    result = run.train(config, verbose=0)
    assert result.step == 1 and result.checkpoint.endswith("ckpt-1")
    printed = capsys.readouterr().out
    assert "--time_budget=1000 s ran out at step 1, before the planned last step 50" in printed


def test_checkpoints_written_before_the_horizon_existed_still_resume(make_config):
    config = make_config(steps=4, checkpoint_every=1000)
    run.train(config, verbose=0)
    # Rewrite the run's checkpoint as the previous version wrote it: everything but step_horizon.
    from t2i.training import factory

    cfg = configs.load(config.log_dir)
    trainer = factory.build_trainer(cfg, 4)
    latest = tf.train.latest_checkpoint(run.checkpoint_dir(config.log_dir))
    run.make_checkpoint(trainer).restore(latest).assert_existing_objects_matched()
    old = run.make_checkpoint(trainer, with_horizon=False)
    old_path = tf.train.CheckpointManager(old, run.checkpoint_dir(config.log_dir), 3).save(checkpoint_number=4)
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(old_path)}
    assert "step_horizon" not in names and "global_step" in names

    resumed = run.train(config.replace(steps=6), verbose=0)
    assert resumed.resumed_from == 4 and resumed.step == 6
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(resumed.checkpoint)}
    assert "step_horizon" in names


@pytest.mark.parametrize("changes", [dict(time_budget=-1.0), dict(time_budget=float("nan")),
                                     dict(time_budget=float("inf")),
                                     dict(time_budget=60.0, strategy="multi_worker"),
                                     dict(time_budget_start=1.7e9), dict(time_budget=60.0, time_budget_start=-5.0),
                                     dict(time_budget=60.0, time_budget_start=4.1e9)])
def test_bad_budgets_name_the_flag(changes, tmp_path):
    config = configs.TrainConfig(log_dir=str(tmp_path), steps=5, **changes)
    with pytest.raises(configs.ConfigError) as error:
        configs.validate(config)
    flag = "--time_budget_start" if "time_budget_start" in changes else "--time_budget"
    assert str(error.value).startswith(flag + ":") and "Received:" in str(error.value)
