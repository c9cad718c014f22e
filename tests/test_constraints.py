"""Constraints: Keras' projections, applied after each optax update."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jdeconv
from jdeconv import constraints

# A transposed-conv kernel in TensorFlow's layout [kh, kw, filters, in_channels].
KERNEL = np.random.default_rng(0).normal(size=(3, 2, 4, 5)).astype(np.float32)


@pytest.mark.parametrize(
    "name", ["max_norm", "non_neg", "unit_norm", "min_max_norm", "maxnorm", "UnitNorm"]
)
def test_names_match_keras_defaults(tf, name):
    import tf_keras

    expected = tf_keras.constraints.get(name)(tf.constant(KERNEL)).numpy()
    got = np.asarray(constraints.get(name)(jnp.asarray(KERNEL)))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "ours, keras_args",
    [
        (
            constraints.MaxNorm(0.7, axis=(0, 1, 3)),
            ("MaxNorm", dict(max_value=0.7, axis=[0, 1, 3])),
        ),
        (constraints.UnitNorm(axis=2), ("UnitNorm", dict(axis=2))),
        (
            constraints.MinMaxNorm(0.5, 0.9, rate=0.3, axis=(0, 1)),
            ("MinMaxNorm", dict(min_value=0.5, max_value=0.9, rate=0.3, axis=[0, 1])),
        ),
    ],
    ids=["max_norm", "unit_norm", "min_max_norm"],
)
def test_arguments_match_keras(tf, ours, keras_args):
    import tf_keras

    cls, kwargs = keras_args
    expected = getattr(tf_keras.constraints, cls)(**kwargs)(tf.constant(KERNEL)).numpy()
    np.testing.assert_allclose(np.asarray(ours(KERNEL)), expected, rtol=1e-6, atol=1e-7)


def test_errors():
    with pytest.raises(
        ValueError,
        match=(
            r"^constraints.get: `identifier` must be a callable"
            r" or one of \('max_norm', .*'MinMaxNorm'\), got 'clip'\.$"
        ),
    ):
        constraints.get("clip")
    with pytest.raises(
        TypeError,
        match=(
            r"^constraints.get: `identifier` must be None, a callable project\(w\)"
            r" or one of \('max_norm', .*\), got float 1\.0\.$"
        ),
    ):
        constraints.get(1.0)
    with pytest.raises(TypeError, match=r"MaxNorm: `axis` must be an int or a sequence"):
        constraints.MaxNorm(axis="0")
    with pytest.raises(TypeError, match=r"MinMaxNorm: `rate` must be a number"):
        constraints.MinMaxNorm(rate="1")
    with pytest.raises(ValueError, match=r"Conv1DTranspose: `bias_constraint` must be"):
        jdeconv.Conv1DTranspose(2, 3, bias_constraint="positive").config  # noqa: B018


KERAS_CONSTRAINTS = [("max_norm", "non_neg"), ("unit_norm", None), ("min_max_norm", "max_norm")]


@pytest.mark.parametrize("kernel_constraint, bias_constraint", KERAS_CONSTRAINTS)
def test_optax_step_equals_a_keras_optimizer_step(tf, kernel_constraint, bias_constraint):
    """Keras applies constraints after the update; apply_constraints does the same."""
    import tf_keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
    target = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    bias = rng.normal(size=(4,)).astype(np.float32)
    kwargs = dict(
        strides=2,
        padding="same",
        kernel_constraint=kernel_constraint,
        bias_constraint=bias_constraint,
    )
    keras_layer = tf_keras.layers.Conv2DTranspose(4, (3, 2), **kwargs)
    keras_layer.build(x.shape)
    keras_layer.set_weights([KERNEL, bias])
    optimizer = tf_keras.optimizers.SGD(learning_rate=0.5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(keras_layer(x) * target)
    grads = tape.gradient(loss, keras_layer.trainable_variables)
    optimizer.apply_gradients(zip(grads, keras_layer.trainable_variables, strict=True))
    expected_kernel, expected_bias = keras_layer.get_weights()

    layer = jdeconv.Conv2DTranspose(4, (3, 2), **kwargs)
    params = {"kernel": jnp.asarray(KERNEL), "bias": jnp.asarray(bias)}
    tx = optax.chain(optax.sgd(0.5), jdeconv.apply_constraints(layer, x))
    grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x) * target))(params)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["kernel"], expected_kernel, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(new["bias"], expected_bias, rtol=2e-5, atol=2e-6)


class _Decoder(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = jdeconv.layers.conv2d_transpose(x, 3, 2, 2, kernel_constraint="non_neg", name="up")
        x = jdeconv.Conv2DTranspose(2, 3, bias_constraint="non_neg", name="head")(x)
        frozen = jdeconv.Conv2DTranspose(
            2, 1, kernel_constraint="non_neg", trainable=False, name="frozen"
        )
        return x + frozen(x) + nn.Dense(2)(x)


def test_apply_constraints_finds_linen_and_functional_layers():
    x = jnp.ones((1, 3, 3, 2))
    variables = jax.jit(_Decoder().init)(jax.random.key(0), x)
    params = variables["params"]
    # A step straight to negative values: the constrained leaves are projected.
    updates = jax.tree.map(lambda p: -jnp.abs(p) - 1.0, params)
    tx = jdeconv.apply_constraints(_Decoder(), x)
    new = optax.apply_updates(params, tx.update(updates, tx.init(params), params)[0])
    assert float(new["up"]["kernel"].min()) == 0.0
    assert float(new["head"]["bias"].min()) == 0.0
    assert float(new["up"]["bias"].max()) < 0  # unconstrained
    assert float(new["head"]["kernel"].max()) < 0
    assert float(new["Dense_0"]["kernel"].max()) < 0
    assert "frozen" not in params

    tree = {"up": {"kernel": constraints.NonNeg()}}  # the same, spelled as a tree
    new_tree = optax.apply_updates(
        params, jdeconv.apply_constraints(tree).update(updates, None, params)[0]
    )
    assert float(new_tree["up"]["kernel"].min()) == 0.0
    assert float(new_tree["head"]["bias"].max()) < 0


def test_apply_constraints_with_an_nnx_optimizer():
    model = jdeconv.nnx.Conv2DTranspose(2, 3, 3, kernel_constraint="max_norm", rngs=nnx.Rngs(0))
    model.kernel[...] = model.kernel[...] * 100  # far outside the norm bound
    x = jnp.ones((1, 3, 3, 2))
    optimizer = nnx.Optimizer(
        model, optax.chain(optax.sgd(1e-3), jdeconv.apply_constraints(model)), wrt=nnx.Param
    )
    grads = nnx.grad(lambda m: jnp.sum(m(x)))(model)
    optimizer.update(model, grads)
    norms = np.sqrt((np.asarray(model.kernel[...]) ** 2).sum(axis=0))
    assert norms.max() <= 2.0 + 1e-5
    assert norms.max() == pytest.approx(2.0, rel=1e-5)


def test_apply_constraints_errors():
    with pytest.raises(TypeError, match=r"apply_constraints: a linen module needs example"):
        jdeconv.apply_constraints(_Decoder())
    with pytest.raises(TypeError, match=r"apply_constraints: every leaf .* got int at"):
        jdeconv.apply_constraints({"kernel": 3})
    tx = jdeconv.apply_constraints({"kernel": constraints.NonNeg()})
    with pytest.raises(ValueError, match=r"apply_constraints: `params` must be passed"):
        tx.update({"kernel": jnp.ones(2)}, tx.init(None))
