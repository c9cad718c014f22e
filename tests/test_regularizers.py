"""Regularizers: Keras' penalties, sown by the layers, summed for training."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jdeconv
from jdeconv import regularizers

NAMES = ["l1", "l2", "l1_l2", "L1", "L2", "L1L2"]


@pytest.mark.parametrize("name", NAMES)
def test_names_have_keras_defaults(tf, name):
    import tf_keras

    w = np.random.default_rng(0).normal(size=(3, 3, 4, 2)).astype(np.float32)
    expected = float(tf_keras.regularizers.get(name)(tf.constant(w)))
    assert float(regularizers.get(name)(jnp.asarray(w))) == pytest.approx(expected, rel=1e-6)


def test_factors_and_formulas():
    x = jnp.array([[1.0, -2.0], [3.0, -4.0]])
    assert float(regularizers.L1(0.5)(x)) == pytest.approx(5.0)
    assert float(regularizers.L2(0.5)(x)) == pytest.approx(15.0)
    assert float(regularizers.L1L2(0.5, 0.5)(x)) == pytest.approx(20.0)
    assert float(regularizers.L1L2()(x)) == 0.0
    assert regularizers.l1_l2() == regularizers.L1L2(0.01, 0.01)
    assert regularizers.get("l1_l2") == regularizers.L1L2(0.01, 0.01)
    assert regularizers.get("L1L2") == regularizers.L1L2(0.0, 0.0)
    # bfloat16 weights are summed in float32.
    big = jnp.full((4096,), 1.0, jnp.bfloat16)
    assert float(regularizers.L1(1.0)(big)) == 4096.0


def test_errors():
    with pytest.raises(
        ValueError,
        match=(
            r"^regularizers.get: `identifier` must be a callable"
            r" or one of \('l1', 'l2', 'l1_l2', 'L1', 'L2', 'L1L2'\), got 'l3'\.$"
        ),
    ):
        regularizers.get("l3")
    with pytest.raises(
        TypeError,
        match=(
            r"^regularizers.get: `identifier` must be None, a callable penalty\(x\)"
            r" or one of \('l1', .*\), got float 0\.01\.$"
        ),
    ):
        regularizers.get(0.01)
    with pytest.raises(ValueError, match=r"L1L2: `l1` must be a finite number >= 0, got -1"):
        regularizers.L1L2(l1=-1)
    with pytest.raises(ValueError, match=r"Conv2DTranspose: `kernel_regularizer` must be"):
        jdeconv.Conv2DTranspose(2, 3, kernel_regularizer="l0").config  # noqa: B018
    with pytest.raises(TypeError, match=r"regularization_loss: `losses` must be"):
        jdeconv.regularization_loss([1.0])


def _keras_layer_and_ours(tf, v1, x, tf_kwargs=None, **kwargs):
    """The same weights through a TF layer and jdeconv's; returns both losses."""
    import tf_keras

    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 2, 4, x.shape[-1])).astype(np.float32)
    bias = rng.normal(size=(4,)).astype(np.float32)
    cls = tf.compat.v1.layers.Conv2DTranspose if v1 else tf_keras.layers.Conv2DTranspose
    layer = cls(4, (3, 2), strides=2, padding="same", **{**kwargs, **(tf_kwargs or {})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer.build(x.shape)
        layer.set_weights([kernel, bias])
        y_tf = layer(x).numpy()
        keras_losses = [float(loss) for loss in layer.losses]
    ours = jdeconv.Conv2DTranspose(4, (3, 2), strides=2, padding="same", **kwargs)
    y, state = ours.apply({"params": {"kernel": kernel, "bias": bias}}, x, mutable=["losses"])
    np.testing.assert_allclose(np.asarray(y), y_tf, rtol=1e-5, atol=1e-5)
    return layer, keras_losses, state


@pytest.mark.parametrize("v1", [True, False], ids=["tf.compat.v1.layers", "tf_keras"])
def test_layer_losses_equal_keras(tf, v1):
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 2)).astype(np.float32)
    layer, keras_losses, state = _keras_layer_and_ours(
        tf,
        v1,
        x,
        activation="relu",
        kernel_regularizer="l2",
        bias_regularizer="l1",
        activity_regularizer="l1_l2",
    )
    assert len(keras_losses) == 3
    total = float(jdeconv.regularization_loss(state))
    assert total == pytest.approx(sum(keras_losses), rel=1e-5)
    losses = state["losses"]
    assert float(losses["kernel_regularizer"]) == pytest.approx(
        float(layer.kernel_regularizer(layer.kernel)), rel=1e-5
    )
    assert float(losses["bias_regularizer"]) == pytest.approx(
        float(layer.bias_regularizer(layer.bias)), rel=1e-5
    )
    # The activity penalty is divided by the batch size (3), as Keras does.
    (activity,) = losses["activity_regularizer"]
    y = layer(x).numpy()
    expected = 0.01 * np.abs(y).sum() / 3 + 0.01 * np.square(y).sum() / 3
    assert float(activity) == pytest.approx(expected, rel=1e-5)


