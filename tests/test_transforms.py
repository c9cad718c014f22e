"""The op composes with jit, vmap, eval_shape, grad (any order) and checkpoint."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from jax.test_util import check_grads

import jdeconv

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4, 4))
W = RNG.standard_normal((3, 2, 3, 4))  # groups=2: C_out = 6


def op(x, w, method="auto"):
    return jdeconv.conv2d_transpose(
        x, w, (2, 6, 11, 6), (2, 3), "SAME", dilations=(1, 2), groups=2, method=method
    )


def expected(x, w):
    return reference.conv_transpose(x, w, (6, 11), (2, 3), (1, 2), "SAME", groups=2)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_jit(method):
    y = jax.jit(op, static_argnames="method")(X, W, method=method)
    np.testing.assert_allclose(np.asarray(y), expected(X, W), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_vmap_over_input_and_filters(method):
    xs = np.stack([X, 2 * X, -X])
    ws = np.stack([W, W[::-1], 0.5 * W])
    ys = jax.vmap(lambda x, w: op(x, w, method))(xs, ws)
    for y, x, w in zip(ys, xs, ws):
        np.testing.assert_allclose(np.asarray(y), expected(x, w), rtol=1e-10, atol=1e-10)
    ys = jax.vmap(lambda x: op(x, W, method))(xs)
    np.testing.assert_allclose(np.asarray(ys[1]), expected(xs[1], W), rtol=1e-10, atol=1e-10)


def test_eval_shape():
    out = jax.eval_shape(op, jax.ShapeDtypeStruct(X.shape, jnp.float32), W.astype(np.float32))
    assert out.shape == (2, 6, 11, 6)
    assert out.dtype == jnp.float32


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_gradients_to_second_order(method):
    check_grads(lambda x, w: op(x, w, method), (X, W), order=2, modes=("rev",))


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_third_order_through_the_adjoint_maps(method):
    """Derivatives of any order stay on the lowering's own maps."""

    def loss(w):
        return jnp.sum(jnp.sin(op(X, w, method)))

    g3 = jax.grad(lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(jax.grad(loss)(w) ** 2))(w)))(W)
    assert g3.shape == W.shape and bool(jnp.all(jnp.isfinite(g3)))


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_checkpoint(method):
    def loss(x, w):
        return jnp.sum(jax.checkpoint(lambda x, w: op(x, w, method))(x, w) ** 2)

    want = jax.grad(lambda x, w: jnp.sum(op(x, w, method) ** 2), argnums=(0, 1))(X, W)
    got = jax.grad(loss, argnums=(0, 1))(X, W)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-10)


def test_gradients_equal_the_reference_adjoint():
    """<g, T(x, w)> is bilinear, so its gradients are T's adjoints applied to g."""
    g = RNG.standard_normal((2, 6, 11, 6))
    dx, dw = jax.grad(lambda x, w: jnp.vdot(g, op(x, w)), argnums=(0, 1))(X, W)
    # Directional derivatives of the reference in random directions.
    u, v = RNG.standard_normal(X.shape), RNG.standard_normal(W.shape)
    np.testing.assert_allclose(np.vdot(dx, u), np.vdot(g, expected(u, W)), rtol=1e-10)
    np.testing.assert_allclose(np.vdot(dw, v), np.vdot(g, expected(X, v)), rtol=1e-10)


def test_hlo_is_one_lhs_dilated_convolution():
    x, w = X.astype(np.float32), W.astype(np.float32)
    text = jax.jit(lambda x, w: op(x, w, "lhs_dilation")).lower(x, w).as_text()
    convolutions = re.findall(r"stablehlo.convolution.*", text)
    assert len(convolutions) == 1, convolutions
    assert "lhs_dilate = [2, 3]" in convolutions[0]
    assert "rhs_dilate = [1, 2]" in convolutions[0]
    assert "feature_group_count = 2" in convolutions[0]
    assert len(re.findall(r"stablehlo.reverse", text)) == 1  # the kernel flip


def test_precision_and_preferred_element_type_reach_xla():
    x, w = X.astype(jnp.bfloat16), W.astype(jnp.bfloat16)

    def f(x, w):
        return jdeconv.conv2d_transpose(
            x,
            w,
            (6, 11),
            (2, 3),
            dilations=(1, 2),
            groups=2,
            method="lhs_dilation",
            precision=jax.lax.Precision.HIGHEST,
            preferred_element_type=jnp.float32,
        )

    text = jax.jit(f).lower(x, w).as_text()
    assert (
        "precision_config = [#stablehlo<precision HIGHEST>, #stablehlo<precision HIGHEST>]" in text
    )
    y = f(x, w)
    assert y.dtype == jnp.float32
    dx, dw = jax.grad(lambda x, w: jnp.sum(f(x, w)), argnums=(0, 1))(x, w)
    assert dx.dtype == jnp.bfloat16 and dw.dtype == jnp.bfloat16
