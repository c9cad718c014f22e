"""The NNX layers: the same outputs as linen, and nnx-style training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jdeconv

LINEN = {1: jdeconv.Conv1DTranspose, 2: jdeconv.Conv2DTranspose, 3: jdeconv.Conv3DTranspose}
NNX = {
    1: jdeconv.nnx.Conv1DTranspose,
    2: jdeconv.nnx.Conv2DTranspose,
    3: jdeconv.nnx.Conv3DTranspose,
}

CONFIGS = [
    (1, dict(strides=2, padding="same", activation="relu", output_padding=1)),
    (2, dict(strides=(2, 1), padding="valid", data_format="channels_first", groups=2)),
    (2, dict(padding="Same", dilation_rate=2, use_bias=False, activation=jnp.tanh)),
    (3, dict(strides=(1, 2, 2), padding="same", kernel_initializer="icnr", activation="gelu")),
]


@pytest.mark.parametrize("n, kwargs", CONFIGS, ids=lambda v: str(v)[:30])
def test_nnx_equals_linen(n, kwargs):
    in_features, filters = 4, 6
    layer = NNX[n](in_features, filters, 3, rngs=nnx.Rngs(0), **kwargs)
    assert isinstance(layer.kernel, nnx.Param)
    groups = kwargs.get("groups", 1)
    assert layer.kernel.shape == (3,) * n + (filters // groups, in_features)
    if kwargs.get("use_bias", True):
        assert layer.bias.shape == (filters,)
    else:
        assert layer.bias is None

    spatial = (5, 4, 3)[:n]
    last = kwargs.get("data_format", "channels_last") == "channels_last"
    shape = (2, *spatial, in_features) if last else (2, in_features, *spatial)
    x = jax.random.normal(jax.random.key(1), shape)
    params = {"kernel": layer.kernel[...]}
    if layer.bias is not None:
        params["bias"] = layer.bias[...]
    expected = jax.jit(LINEN[n](filters, 3, **kwargs).apply)({"params": params}, x)
    got = nnx.jit(lambda layer, x: layer(x))(layer, x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6, atol=1e-6)


def test_trainable_false_holds_across_nnx_optimizer_steps():
    class Model(nnx.Module):
        def __init__(self, rngs):
            self.frozen = jdeconv.nnx.Conv2DTranspose(
                2, 3, 3, strides=2, padding="same", trainable=False, rngs=rngs
            )
            self.trained = jdeconv.nnx.Conv2DTranspose(3, 2, 3, activation="tanh", rngs=rngs)

        def __call__(self, x):
            return self.trained(self.frozen(x))

    model = Model(nnx.Rngs(0))
    assert isinstance(model.frozen.kernel, jdeconv.nnx.FrozenParam)
    assert isinstance(model.frozen.bias, jdeconv.nnx.FrozenParam)
    frozen_before = (np.asarray(model.frozen.kernel[...]), np.asarray(model.frozen.bias[...]))
    trained_before = np.asarray(model.trained.kernel[...])
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
    target = jax.random.normal(jax.random.key(2), (2, 10, 10, 2))

    @nnx.jit
    def step(model, optimizer):
        def loss(model):
            return jnp.mean((model(x) - target) ** 2)

        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    losses = [float(step(model, optimizer)) for _ in range(5)]
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(model.frozen.kernel[...], frozen_before[0])
    np.testing.assert_array_equal(model.frozen.bias[...], frozen_before[1])
    assert not np.allclose(model.trained.kernel[...], trained_before)


def test_errors():
    with pytest.raises(
        ValueError,
        match=r"^Conv2DTranspose: the 3 input channels of `in_features` must be divisible by "
        r"groups=2\.$",
    ):
        jdeconv.nnx.Conv2DTranspose(3, 4, 3, groups=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"^Conv2DTranspose: `in_features` must be >= 1, got 0\.$"):
        jdeconv.nnx.Conv2DTranspose(0, 4, 3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError, match=r"^Conv1DTranspose: `padding` must be 'same' or 'valid', got 'full'\.$"
    ):
        jdeconv.nnx.Conv1DTranspose(3, 4, 3, padding="full", rngs=nnx.Rngs(0))
    floating = r"a floating-point dtype \(float16, bfloat16, float32 or float64\)"
    with pytest.raises(
        TypeError, match=rf"^Conv2DTranspose: `dtype` must be None or {floating}, got int32\.$"
    ):
        jdeconv.nnx.Conv2DTranspose(3, 4, 3, dtype=jnp.int32, rngs=nnx.Rngs(0))
    with pytest.raises(
        TypeError,
        match=rf"^Conv2DTranspose: `param_dtype` must be {floating}, got NoneType None\.$",
    ):
        jdeconv.nnx.Conv2DTranspose(3, 4, 3, param_dtype=None, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError, match=r"^Conv2DTranspose: `precision` must be None, .* got str 'low'\.$"
    ):
        jdeconv.nnx.Conv2DTranspose(3, 4, 3, precision="low", rngs=nnx.Rngs(0))
    with pytest.raises(
        # Python's own message: the constructor's signature is written out.
        TypeError,
        match=r"__init__\(\) missing 1 required keyword-only argument: 'rngs'$",
    ):
        jdeconv.nnx.Conv2DTranspose(3, 4, 3)
    with pytest.raises(
        TypeError,
        match=r"__init__\(\) got an unexpected keyword argument 'stride'"
        r"(\. Did you mean 'strides'\?)?$",
    ):
        jdeconv.nnx.Conv3DTranspose(3, 4, 3, stride=2, rngs=nnx.Rngs(0))
    layer = jdeconv.nnx.Conv2DTranspose(3, 4, 3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError,
        match=r"^Conv2DTranspose: `inputs` has 2 channels, but the layer was built with "
        r"in_features=3; input shape \(1, 4, 4, 2\)\.$",
    ):
        layer(jnp.ones((1, 4, 4, 2)))
    with pytest.raises(
        ValueError,
        match=r"^Conv2DTranspose: `inputs` must have 4 dimensions \(batch, \*spatial, "
        r"channels\), got shape \(4, 4, 3\)\.$",
    ):
        layer(jnp.ones((4, 4, 3)))
