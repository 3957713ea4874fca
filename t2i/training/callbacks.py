"""Callbacks for `GANTrainer.fit`: non-finite guard, atomic checkpoints, sample grids, scalar logs, loss curves.

They act on the trainer's `global_step` (batches trained since the run began), not Keras' per-fit batch index,
so a resumed run keeps its schedule. Order matters: the guard runs first so a bad step is never checkpointed.
"""
import csv
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from t2i.utils import images as image_utils


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss or weight; the last good checkpoint is left intact."""


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers why."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer
        self.failure = None

    def fail(self, message):
        if self.failure is None:
            self.failure = message
        self.trainer.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                step = int(self.trainer.global_step.numpy())
                self.fail(f"{name} is {float(value)} at step {step}")
                return


def weights_are_finite(variables):
    return all(
        bool(tf.reduce_all(tf.math.is_finite(v.value))) for v in variables if tf.as_dtype(v.dtype).is_floating
    )


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every` steps and at the end, unless the guard has tripped or any weight is non-finite.

    `tf.train.CheckpointManager` writes the data files first and only then replaces the `checkpoint` index file
    atomically, so a kill at any moment leaves the index pointing at a complete checkpoint.
    """

    def __init__(self, trainer, manager, every, guard):
        super().__init__()
        self.trainer = trainer
        self.manager = manager
        self.every = every
        self.guard = guard
        self.last_saved_step = None

    def save(self):
        step = int(self.trainer.global_step.numpy())
        if self.guard.failure is not None or step == self.last_saved_step:
            return None
        if not weights_are_finite(self.trainer.generator.variables + self.trainer.discriminator.variables):
            self.guard.fail(f"a weight became non-finite by step {step}")
            return None
        path = self.manager.save(checkpoint_number=step)
        self.last_saved_step = step
        return path

    def on_train_batch_end(self, batch, logs=None):
        if int(self.trainer.global_step.numpy()) % self.every == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()


class SampleGridCallback(keras.callbacks.Callback):
    """Every `every` steps: the fixed-noise grid as `samples/step_XXXXXXX.png`, `samples.png` and a TB image."""

    def __init__(self, trainer, log_dir, every, writer=None, guard=None):
        super().__init__()
        self.trainer = trainer
        self.guard = guard
        self.log_dir = log_dir
        self.every = every
        self.writer = writer
        self.inputs = trainer.sample_inputs()
        self.last_path = None
        self.last_step = None

    def write(self):
        step = int(self.trainer.global_step.numpy())
        images = self.trainer.generate(self.inputs).numpy()
        path = os.path.join(self.log_dir, "samples", f"step_{step:07d}.png")
        grid = image_utils.save_grid(path, images, scale=image_utils.display_scale(images.shape[1]))
        image_utils.write_png(os.path.join(self.log_dir, "samples.png"), grid)
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
        self.last_path, self.last_step = path, step
        return path

    def _healthy(self):
        return self.guard is None or self.guard.failure is None

    def on_train_batch_end(self, batch, logs=None):
        if self._healthy() and int(self.trainer.global_step.numpy()) % self.every == 0:
            self.write()

    def on_train_end(self, logs=None):
        if not self._healthy():
            return
        if self.last_step != int(self.trainer.global_step.numpy()):
            self.write()


