"""Zero-size dimensions: TensorFlow's shapes, zeros, and gradients of the right shapes.

An empty batch or spatial axis gives the shape TensorFlow gives. Zero input
or output channels, which TensorFlow refuses, give the mathematically right
result: zeros (an empty sum) of the requested shape. Every method alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv

# (input shape, filters shape, output_shape, strides, padding): 1-d, NWC.
EDGES = {
    "empty batch": ((0, 4, 2), (3, 3, 2), (0, 8, 3), 2, "SAME"),
    "empty input, stride 2": ((1, 0, 2), (3, 3, 2), (1, 0, 3), 2, "SAME"),
    "empty input, stride 1": ((1, 0, 2), (3, 3, 2), (1, 0, 3), 1, "SAME"),
    "empty input, VALID": ((2, 0, 2), (3, 3, 2), (2, 2, 3), 1, "VALID"),
    "no input channels": ((1, 4, 0), (3, 3, 0), (1, 8, 3), 2, "SAME"),
    "no output channels": ((1, 4, 2), (3, 0, 2), (1, 8, 0), 2, "SAME"),
}


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("edge", EDGES, ids=list(EDGES))
def test_empty_dimensions(edge, method):
    x_shape, w_shape, output_shape, strides, padding = EDGES[edge]
    x, w = jnp.ones(x_shape), jnp.ones(w_shape)

    def op(x, w):
        return jdeconv.conv1d_transpose(x, w, output_shape, strides, padding, method=method)

    y = op(x, w)
    assert y.shape == output_shape
    assert not np.any(np.asarray(y))
    dx, dw = jax.grad(lambda x, w: jnp.sum(op(x, w) ** 2), argnums=(0, 1))(x, w)
    assert dx.shape == x_shape and dw.shape == w_shape
    assert not np.any(np.asarray(dx)) and not np.any(np.asarray(dw))
    # Forward mode and batching too.
    assert jax.jvp(op, (x, w), (x, w))[1].shape == output_shape
    assert jax.vmap(op, in_axes=(None, 0))(x, jnp.stack([w, w])).shape == (2, *output_shape)


@pytest.mark.parametrize("edge", ["empty batch", "empty input, stride 2", "empty input, VALID"])
def test_empty_dimensions_match_tensorflow(tf, edge):
    x_shape, w_shape, output_shape, strides, padding = EDGES[edge]
    x, w = np.ones(x_shape, np.float32), np.ones(w_shape, np.float32)
    want = tf.nn.conv1d_transpose(x, w, output_shape, strides, padding).numpy()
    got = jdeconv.conv1d_transpose(x, w, output_shape, strides, padding)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_empty_2d_and_3d(method):
    x = jnp.ones((2, 0, 3, 4))
    w = jnp.ones((3, 3, 5, 4))
    y = jdeconv.conv2d_transpose(x, w, (2, 0, 6, 5), (3, 2), method=method)
    assert y.shape == (2, 0, 6, 5)
    x = jnp.ones((1, 2, 0, 2, 2))
    w = jnp.ones((2, 2, 2, 3, 2))
    y = jdeconv.conv3d_transpose(x, w, (1, 4, 1, 4, 3), 2, "VALID", method=method)
    assert y.shape == (1, 4, 1, 4, 3) and not np.any(np.asarray(y))