def test_callable_regularizers(tf):
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 2)).astype(np.float32)
    _, keras_losses, state = _keras_layer_and_ours(
        tf,
        False,
        x,
        tf_kwargs={"kernel_regularizer": lambda w: 0.5 * tf.reduce_sum(w**4)},
        kernel_regularizer=lambda w: 0.5 * jnp.sum(w**4),
    )
    assert float(jdeconv.regularization_loss(state)) == pytest.approx(keras_losses[0], rel=1e-5)


def test_losses_are_sown_only_when_mutable_and_weights_once_per_apply():
    import flax.linen as nn

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            layer = jdeconv.Conv2DTranspose(
                2, 3, padding="same", kernel_regularizer="l2", activity_regularizer="l1"
            )
            return layer(x) + layer(x)

    x = jnp.ones((2, 4, 4, 1))
    variables = jax.jit(Model().init)(jax.random.key(0), x)
    assert set(variables) == {"params"}  # init sows nothing
    params = variables
    assert "losses" not in Model().apply(params, x, mutable=["intermediates"])[1]
    _, state = Model().apply(params, x, mutable=["losses"])
    losses = state["losses"]["Conv2DTranspose_0"]
    kernel = variables["params"]["Conv2DTranspose_0"]["kernel"]
    assert float(losses["kernel_regularizer"]) == pytest.approx(
        float(0.01 * (kernel**2).sum()), rel=1e-6
    )
    assert len(losses["activity_regularizer"]) == 2  # one per call, as Keras
    total = jdeconv.regularization_loss(state)
    expected = losses["kernel_regularizer"] + sum(losses["activity_regularizer"])
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert float(jdeconv.regularization_loss(params)) == 0.0  # no losses collection


def test_gradient_of_the_regularization_loss():
    layer = jdeconv.Conv2DTranspose(3, 2, kernel_regularizer="l2", bias_regularizer="l1")
    x = jnp.ones((1, 3, 3, 2))
    params = jax.jit(layer.init)(jax.random.key(0), x)["params"]
    params = jax.tree.map(lambda p: p + 0.5, params)

    @jax.jit
    def loss(p):
        _, state = layer.apply({"params": p}, x, mutable=["losses"])
        return jdeconv.regularization_loss(state)

    grads = jax.grad(loss)(params)
    np.testing.assert_allclose(grads["kernel"], 0.02 * params["kernel"], rtol=1e-6)
    np.testing.assert_allclose(grads["bias"], 0.01 * jnp.sign(params["bias"]), rtol=1e-6)


def test_nnx_capture_gives_the_same_losses():
    kwargs = dict(kernel_regularizer="l2", bias_regularizer="l1", activity_regularizer="l1")
    model = jdeconv.nnx.Conv2DTranspose(2, 3, 3, strides=2, rngs=nnx.Rngs(0), **kwargs)
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
    y, losses = nnx.capture(model, jdeconv.nnx.RegularizationLoss)(x)
    params = {"kernel": model.kernel[...], "bias": model.bias[...]}
    linen = jdeconv.Conv2DTranspose(3, 3, strides=2, **kwargs)
    y_linen, state = linen.apply({"params": params}, x, mutable=["losses"])
    np.testing.assert_allclose(y, y_linen, rtol=1e-6)
    assert float(jdeconv.regularization_loss(losses)) == pytest.approx(
        float(jdeconv.regularization_loss(state)), rel=1e-6
    )
    # Outside nnx.capture nothing is stored on the module.
    model(x)
    assert float(jdeconv.regularization_loss(model)) == 0.0
