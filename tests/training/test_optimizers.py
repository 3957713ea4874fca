"""FusedAdam: Keras' Adam, on TensorFlow's fused ResourceApplyAdam kernel."""
import keras
import numpy as np
import tensorflow as tf

from t2i.training.optimizers import FusedAdam

SHAPES = [(3, 4), (5,), (2, 2, 3, 2)]


def _gradients(step):
    rng = np.random.default_rng(100 + step)
    return [tf.constant(rng.standard_normal(shape).astype("float32")) for shape in SHAPES]


def _train(optimizer_class, steps=6, **kwargs):
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal(shape).astype("float32")) for shape in SHAPES]
    optimizer = optimizer_class(**kwargs)
    optimizer.build(variables)
    apply = tf.function(lambda gradients: optimizer.apply_gradients(zip(gradients, variables)))
    for step in range(steps):
        apply(_gradients(step))
    return optimizer, variables


def _numpy_adam(steps, learning_rate, beta_1, beta_2, epsilon):
    """The Adam update as Keras documents it (ε added to √v, bias correction folded into the step size)."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(shape).astype("float64") for shape in SHAPES]
    m = [np.zeros(shape) for shape in SHAPES]
    v = [np.zeros(shape) for shape in SHAPES]
    for step in range(steps):
        t = step + 1
        alpha = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, gradient in enumerate(_gradients(step)):
            g = gradient.numpy().astype("float64")
            m[i] += (g - m[i]) * (1 - beta_1)
            v[i] += (g * g - v[i]) * (1 - beta_2)
            weights[i] -= alpha * m[i] / (np.sqrt(v[i]) + epsilon)
    return weights, m, v


def test_updates_equal_the_adam_formula_and_keras_adam():
    kwargs = dict(learning_rate=0.01, beta_1=0.5, beta_2=0.99, epsilon=1e-7)
    fused, fused_variables = _train(FusedAdam, **kwargs)
    keras_adam, keras_variables = _train(keras.optimizers.Adam, **kwargs)
    weights, m, v = _numpy_adam(6, **kwargs)
    for i in range(len(SHAPES)):
        np.testing.assert_allclose(fused_variables[i].numpy(), weights[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fused._momentums[i].numpy(), m[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fused._velocities[i].numpy(), v[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fused_variables[i].numpy(), keras_variables[i].numpy(), rtol=1e-5, atol=1e-6)
    assert int(fused.iterations.numpy()) == 6


def test_one_fused_kernel_per_variable_in_the_graph():
    variables = [keras.Variable(np.ones(shape, "float32")) for shape in SHAPES]
    optimizer = FusedAdam(learning_rate=1e-3)
    optimizer.build(variables)
    apply = tf.function(lambda gradients: optimizer.apply_gradients(zip(gradients, variables)))
    graph = apply.get_concrete_function([tf.TensorSpec(shape) for shape in SHAPES]).graph
    assert sum(op.type == "ResourceApplyAdam" for op in graph.get_operations()) == len(SHAPES)


def test_checkpoints_are_interchangeable_with_keras_adam(tmp_path):
    """Runs checkpointed before the optimizer was fused resume into it: the same slot variables."""
    keras_adam, keras_variables = _train(keras.optimizers.Adam, steps=3, learning_rate=0.01)
    path = tf.train.Checkpoint(optimizer=keras_adam, weights=keras_variables).write(str(tmp_path / "ckpt"))
    variables = [keras.Variable(np.zeros(shape, "float32")) for shape in SHAPES]
    fused = FusedAdam(learning_rate=0.01)
    fused.build(variables)
    tf.train.Checkpoint(optimizer=fused, weights=variables).read(path).assert_consumed()
    assert int(fused.iterations.numpy()) == 3
    for i in range(len(SHAPES)):
        np.testing.assert_array_equal(fused._velocities[i].numpy(), keras_adam._velocities[i].numpy())
        np.testing.assert_array_equal(variables[i].numpy(), keras_variables[i].numpy())


def test_amsgrad_and_sparse_gradients_take_keras_path():
    kwargs = dict(learning_rate=0.01, amsgrad=True)
    fused, fused_variables = _train(FusedAdam, **kwargs)
    keras_adam, keras_variables = _train(keras.optimizers.Adam, **kwargs)
    for a, b in zip(fused_variables, keras_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    table = keras.Variable(np.ones((4, 3), "float32"))
    optimizer = FusedAdam(learning_rate=0.1)
    optimizer.build([table])
    sparse = tf.IndexedSlices(tf.ones([1, 3]), tf.constant([2]), tf.constant([4, 3]))
    optimizer.apply_gradients([(sparse, table)])
    changed = np.abs(table.numpy() - 1.0).sum(axis=1) > 0
    np.testing.assert_array_equal(changed, [False, False, True, False])


def test_trainers_get_fused_adam_also_under_loss_scaling():
    from t2i import configs
    from t2i.training import factory

    config = configs.TrainConfig(log_dir="unused", steps=10)
    for optimizer in factory.build_optimizers(config, 10):
        assert isinstance(optimizer, FusedAdam)
    for optimizer in factory.build_optimizers(config.replace(mixed_precision="mixed_float16"), 10):
        assert isinstance(optimizer.inner_optimizer, FusedAdam)
