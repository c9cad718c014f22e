"""Each dtype against the float64 reference, with one tolerance per dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference

import jdeconv

# Relative to the magnitude bound reference(|x|, |w|) at each output element.
TOLERANCE = {
    jnp.float64: 1e-12,
    jnp.float32: 1e-5,
    jnp.float16: 4e-3,
    jnp.bfloat16: 3e-2,
}

CASES = [
    # (input shape, filters shape, output spatial, strides, dilations, padding, groups)
    ((2, 5, 4, 6), (3, 4, 4, 6), (10, 8), (2, 2), (1, 1), "SAME", 2),
    ((2, 5, 4, 3), (4, 4, 1, 3), (10, 8), (2, 2), (1, 1), "SAME", 3),
    ((1, 6, 3), (5, 2, 3), (25,), (3,), (2,), "VALID", 1),
    ((1, 3, 2, 3, 2), (2, 3, 2, 3, 2), (5, 4, 3), (2, 2, 1), (1, 1, 2), "SAME", 1),
]


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=["2d-groups", "2d-depthwise", "1d-dilated", "3d"])
def test_dtype_against_float64_reference(case, dtype, method):
    in_shape, w_shape, out, strides, dilations, padding, groups = case
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(in_shape), dtype)
    w = jnp.asarray(rng.standard_normal(w_shape), dtype)
    y = jdeconv.conv_transpose(
        x, w, out, strides, padding, dilations=dilations, groups=groups, method=method
    )
    assert y.dtype == dtype
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    want = reference.conv_transpose(x64, w64, out, strides, dilations, padding, groups=groups)
    bound = reference.conv_transpose(
        np.abs(x64), np.abs(w64), out, strides, dilations, padding, groups=groups
    )
    error = np.abs(np.asarray(y, np.float64) - want)
    assert np.all(error <= TOLERANCE[dtype] * (bound + 1.0)), error.max()

    dx, dw = jax.grad(
        lambda x, w: jnp.sum(
            jdeconv.conv_transpose(
                x, w, out, strides, padding, dilations=dilations, groups=groups, method=method
            ).astype(jnp.float32)
        ),
        argnums=(0, 1),
    )(x, w)
    assert dx.dtype == dtype and dw.dtype == dtype


def test_mixed_dtypes_follow_jax_promotion():
    x = jnp.ones((1, 3, 3, 2), jnp.bfloat16)
    w = jnp.ones((2, 2, 4, 2), jnp.float32)
    assert jdeconv.conv2d_transpose(x, w, (6, 6), 2).dtype == jnp.float32
    assert jdeconv.conv2d_transpose(x, w.astype(jnp.float16), (6, 6), 2).dtype == jnp.float32
    with pytest.raises(
        TypeError,
        match=r"^conv2d_transpose: `input` must have a floating-point dtype .* got int32\.$",
    ):
        jdeconv.conv2d_transpose(np.ones((1, 3, 3, 2), np.int32), w, (6, 6), 2)
    dx = jax.grad(lambda x: jnp.sum(jdeconv.conv2d_transpose(x, w, (6, 6), 2)))(x)
    assert dx.dtype == jnp.bfloat16