class ScalarLogger(keras.callbacks.Callback):
    """Every `every` steps: the window means of the trackers to TensorBoard and `losses.csv`, then resets them.

    Resetting makes the progress bar and the logs show recent values rather than the mean since the run began.
    Learning rates are logged too, as they follow a schedule.
    """

    def __init__(self, trainer, csv_path, every, writer=None):
        super().__init__()
        self.trainer = trainer
        self.csv_path = csv_path
        self.every = every
        self.writer = writer
        self._reset_pending = False
        self._last = None
        self._logged_step = None

    def _learning_rates(self):
        rates = {}
        for name, optimizer in (("lr_g", self.trainer.g_optimizer), ("lr_d", self.trainer.d_optimizer)):
            rates[name] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        return rates

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.global_step.numpy())
        self._last = (step, logs)
        if step % self.every == 0:
            self._log(step, logs)

    def _log(self, step, logs):
        self._logged_step = step
        row = {name: float(value) for name, value in (logs or {}).items()}
        row.update(self._learning_rates())
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in row.items():
                    tf.summary.scalar(name, value, step=step)
        if self.csv_path:
            append_csv_row(self.csv_path, step, row)
        self._reset_pending = True

    def on_train_batch_begin(self, batch, logs=None):
        # Reset before the next window rather than right after logging, so the final progress-bar line and the
        # end-of-fit logs still show the last window instead of zeros.
        if self._reset_pending:
            for metric in self.trainer.metrics:
                metric.reset_state()
            self._reset_pending = False

    def on_train_end(self, logs=None):
        # The final step is always logged, so short runs still get a row (and a loss curve).
        if self._last is not None and self._last[0] != self._logged_step:
            self._log(*self._last)
        if self.writer is not None:
            self.writer.flush()


def append_csv_row(path, step, row):
    exists = os.path.exists(path)
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if not exists:
            writer.writerow(["step", *sorted(row)])
        writer.writerow([step, *(row[k] for k in sorted(row))])


