"""Learning-rate schedules in trainer steps (one step = one batch), whatever the updates per batch."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="t2i")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = max(initial · rate^⌊step / decay_steps⌋, minimum): StackGAN's 'halve every N epochs', BEGAN's floor.

    `updates_per_step` converts the optimizer's iteration count (which counts every update) back to trainer steps,
    so a discriminator updated 5 times per batch decays on the same schedule as its generator.
    """

    def __init__(self, initial_learning_rate, decay_steps, rate=0.5, minimum=0.0, updates_per_step=1):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.rate = float(rate)
        self.minimum = float(minimum)
        self.updates_per_step = int(updates_per_step)

    def __call__(self, step):
        trainer_step = ops.floor(ops.cast(step, "float32") / self.updates_per_step)
        decayed = self.initial_learning_rate * ops.power(self.rate, ops.floor(trainer_step / self.decay_steps))
        return ops.maximum(decayed, self.minimum)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "rate": self.rate, "minimum": self.minimum, "updates_per_step": self.updates_per_step,
        }


@keras.saving.register_keras_serializable(package="t2i")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr stays at its initial value for `hold_steps` trainer steps, then falls linearly to `minimum` at
    `total_steps` (hold_steps 0: from the first step; pix2pix / CycleGAN hold half their epochs).

    `horizon`: optionally a scalar integer variable holding the run's last step, read at every call instead of
    `total_steps` (the hold then lasts the same fraction of it, round(hold_steps / total_steps · horizon)): how
    `t2i-train --time_budget` fits the whole schedule into the steps that fit its time, found while training.
    """

    def __init__(self, initial_learning_rate, total_steps, minimum=0.0, updates_per_step=1, hold_steps=0,
                 horizon=None):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.minimum = float(minimum)
        self.updates_per_step = int(updates_per_step)
        self.hold_steps = int(hold_steps)
        self.horizon = horizon
        if not 0 <= self.hold_steps <= max(self.total_steps, 0):
            raise ValueError(f"hold_steps must be in [0, total_steps={self.total_steps}]. "
                             f"Received: hold_steps={hold_steps}")

    @property
    def hold_fraction(self):
        return self.hold_steps / self.total_steps if self.total_steps > 0 else 0.0

    def __call__(self, step):
        trainer_step = ops.floor(ops.cast(step, "float32") / self.updates_per_step)
        if self.horizon is None:
            hold_steps, decay_steps = self.hold_steps, max(self.total_steps - self.hold_steps, 1)
        else:
            total = ops.cast(ops.convert_to_tensor(self.horizon), "float32")
            hold_steps = ops.round(self.hold_fraction * total)
            decay_steps = ops.maximum(total - hold_steps, 1.0)
        fraction = ops.clip((trainer_step - hold_steps) / decay_steps, 0.0, 1.0)
        return self.initial_learning_rate + (self.minimum - self.initial_learning_rate) * fraction

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
            "minimum": self.minimum, "updates_per_step": self.updates_per_step, "hold_steps": self.hold_steps,
        }


def build_schedule(kind, learning_rate, updates_per_step, decay_steps=0, rate=0.5, minimum=0.0, total_steps=0,
                   hold_fraction=0.0, horizon=None):
    """The learning rate of `--lr_schedule=kind`; `horizon` (see `LinearDecay`) is read by the linear schedule
    only, the others do not depend on the run's length."""
    if kind == "constant":
        return learning_rate
    if kind == "step":
        return StepDecay(learning_rate, decay_steps, rate, minimum, updates_per_step)
    if kind == "linear":
        return LinearDecay(learning_rate, total_steps, minimum, updates_per_step,
                           hold_steps=int(round(hold_fraction * total_steps)), horizon=horizon)
    raise ValueError(f"Unknown learning-rate schedule. Received: lr_schedule={kind!r}")


def horizon_decay_start(kind, hold_fraction, total_steps):
    """For `--time_budget`: None when schedule `kind` does not depend on the run's length, else a function
    horizon → the step at which a `LinearDecay` following that horizon starts to decay (its hold's end)."""
    if kind != "linear":
        return None
    fraction = int(round(hold_fraction * total_steps)) / total_steps if total_steps > 0 else 0.0
    return lambda horizon: int(round(fraction * horizon))
