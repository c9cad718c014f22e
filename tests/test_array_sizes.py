"""Sizes given as NumPy or concrete JAX arrays work wherever a list of ints does.

TensorFlow code often computes ``output_shape`` as a tensor, and its natural port is
an array. A concrete array (one that exists before tracing, closed over by a jitted
function) is as static as a tuple; only a value computed inside the trace is not.
Each front end that takes a size is called eagerly and under ``jit``, ``grad`` and
``vmap`` with the sizes as a tuple, a NumPy array and a JAX array, and must give
the same result; a traced size gets the "must be static" error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv
from jdeconv import convert, torch_compat

RNG = np.random.default_rng(21)
X = jnp.asarray(RNG.standard_normal((2, 8, 2, 3)))  # NHWC
W = jnp.asarray(RNG.standard_normal((3, 2, 5, 3)))  # [h, w, C_out, C_in]
SPATIAL = (15, 4)

# The expected results come from tuples.
KINDS = {
    "numpy": lambda sizes: np.array(sizes),
    "jax": lambda sizes: jnp.array(sizes),
    "jax scalars": lambda sizes: [jnp.int32(v) for v in sizes],
}


def _transforms(f):
    """``f(x)`` eagerly, under jit, its gradient's sum, and under vmap (batch of 1)."""
    return {
        "eager": f(X),
        "jit": jax.jit(f)(X),
        "grad": jax.grad(lambda x: (f(x) ** 2).sum())(X),
        "vmap": jax.vmap(lambda x: f(x[None])[0])(X),
    }


def _same(results, expected):
    for transform, value in results.items():
        np.testing.assert_allclose(value, expected[transform], rtol=1e-6, err_msg=transform)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_op_output_shape(kind):
    sizes = KINDS[kind](SPATIAL)
    expected = _transforms(lambda x: jdeconv.conv_transpose(x, W, SPATIAL, 2))
    assert expected["eager"].shape == (2, *SPATIAL, 5)
    _same(_transforms(lambda x: jdeconv.conv_transpose(x, W, sizes, 2)), expected)
    _same(_transforms(lambda x: jdeconv.conv2d_transpose(x, W, sizes, 2)), expected)
    # The full shape, and the window arguments, as arrays too.
    full = KINDS[kind]((1, *SPATIAL, 5))
    strides = KINDS[kind]((2, 2))
    f = lambda x: jdeconv.conv2d_transpose(x, W, full, strides, dilations=np.array(1))  # noqa: E731
    got = _transforms(lambda x: jax.vmap(lambda y: f(y[None])[0])(x))
    _same(got, expected)


