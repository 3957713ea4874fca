"""`train(config)`: one run from a validated config to checkpoints, samples, logs and (optionally) an export.

Re-running with the same `log_dir` resumes at the last complete checkpoint. Everything a later tool needs is in the
run directory:

    <log_dir>/config.json           the config (read by t2i-sample / t2i-export / a resumed run)
    <log_dir>/checkpoints/          tf.train checkpoints (ckpt-<step>), newest `keep_checkpoints` kept
    <log_dir>/samples/step_*.png    fixed-noise grids; <log_dir>/samples.png is the newest
    <log_dir>/tensorboard/          scalars (losses, learning rates) and sample images
    <log_dir>/losses.csv            the same scalars; <log_dir>/loss_curves.png plots them at the end
    <log_dir>/generator.keras       the trained generator for other Keras projects
    <log_dir>/samples_captions.txt  text models: the caption of each grid row
    <log_dir>/stage1_config.json    stackgan_stage2: the architecture of the Stage-I it refines
"""
import dataclasses
import os
import time

import keras
import tensorflow as tf
from absl import logging

from t2i import configs
from t2i.data import datasets
from t2i.export import saved_model
from t2i.training import callbacks as cb
from t2i.training import distribute, factory, sampling, schedules
from t2i.utils import files


@dataclasses.dataclass
class TrainResult:
    log_dir: str
    step: int
    resumed_from: int
    checkpoint: str | None
    samples: str | None
    loss_curves: str | None
    export: str | None


def _checkpointed_optimizer(optimizer):
    # A LossScaleOptimizer's state is its inner optimizer's plus a loss scale that re-adapts within a few steps:
    # checkpointing the inner one keeps checkpoints interchangeable between float32 and mixed_float16 runs.
    return getattr(optimizer, "inner_optimizer", optimizer)


def make_checkpoint(trainer, with_horizon=True):
    """The trainer's checkpoint; `with_horizon=False` leaves out `step_horizon` (to restore checkpoints written
    before it existed, which `restore_training_state` does on its own)."""
    horizon = {"step_horizon": trainer.step_horizon} if with_horizon else {}
    return tf.train.Checkpoint(
        generator=trainer.generator, discriminator=trainer.discriminator,
        g_optimizer=_checkpointed_optimizer(trainer.g_optimizer),
        d_optimizer=_checkpointed_optimizer(trainer.d_optimizer), global_step=trainer.global_step,
        **horizon, **trainer.extra_state(),
    )


def restore_training_state(trainer, checkpoint, path):
    """Restores `checkpoint` (from `make_checkpoint`) from `path`, checking every object was in it. A checkpoint
    written before runs checkpointed their last step (`step_horizon`) restores all the rest; the run's end is then
    its --steps, as it was when that checkpoint was written."""
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    if "step_horizon" not in names:
        checkpoint = make_checkpoint(trainer, with_horizon=False)
    checkpoint.restore(path).assert_existing_objects_matched()


def checkpoint_dir(log_dir):
    return os.path.join(log_dir, "checkpoints")


