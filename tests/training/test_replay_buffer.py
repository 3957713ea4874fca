"""Replay buffer: fraction of each fake batch replayed, lowest-scored fakes stored, conditions kept, checkpointed."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator
from t2i.training.conditional import ConditionalGANTrainer
from t2i.training.replay_buffer import ReplayBuffer


def _fakes(values):
    """Images whose every pixel equals the given value: easy to tell apart after mixing."""
    values = np.asarray(values, "float32")
    return tf.constant(np.broadcast_to(values[:, None, None, None], (len(values), 2, 2, 1)).copy())


def test_empty_buffer_changes_nothing():
    buffer = ReplayBuffer(8, [2, 2, 1], fraction=0.5)
    fakes = _fakes([1, 2, 3, 4])
    mixed, _, count = buffer.mix(fakes)
    assert int(count) == 0
    np.testing.assert_array_equal(mixed.numpy(), fakes.numpy())


def test_add_stores_the_lowest_scored_fakes_with_their_conditions():
    buffer = ReplayBuffer(8, [2, 2, 1], {"label": [3]}, fraction=0.5)
    labels = tf.constant(np.eye(3, dtype="float32")[[0, 1, 2, 0]])
    buffer.add(_fakes([10, 20, 30, 40]), {"label": labels}, scores=tf.constant([0.5, -2.0, 3.0, -1.0]))
    assert int(buffer.size) == 2 and int(buffer.position) == 2
    # ⌈0.5·4⌉ = 2 lowest scores: -2.0 (value 20, label 1) then -1.0 (value 40, label 0).
    np.testing.assert_array_equal(buffer.images.numpy()[:2, 0, 0, 0], [20, 40])
    np.testing.assert_array_equal(buffer.conditions["label"].numpy()[:2], np.eye(3)[[1, 0]])


def test_mix_replays_the_configured_fraction_with_matching_conditions():
    buffer = ReplayBuffer(8, [2, 2, 1], {"label": [3]}, fraction=0.25)
    stored = np.eye(3, dtype="float32")[[2]]
    for _ in range(4):
        buffer.add(_fakes([-7, -7, -7, -7]), {"label": tf.constant(np.repeat(stored, 4, 0))}, tf.zeros([4]))
    fresh = _fakes(np.arange(8) + 1)
    fresh_labels = tf.constant(np.eye(3, dtype="float32")[[0] * 8])
    mixed, conditions, count = buffer.mix(fresh, {"label": fresh_labels})
    values = mixed.numpy()[:, 0, 0, 0]
    assert int(count) == 2  # ⌈0.25·8⌉
    np.testing.assert_array_equal(values[:2], [-7, -7])
    np.testing.assert_array_equal(values[2:], np.arange(8)[2:] + 1)
    np.testing.assert_array_equal(conditions["label"].numpy()[:2], np.repeat(stored, 2, 0))
    np.testing.assert_array_equal(conditions["label"].numpy()[2:], fresh_labels.numpy()[2:])


def test_ring_wraps_and_size_saturates_at_capacity():
    buffer = ReplayBuffer(3, [2, 2, 1], fraction=0.5)
    for step in range(4):
        buffer.add(_fakes([step, step]), {}, tf.zeros([2]))  # one fake stored per call
    assert int(buffer.size) == 3 and int(buffer.position) == 1
    np.testing.assert_array_equal(sorted(buffer.images.numpy()[:, 0, 0, 0]), [1, 2, 3])


def test_buffer_round_trips_through_a_checkpoint(tmp_path):
    buffer = ReplayBuffer(4, [2, 2, 1], fraction=0.5)
    buffer.add(_fakes([5, 6]), {}, tf.constant([1.0, 0.0]))
    path = tf.train.Checkpoint(replay=buffer).save(str(tmp_path / "ckpt"))
    restored = ReplayBuffer(4, [2, 2, 1], fraction=0.5)
    tf.train.Checkpoint(replay=restored).restore(path).assert_existing_objects_matched()
    assert int(restored.size) == 1
    np.testing.assert_array_equal(restored.images.numpy(), buffer.images.numpy())


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="Received: capacity=0"):
        ReplayBuffer(0, [2, 2, 1])
    with pytest.raises(ValueError, match="Received: fraction=1"):
        ReplayBuffer(4, [2, 2, 1], fraction=1.0)


def test_trainer_fills_the_buffer_and_keeps_training():
    keras.utils.set_random_seed(0)
    small = dict(image_size=32, base_filters=4, max_filters=16)
    buffer = ReplayBuffer(6, [32, 32, 3], {"label": [24]}, fraction=0.5)
    trainer = ConditionalGANTrainer(ConditionalGenerator(noise_dim=8, condition_dim=8, **small),
                                    ConditionalDiscriminator(**small), replay_buffer=buffer, n_critic=2,
                                    num_samples=4)
    trainer.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    batch = {"image": tf.random.uniform([4, 32, 32, 3], -1, 1), "label": tf.one_hot([0, 1, 2, 3], 24)}
    for _ in range(3):
        logs = trainer.train_step(batch)
    # Each D update stores ⌈0.5·fresh⌉ fakes: 2 (empty buffer) then 1 per update with 2 replayed → 2+1+1+1+1+1.
    assert int(buffer.size) == 6
    assert np.all(np.isfinite([float(v) for v in logs.values()]))
    assert "replay_buffer" in trainer.extra_state()
