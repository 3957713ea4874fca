"""A replay buffer of earlier fakes for the discriminator (Shrivastava et al. 2017's image history).

The discriminator forgets what the generator produced a few hundred steps ago, and the generator can then return
to it; showing the discriminator old fakes again damps that oscillation. After every discriminator update the
fresh fakes it scored lowest (the ones it found most obviously fake) are written into a ring of `capacity` slots;
each fake batch then has `fraction` of its examples replaced by slots drawn at random. Replayed fakes keep the
conditions (labels, embeddings) they were generated for.

The buffer lives in variables on the device — no host round trip per step — and is checkpointed with the run.
Under a multi-replica strategy each replica keeps its own buffer (sync-on-read variables); the checkpoint holds the
first replica's.
"""
import tensorflow as tf


def _slot_variable(shape, dtype, name):
    return tf.Variable(
        tf.zeros(shape, dtype), trainable=False, name=name,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )


class ReplayBuffer(tf.Module):
    """Up to `capacity` earlier fakes (with their conditions) on the device.

    Args:
        capacity: slots (500 in the seeds' setting).
        image_shape: [H, W, C] of the fakes.
        condition_shapes: {batch key: shape of one example's condition}, e.g. {"label": [24]}; empty when
            unconditional.
        fraction: share of each fake batch drawn from the buffer once it holds enough fakes (0.5: half); below 1,
            so every batch still brings fresh fakes to store.
    """

    def __init__(self, capacity, image_shape, condition_shapes=None, fraction=0.5, name="replay_buffer"):
        super().__init__(name=name)
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0. Received: capacity={capacity}")
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1). Received: fraction={fraction}")
        self.capacity = int(capacity)
        self.fraction = float(fraction)
        self.images = _slot_variable([self.capacity, *image_shape], tf.float32, "images")
        self.conditions = {
            key: _slot_variable([self.capacity, *shape], tf.float32, f"condition_{key}")
            for key, shape in sorted((condition_shapes or {}).items())
        }
        self.size = _slot_variable([], tf.int32, "size")  # Filled slots.
        self.position = _slot_variable([], tf.int32, "position")  # Next slot to write.

    def _share(self, batch_size):
        return tf.cast(tf.math.ceil(self.fraction * tf.cast(batch_size, tf.float32)), tf.int32)

    def mix(self, fakes, conditions=None):
        """(images, conditions, num_replayed): the first `num_replayed` examples replaced by buffered fakes.

        `num_replayed` is min(⌈fraction·batch⌉, filled slots), so an empty buffer changes nothing.
        """
        conditions = dict(conditions or {})
        if sorted(conditions) != sorted(self.conditions):
            raise ValueError(f"Replay conditions must be {sorted(self.conditions)}. Received: {sorted(conditions)}")
        batch_size = tf.shape(fakes)[0]
        size = self.size.read_value()
        count = tf.minimum(self._share(batch_size), size)
        slots = tf.random.uniform([count], 0, tf.maximum(size, 1), dtype=tf.int32)
        images = tf.concat([tf.gather(self.images, slots), tf.cast(fakes[count:], tf.float32)], axis=0)
        mixed = {
            key: tf.concat([tf.gather(self.conditions[key], slots), tf.cast(value[count:], tf.float32)], axis=0)
            for key, value in conditions.items()
        }
        return tf.cast(images, fakes.dtype), mixed, count

    def add(self, fakes, conditions, scores):
        """Stores the ⌈fraction·n⌉ lowest-`scores` of the n `fakes` (and their conditions) in the ring."""
        count = tf.minimum(self._share(tf.shape(fakes)[0]), self.capacity)
        _, lowest = tf.math.top_k(-tf.cast(scores, tf.float32), k=count)
        slots = tf.math.floormod(self.position + tf.range(count), self.capacity)[:, None]
        # assign(tensor_scatter_nd_update) rather than scatter_nd_update: sync-on-read variables implement only
        # assign, and this keeps one code path for every strategy.
        self.images.assign(tf.tensor_scatter_nd_update(
            self.images.read_value(), slots, tf.cast(tf.gather(fakes, lowest), tf.float32)))
        for key, value in (conditions or {}).items():
            self.conditions[key].assign(tf.tensor_scatter_nd_update(
                self.conditions[key].read_value(), slots, tf.cast(tf.gather(value, lowest), tf.float32)))
        self.position.assign(tf.math.floormod(self.position + count, self.capacity))
        self.size.assign(tf.minimum(self.size + count, self.capacity))