def test_op_other_ranks():
    x1, w1 = X[:, :, 0], W[:, 0]
    expected = jdeconv.conv1d_transpose(x1, w1, (15,), 2)
    full = jnp.array([2, 15, 5])  # Made outside the trace: concrete.
    got = jax.jit(lambda x: jdeconv.conv1d_transpose(x, w1, full, 2))(x1)
    np.testing.assert_array_equal(got, expected)
    x3, w3 = X[:, :, :, None], W[:, :, None]
    expected = jdeconv.conv3d_transpose(x3, w3, (15, 4, 1), 2)
    spatial = jnp.array([15, 4, 1])
    got = jax.jit(lambda x: jdeconv.conv3d_transpose(x, w3, spatial, 2))(x3)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_torch_compat_output_size(kind):
    layer = torch_compat.ConvTranspose2d(3, 5, (3, 2), stride=2, padding=1)
    x = X.transpose(0, 3, 1, 2)
    variables = layer.init(jax.random.key(0), x)

    def run(sizes):
        def f(x):
            return layer.apply(variables, x.transpose(0, 3, 1, 2), output_size=sizes)

        return _transforms(f)

    expected = run((16, 3))
    assert expected["eager"].shape == (2, 5, 16, 3)
    _same(run(KINDS[kind]((16, 3))), expected)
    _same(run(KINDS[kind]((2, 5, 16, 3))), expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_convert_sizes(kind):
    # Made outside the traces below: concrete.
    i, k, i4, k4 = (KINDS[kind](v) for v in ((8, 2), (3, 2), (2, 8, 2, 3), (3, 2, 3, 5)))

    def under_jit(f, expected):
        """``f()`` eagerly and inside a trace equals ``expected``."""
        inside = []
        jax.jit(lambda: inside.append(f()) or 0)()
        assert f() == inside[0] == expected

    args = convert.padding_from_torch((8, 2), (3, 2), stride=2, padding=1, output_padding=1)
    under_jit(lambda: convert.padding_from_torch(i, k, 2, 1, 1), args)
    under_jit(
        lambda: convert.padding_from_keras("same", i, k, 2),
        convert.padding_from_keras("same", (8, 2), (3, 2), 2),
    )
    under_jit(
        lambda: convert.padding_from_flax("SAME", i, k, 2),
        convert.padding_from_flax("SAME", (8, 2), (3, 2), 2),
    )
    under_jit(
        lambda: convert.padding_from_lax(i4, k4, 2, "SAME"),
        convert.padding_from_lax((2, 8, 2, 3), (3, 2, 3, 5), 2, "SAME"),
    )
    for to in (convert.padding_to_torch, convert.padding_to_flax, convert.padding_to_lax):
        under_jit(lambda to=to: to(args, i, k), to(args, (8, 2), (3, 2)))
    under_jit(lambda: args.forward_padding(i, k), args.forward_padding((8, 2), (3, 2)))
    same = convert.padding_from_keras("same", (8, 2), (3, 2), 2, output_padding=1)
    under_jit(
        lambda: convert.padding_to_keras(same, i, k), convert.padding_to_keras(same, (8, 2), (3, 2))
    )
    # The arguments' output size, as an array, reaches the op.
    w = jnp.asarray(convert.kernel_from_torch(RNG.standard_normal((3, 5, 3, 2))))
    array_args = convert.ConvTransposeArgs(
        KINDS[kind](args.output_size), args.strides, args.padding, args.dilations, ((0, 0),) * 2
    )
    np.testing.assert_allclose(
        jax.jit(lambda x: array_args(x, w))(X), args(X, w), rtol=1e-6, atol=1e-6
    )


TRACED = {
    "conv_transpose": (
        lambda x, s: jdeconv.conv_transpose(x, W, s, 2),
        r"conv_transpose: `output_shape` must be static, but it is a traced value",
    ),
    "conv2d_transpose entries": (
        lambda x, s: jdeconv.conv2d_transpose(x, W, (s[0], 4), 2),
        r"conv2d_transpose: `output_shape` must be static, but it is a traced value",
    ),
    "strides": (
        lambda x, s: jdeconv.conv2d_transpose(x, W, SPATIAL, s // 7),
        r"conv2d_transpose: `strides` must be static, but it is a traced value",
    ),
    "torch_compat": (
        lambda x, s: torch_compat.conv_transpose2d(
            x.transpose(0, 3, 1, 2), W.transpose(3, 2, 0, 1), stride=s // 7
        ),
        r"conv_transpose2d: `stride` must be static, but it is a traced value",
    ),
    "padding_from_torch": (
        lambda x, s: convert.padding_from_torch(s, 3, 2),
        r"padding_from_torch: `input_size` must be static, but it is a traced value",
    ),
    "padding_from_lax": (
        lambda x, s: convert.padding_from_lax(x.shape, s, 2, "SAME"),
        r"padding_from_lax: `kernel_shape` must be static, but it is a traced value",
    ),
}


@pytest.mark.parametrize("case", sorted(TRACED))
def test_traced_sizes_are_a_type_error(case):
    f, message = TRACED[case]
    with pytest.raises(TypeError, match=message):
        jax.jit(f)(X, jnp.array(SPATIAL))


def test_traced_torch_compat_output_size():
    layer = torch_compat.ConvTranspose2d(3, 5, 3, stride=2)
    x = X.transpose(0, 3, 1, 2)
    variables = layer.init(jax.random.key(0), x)
    with pytest.raises(
        TypeError, match=r"ConvTranspose2d: `output_size` must be static, but it is a traced value"
    ):
        jax.jit(lambda x, s: layer.apply(variables, x, output_size=s))(x, jnp.array([17, 5]))