def read_csv_rows(path):
    """Rows of `losses.csv` as dicts; a torn last line (from a kill mid-write) is dropped."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        for values in reader:
            if header and len(values) == len(header):
                try:
                    rows.append({k: float(v) for k, v in zip(header, values)})
                except ValueError:
                    continue
    return rows


def truncate_csv(path, max_step):
    """On resume, forget rows logged after the restored checkpoint (those steps are trained again)."""
    if not os.path.exists(path):
        return
    rows = read_csv_rows(path)
    os.remove(path)
    for row in rows:
        if row["step"] <= max_step:
            step = int(row.pop("step"))
            append_csv_row(path, step, row)


def plot_loss_curves(csv_path, png_path):
    """A matplotlib PNG of every logged loss against step; returns the path, or None with nothing logged."""
    rows = read_csv_rows(csv_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = np.array([row["step"] for row in rows])
    names = [k for k in rows[0] if k != "step" and not k.startswith("lr_")]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name in names:
        ax.plot(steps, [row.get(name, np.nan) for row in rows], label=name, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over logging window)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)
    logging.info("Wrote loss curves to %s", png_path)
    return png_path


class TimeBudget(keras.callbacks.Callback):
    """Ends the run within `budget` seconds of training at the last step that fits, the schedule fitted to it.

    The clock starts when training starts (the first step's tracing counts). After every step past the first
    `probe_steps` (the first step, which traces and compiles, is never part of a rate) it measures the seconds per
    step so far, sample grids and checkpoints included, and sets the trainer's `step_horizon` to the last step
    that fits what is left of the budget, at most `max_steps`. A linear schedule built on `step_horizon` holds
    and then decays towards it; once its decay starts (`freeze_step(horizon)`, None for schedules that do not
    depend on the run's length) the horizon is frozen, so the decay is one straight line; the run then ends at
    the frozen step. Should the machine slow down after that, training stops when the budget is spent, wherever
    it is (`ran_out` says so). A horizon restored from a checkpoint whose decay had started stays frozen.

    `started_at`: a Unix time (`wall_clock`'s) the budget counts from instead of the start of training; what
    passed between it and the start of training (earlier commands of a job, start-up) is already spent.
    """

    def __init__(self, trainer, budget, max_steps, freeze_step=None, probe_steps=20, clock=time.perf_counter,
                 stream=None, started_at=0.0, wall_clock=time.time):
        super().__init__()
        self.trainer = trainer
        self.budget = float(budget)
        self.started_at = float(started_at)
        self.wall_clock = wall_clock
        self.spent_before = 0.0
        self.max_steps = int(max_steps)
        self.freeze_step = freeze_step
        self.probe_steps = int(probe_steps)
        self.clock = clock
        self.stream = stream or sys.stdout
        self.frozen = False
        self.ran_out = False
        self.seconds_per_step = None
        self._start = self._first = None
        self._announced = False

    def _announce(self, step, horizon):
        about = "" if self.frozen else "about "
        spent = f" ({self.spent_before:.0f} s of it spent before training)" if self.started_at else ""
        self.stream.write(f"--time_budget={self.budget:g}{spent}: {self.seconds_per_step:.3f} s/step over "
                          f"{step - self._first[1]} timed steps; training to {about}step {horizon} of "
                          f"{self.max_steps}\n")
        self.stream.flush()
        self._announced = True

    def _horizon(self):
        return int(self.trainer.step_horizon.numpy())

    def _decay_started(self, step, horizon):
        return self.freeze_step is not None and step >= self.freeze_step(horizon)

    def on_train_begin(self, logs=None):
        self._start, self._first = self.clock(), None
        if self.started_at:
            self.spent_before = max(self.wall_clock() - self.started_at, 0.0)
            self._start -= self.spent_before
        horizon = self._horizon()
        self.frozen = self._decay_started(int(self.trainer.global_step.numpy()), horizon)

    def on_train_batch_end(self, batch, logs=None):
        now, step = self.clock(), int(self.trainer.global_step.numpy())
        elapsed = now - self._start
        if self._first is None:
            self._first = (now, step)
        horizon = self._horizon()
        if not self.frozen and step - self._first[1] >= self.probe_steps:
            self.seconds_per_step = (now - self._first[0]) / (step - self._first[1])
            fits = step + int(max(self.budget - elapsed, 0.0) // self.seconds_per_step)
            new = min(max(fits, step), self.max_steps)
            if new != horizon:
                self.trainer.step_horizon.assign(new)
            horizon = new
            if self._decay_started(step, horizon) or horizon == step:
                self.frozen = True
            if not self._announced and (self.frozen or self.freeze_step is None):
                self._announce(step, horizon)
        if step >= horizon:
            self.trainer.stop_training = True
        elif elapsed >= self.budget:
            self.ran_out = True
            self.trainer.stop_training = True


class ProgressBar(keras.callbacks.Callback):
    """One self-updating line on a terminal; on a log file (CI, nohup) a plain line every `every` steps.

    Keras' own bar rewrites itself with carriage returns even in log files, which turns a long run into one
    multi-megabyte line.
    """

    def __init__(self, trainer, total_steps, every=100, stream=None, width=24):
        """`total_steps`: the run's last step, or a variable holding it (`--time_budget` moves it)."""
        super().__init__()
        self.trainer = trainer
        self._total_steps = total_steps
        self.every = every
        self.stream = stream or sys.stdout
        self.width = width
        self.clock = time.perf_counter
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start_time = None
        self._start_step = None

    @property
    def total_steps(self):
        total = self._total_steps
        return int(total.numpy()) if hasattr(total, "numpy") else int(total)

    def on_train_begin(self, logs=None):
        self._start_step = int(self.trainer.global_step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.global_step.numpy())
        if self._start_time is None:
            # Timing starts after the first step, which includes tracing and compilation.
            self._start_time, self._start_step = self.clock(), step
            return
        if not self.interactive and step % self.every and step != self.total_steps:
            return
        self.stream.write(("\r" if self.interactive else "") + self.line(step, logs or {})
                          + ("" if self.interactive else "\n"))
        self.stream.flush()

    def line(self, step, logs):
        done = step / max(self.total_steps, 1)
        filled = int(round(self.width * done))
        bar = "=" * max(filled - 1, 0) + (">" if 0 < filled < self.width else "=" * min(filled, 1))
        timed = step - self._start_step
        seconds_per_step = (self.clock() - self._start_time) / timed if timed > 0 else float("nan")
        eta = seconds_per_step * (self.total_steps - step)
        eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}" if math.isfinite(eta) else "?"
        metrics = " ".join(f"{name} {float(value):.4f}" for name, value in logs.items())
        return (f"step {step}/{self.total_steps} [{bar:<{self.width}}] {seconds_per_step:.3f} s/step "
                f"ETA {eta_text} {metrics}")

    def on_train_end(self, logs=None):
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