def total_steps(config, num_examples):
    if config.steps:
        return config.steps
    if not num_examples:
        raise configs.ConfigError("--epochs needs a dataset of known size; use --steps instead.")
    return config.epochs * max(num_examples // config.batch_size, 1)


def _prepare_log_dir(config, chief):
    saved_path = os.path.join(config.log_dir, "config.json")
    if os.path.exists(saved_path):
        configs.check_resume_compatible(configs.load(config.log_dir), config)
    if chief:
        os.makedirs(config.log_dir, exist_ok=True)


def train(config, verbose=True):
    """Trains per `config` (validated first) and returns where the results went; `verbose` shows progress.

    Under `config.strategy` the batch is the global batch, split across replicas, and BatchNorm layers are
    synchronised when there is more than one replica (see `t2i.training.distribute`). Only the chief writes into
    `log_dir`; other multi-worker tasks checkpoint into a scratch folder they remove at the end.
    """
    configs.validate(config)
    # First: the thread pools and MultiWorkerMirroredStrategy configure the runtime before any TensorFlow op runs.
    distribute.configure_threads(config.intra_op_threads, config.inter_op_threads)
    strategy = distribute.get_strategy(config.strategy)
    distribute.check_batch_size(config.batch_size, strategy)
    config = distribute.resolve_precision(config)
    chief = distribute.is_chief()
    try:
        config = factory.resolve_num_labels(config)
    except ValueError as error:
        raise configs.ConfigError(f"--dataset: {error}") from None
    config = factory.resolve_text(config)
    _prepare_log_dir(config, chief)
    if config.model == "stackgan_stage2" and chief:
        # The Stage-II run keeps the Stage-I architecture it was built on, so it samples and exports on its own.
        files.atomic_write_text(os.path.join(config.log_dir, factory.STAGE1_CONFIG),
                                factory.stage1_config(config).to_json())
    keras.utils.set_random_seed(config.seed)

    dataset, num_examples = datasets.build_dataset(config, split="train", training=True)
    steps = total_steps(config, num_examples)
    with strategy.scope():
        trainer = factory.build_trainer(config, steps)
    if strategy.num_replicas_in_sync > 1:
        distribute.synchronize_batch_norm(trainer.generator, trainer.discriminator)
    checkpoint = make_checkpoint(trainer)
    chief_checkpoints = checkpoint_dir(config.log_dir)
    own_checkpoints = distribute.checkpoint_directory(chief_checkpoints)
    try:
        return _train(config, chief, trainer, checkpoint, own_checkpoints, chief_checkpoints, dataset, steps,
                      verbose)
    finally:
        distribute.remove_worker_directory(own_checkpoints, chief_checkpoints)


def _train(config, chief, trainer, checkpoint, own_checkpoints, chief_checkpoints, dataset, steps, verbose):
    manager = tf.train.CheckpointManager(checkpoint, own_checkpoints, config.keep_checkpoints)
    resumed_from = 0
    # Every task restores from the chief's checkpoints (shared storage), the only ones that outlive a run.
    latest = tf.train.latest_checkpoint(chief_checkpoints)
    if latest:
        restore_training_state(trainer, checkpoint, latest)
        resumed_from = int(trainer.global_step.numpy())
        factory.apply_learning_rates(trainer, config)
        logging.info("Resumed from %s at step %d.", latest, resumed_from)
        print(f"Resumed from {latest} at step {resumed_from}.", flush=True)
    horizon = _restore_horizon(config, trainer, steps, resumed_from) if latest else steps
    trainer.step_horizon.assign(horizon)
    if chief:
        configs.save(config, config.log_dir)
        if config.uses_text:
            # Which caption each row of the progress grids shows.
            captions = sampling.grid_captions(config, config.num_samples)
            files.atomic_write_text(os.path.join(config.log_dir, "samples_captions.txt"), "\n".join(captions) + "\n")

    csv_path = os.path.join(config.log_dir, "losses.csv")
    if chief:
        cb.truncate_csv(csv_path, resumed_from)
    writer = tf.summary.create_file_writer(os.path.join(config.log_dir, "tensorboard")) if chief else None
    guard = cb.NonFiniteGuard(trainer)
    checkpointer = cb.CheckpointCallback(trainer, manager, config.checkpoint_every, guard)
    sampler = cb.SampleGridCallback(trainer, config.log_dir, config.sample_every, writer, guard)
    # Every worker resets its trackers and saves checkpoints on the same schedule (a multi-worker save is a
    # collective act); only the chief writes into log_dir.
    callbacks = [guard, cb.ScalarLogger(trainer, csv_path if chief else None, config.log_every, writer), checkpointer]
    budget = None
    if config.time_budget > 0:
        budget = cb.TimeBudget(trainer, config.time_budget, steps, schedules.horizon_decay_start(
            config.lr_schedule, config.lr_hold_fraction, steps), started_at=config.time_budget_start)
        callbacks.insert(1, budget)  # After the guard; before the callbacks that save or draw at the last step.
    if verbose:
        callbacks.append(cb.ProgressBar(trainer, trainer.step_horizon, every=max(config.log_every, steps // 20)))
    if chief:
        callbacks.append(sampler)

    remaining = horizon - resumed_from
    if remaining > 0:
        pipeline = datasets.training_pipeline(
            dataset, config.batch_size, keys=factory.batch_keys(config), seed=config.seed + resumed_from
        )
        fits = ""
        if budget is not None and horizon == steps:
            fits = f" or what fits --time_budget={config.time_budget:g} s"
            if config.time_budget_start:
                left = config.time_budget - (time.time() - config.time_budget_start)
                fits += f" ({left:.0f} s of it left)"
        print(f"Training {config.model} on {config.dataset} for steps {resumed_from + 1}-{horizon}{fits} "
              f"(batch {config.batch_size}, {config.image_size}x{config.image_size}) in {config.log_dir}", flush=True)
        trainer.fit(pipeline, epochs=1, steps_per_epoch=remaining, callbacks=callbacks, verbose=0, shuffle=False)
    else:
        to = f"its --time_budget end, of --steps={steps}" if horizon < steps else f"--steps={steps}"
        print(f"{config.log_dir} is already trained to step {resumed_from} ({to}); nothing to do.", flush=True)
    if budget is not None and remaining > 0:
        reached = int(trainer.global_step.numpy())
        if budget.ran_out:
            print(f"--time_budget={config.time_budget:g} s ran out at step {reached}, before the planned last step "
                  f"{int(trainer.step_horizon.numpy())}; re-run the command to finish.", flush=True)
        else:
            print(f"--time_budget={config.time_budget:g} s: trained to step {reached} of --steps={steps}.",
                  flush=True)
    if guard.failure is not None:
        last = tf.train.latest_checkpoint(chief_checkpoints) or "none written yet"
        raise cb.NonFiniteLossError(
            f"Training stopped: {guard.failure}. The last good checkpoint is intact: {last}. "
            "Lower the learning rates or check the data, then re-run to resume from it."
        )

    if remaining <= 0:
        checkpointer.save()
    result = TrainResult(config.log_dir, int(trainer.global_step.numpy()), resumed_from, None, None, None, None)
    if not chief:
        return result
    result.checkpoint = manager.latest_checkpoint
    result.samples = sampler.write() if sampler.last_path is None else sampler.last_path
    result.loss_curves = cb.plot_loss_curves(csv_path, os.path.join(config.log_dir, "loss_curves.png"))
    generator = float32_generator(trainer.sampling_generator, config)
    generator.save(os.path.join(config.log_dir, "generator.keras"))
    if config.export_dir:
        result.export = export_generator(generator, config, config.export_dir, config.export_name)
        print(f"Exported the generator to {result.export}", flush=True)
    print(f"Done at step {result.step}: samples {result.samples}, checkpoint {result.checkpoint}", flush=True)
    return result


def _restore_horizon(config, trainer, steps, resumed_from):
    """The last step of a resumed run: --steps, unless this run and the one it resumes both have a --time_budget
    and the restored run had frozen its budgeted end (its linear decay had started): that end then stands, so
    the decay stays one line."""
    restored = int(trainer.step_horizon.numpy())
    decay_start = schedules.horizon_decay_start(config.lr_schedule, config.lr_hold_fraction, steps)
    saved = os.path.join(config.log_dir, "config.json")
    budgeted = os.path.exists(saved) and configs.load(config.log_dir).time_budget > 0
    if (config.time_budget > 0 and budgeted and decay_start is not None and 0 < restored < steps
            and resumed_from >= decay_start(restored)):
        return restored
    return steps


def float32_generator(generator, config):
    """The generator for files other programs load: a mixed-precision run's network rebuilt under the float32 policy
    with the same weights (the weights are float32 already). A SavedModel traced in bfloat16 would run emulated,
    several times slower, on hardware without bfloat16; `restore_generator` builds float32 too."""
    if not config.mixed_precision:
        return generator
    with factory.precision_policy(config.replace(mixed_precision="")):
        copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(generator))
    copy.set_weights(generator.get_weights())
    return copy


def restore_generator(log_dir, checkpoint_path=None):
    """The generator of a run, rebuilt from its config.json and restored from its newest (or a given) checkpoint:
    the EMA weights when the run kept them (what its grids and exports show)."""
    config = configs.load(log_dir)
    with factory.precision_policy(config.replace(mixed_precision="")):  # float32 whatever the run trained in
        generator = factory.build_generator(config)
    path = checkpoint_path or tf.train.latest_checkpoint(checkpoint_dir(log_dir))
    if not path:
        raise configs.ConfigError(f"--log_dir: no checkpoint under {checkpoint_dir(log_dir)}")
    restore_generator_weights(generator, config, path)
    return generator, config, path


def restore_generator_weights(generator, config, path):
    """Loads the sampling generator's weights of checkpoint `path` (of a run with `config`) into `generator`."""
    name = "ema_generator" if config.ema_decay > 0 else "generator"
    tf.train.Checkpoint(**{name: generator}).restore(path).expect_partial()


EXPORT_INPUTS = ("auto", "text", "embedding")


def export_generator(generator, config, export_dir, name, input_kind="auto"):
    """Exports a run's generator as the next SavedModel version and returns its path.

    Text models take caption strings ("text": the run's tokenizer + encoder bundled in) or embedding vectors
    ("embedding"); "auto" bundles the encoder when the run records a loadable one.
    """
    if input_kind not in EXPORT_INPUTS:
        raise ValueError(f"--input must be one of {', '.join(EXPORT_INPUTS)}. Received: input={input_kind!r}")
    metadata = sampling.export_metadata(config)
    if not config.uses_text and input_kind == "text":
        raise ValueError(f"--input=text: --model={config.model} is not text-conditioned")
    encoder = sampling.text_encoder(config) if config.uses_text and input_kind != "embedding" else None
    if encoder is None:
        if input_kind == "text":
            raise ValueError("--input=text: the run records no loadable text encoder (see --text_encoder_path)")
        return saved_model.export_generator(generator, export_dir, name, metadata)
    return saved_model.export_text_generator(encoder, generator, export_dir, name, config.noise_dim,
                                             sampling.noise_distribution(config), metadata)
