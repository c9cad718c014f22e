"""The op against the float64 NumPy reference, for every lowering method."""

from __future__ import annotations

import cases
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference

import jdeconv

OP_BY_RANK = {
    1: jdeconv.conv1d_transpose,
    2: jdeconv.conv2d_transpose,
    3: jdeconv.conv3d_transpose,
}

SAMPLE = cases.sample(seed=1, count=32, groups=(1, 1, 2, 3))
GRID = cases.sample(seed=2, count=400, groups=(1, 2, 3))


def run(case, x, w, method, op=None):
    op = op or OP_BY_RANK[case.num_spatial]
    return op(
        x,
        w,
        case.output_shape_arg,
        case.strides_arg,
        case.padding_arg,
        case.data_format,
        case.dilations_arg,
        groups=case.groups,
        method=method,
    )


def check_against_reference(case, method):
    x, w = case.arrays(seed=cases.seed_of(case.describe()))
    y = run(case, x, w, method)
    assert y.shape == case.output_full_shape
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(y), case.reference(x, w), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", SAMPLE, ids=[c.describe() for c in SAMPLE])
def test_matches_reference(case, method):
    check_against_reference(case, method)


@pytest.mark.slow
@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", GRID, ids=[c.describe() for c in GRID])
def test_matches_reference_grid(case, method):
    check_against_reference(case, method)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_conv_transpose_infers_rank_and_layout(method):
    for case in SAMPLE[:12]:
        x, w = case.arrays()
        data_format = None if case.channels_last else case.data_format
        y = jdeconv.conv_transpose(
            x,
            w,
            case.output_shape_arg,
            case.strides_arg,
            case.padding_arg,
            data_format,
            case.dilations_arg,
            groups=case.groups,
            method=method,
        )
        np.testing.assert_allclose(np.asarray(y), case.reference(x, w), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_every_accepted_output_size(method):
    """Each size in TF's range works, including SAME below I*s and VALID up to the top."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3, 2))
    w = rng.standard_normal((3, 4, 5, 2))
    for padding in ("SAME", "VALID"):
        heights = cases.accepted_range(4, 3, 3, 2, padding)
        widths = cases.accepted_range(3, 4, 2, 1, padding)
        for h in heights:
            for wd in widths:
                y = jdeconv.conv2d_transpose(
                    x, w, (h, wd), (3, 2), padding, dilations=(2, 1), method=method
                )
                want = reference.conv_transpose(x, w, (h, wd), (3, 2), (2, 1), padding)
                np.testing.assert_allclose(np.asarray(y), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_four_spatial_dimensions(method):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 3, 2, 2, 3))
    w = rng.standard_normal((2, 1, 2, 3, 2, 3))
    out = (4, 5, 3, 5)
    y = jdeconv.conv_transpose(x, w, out, (2, 2, 1, 2), "VALID", method=method)
    want = reference.conv_transpose(x, w, out, (2, 2, 1, 2), (1, 1, 1, 1), "VALID")
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-10, atol=1e-10)


def test_concrete_jax_array_output_shape():
    x = jnp.ones((1, 3, 3, 2))
    w = jnp.ones((2, 2, 4, 2))
    y = jdeconv.conv2d_transpose(x, w, jnp.array([1, 6, 6, 4]), 2)
    assert y.shape == (1, 6, 6, 4)


def test_zero_batch():
    x = jnp.zeros((0, 3, 3, 2))
    w = jnp.ones((2, 2, 4, 2))
    assert jdeconv.conv2d_transpose(x, w, (0, 6, 6, 4), 2).shape == (0, 6, 6, 4)


def test_name_appears_in_compiled_metadata():
    x = jnp.ones((1, 3, 3, 2))
    w = jnp.ones((2, 2, 4, 2))
    f = jax.jit(lambda x, w: jdeconv.conv2d_transpose(x, w, (6, 6), 2, name="decoder_up1"))
    assert "decoder_up1" in f.lower(x, w).as_text(debug_info=True)
