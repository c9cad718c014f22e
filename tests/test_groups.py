"""Grouped and depthwise transposed convolutions against TensorFlow and NumPy.

TensorFlow has no grouped transposed convolution, but its forward
convolutions take groups (an input depth that is a multiple of the filter's)
on the XLA path. A transposed convolution is the input gradient of a forward
one, so the oracle is built from that: with the forward convolution ``F(u, w)``
(``tf.nn.conv1d`` / ``conv2d`` / ``conv3d`` under
``tf.function(jit_compile=True)``), whose filter ``[*k, C_out / groups, C_in]``
is exactly jdeconv's,

* ``T(x, w)`` is the gradient of ``<F(u, w), x>`` with respect to ``u``;
* the input gradient of ``<g, T(x, w)>`` is ``F(g, w)``;
* its filter gradient is the gradient of ``<F(g, w), x>`` with respect to ``w``.

Each case is also checked against the float64 scatter-add reference in
``tests/reference.py``. TF's ``conv1d`` and ``conv3d`` take no explicit padding,
so explicit padding meets TF in 2-d and the reference in every rank. TF's
``conv3d`` infers a wrong output shape for some dilations (it applies a
dilation to the next spatial axis: ``tf.nn.conv3d`` of a ``(1, 6, 6, 4, 2)``
input with a ``(1, 3, 3, 1, 6)`` filter and ``dilations=[1, 1, 2, 1, 1]``
fails with "subtracting 5 from 4"), so dilated 3-d cases meet the reference
only.
"""

from __future__ import annotations

import dataclasses

import cases
import jax
import numpy as np
import pytest

import jdeconv


def _with_depthwise(sample, every=3):
    """Every ``every``-th case made depthwise (``groups == C_in``)."""
    return [
        dataclasses.replace(case, in_channels=case.groups) if i % every == 0 else case
        for i, case in enumerate(sample)
    ]


SAMPLE = _with_depthwise(
    cases.sample(seed=40, count=7, ranks=(2,), groups=(2, 3, 4))
    + cases.sample(seed=41, count=3, ranks=(1,), groups=(2, 3), paddings=("SAME", "VALID"))
    + cases.sample(
        seed=42, count=3, ranks=(3,), groups=(2, 3), paddings=("SAME", "VALID"), max_dilation=1
    )
)
SLOW_SAMPLE = _with_depthwise(
    cases.sample(seed=43, count=60, ranks=(2,), groups=(2, 3, 4, 6))
    + cases.sample(seed=44, count=20, ranks=(1,), groups=(2, 3), paddings=("SAME", "VALID"))
    + cases.sample(
        seed=47, count=15, ranks=(3,), groups=(2, 3), paddings=("SAME", "VALID"), max_dilation=1
    )
)
REFERENCE_SAMPLE = _with_depthwise(
    cases.sample(seed=45, count=6, ranks=(1, 2, 3), groups=(2, 3), paddings=("EXPLICIT",))
    # Dilated 3-d: TF's conv3d applies a dilation to the wrong spatial axis
    # when inferring its output shape, so these meet the reference only.
    + [
        case
        for case in cases.sample(seed=46, count=12, ranks=(3,), groups=(2, 3))
        if max(case.dilations) > 1
    ][:3]
)


# Float64 everywhere: the oracle, the reference and jdeconv agree to rounding.
TOL = dict(rtol=1e-10, atol=1e-10)


def _parametrize(sample):
    """Each case of ``sample`` with its index, which seeds the case's arrays."""
    return pytest.mark.parametrize(
        ("index", "case"), list(enumerate(sample)), ids=[c.describe() for c in sample]
    )


def _tf_spelling(case, values):
    return [1, *values, 1] if case.channels_last else [1, 1, *values]


def _tf_forward(tf, case):
    """``F(u, w)``: TF's grouped forward convolution, on the XLA path."""
    n = case.num_spatial
    strides = _tf_spelling(case, case.strides)
    dilations = _tf_spelling(case, case.dilations)
    padding = case.padding_arg

    def conv(u, w):
        if n == 1:
            return tf.nn.conv1d(
                u, w, strides, padding, data_format=case.data_format, dilations=dilations
            )
        op = tf.nn.conv2d if n == 2 else tf.nn.conv3d
        return op(u, w, strides, padding, data_format=case.data_format, dilations=dilations)

    return tf.function(conv, jit_compile=True)


def _case_arrays(index, case):
    """``x``, ``w`` and a cotangent ``g`` of the output, seeded by ``index``."""
    x, w = case.arrays(seed=100 + index)
    g = np.random.default_rng(200 + index).standard_normal(case.output_full_shape)
    return x, w, g


def _tf_oracle(tf, case, x, w, g):
    """``T(x, w)``, ``F(g, w)`` and the filter gradient, from TF's forward convolution."""
    conv = _tf_forward(tf, case)
    u = tf.zeros(case.output_full_shape, tf.float64)
    xt, wt, gt = tf.constant(x), tf.constant(w), tf.constant(g)
    with tf.GradientTape() as tape:
        tape.watch(u)
        inner = tf.reduce_sum(conv(u, wt) * xt)
    y = tape.gradient(inner, u)
    dx = conv(gt, wt)
    with tf.GradientTape() as tape:
        tape.watch(wt)
        inner = tf.reduce_sum(conv(gt, wt) * xt)
    dw = tape.gradient(inner, wt)
    return y.numpy(), dx.numpy(), dw.numpy()


def _jdeconv(case, x, w, g):
    """jdeconv's ``T(x, w)`` and its VJP with ``g``."""

    def f(x, w):
        return jdeconv.conv_transpose(x, w, *case.op_args, groups=case.groups)

    y, vjp = jax.vjp(f, x, w)
    return (np.asarray(y), *(np.asarray(a) for a in vjp(g)))


def _check_against_tf(index, case, tf):
    x, w, g = _case_arrays(index, case)
    y_tf, dx_tf, dw_tf = _tf_oracle(tf, case, x, w, g)
    y, dx, dw = _jdeconv(case, x, w, g)
    np.testing.assert_allclose(y_tf, case.reference(x, w), **TOL)  # The oracle agrees.
    np.testing.assert_allclose(y, y_tf, **TOL)
    np.testing.assert_allclose(dx, dx_tf, **TOL)
    np.testing.assert_allclose(dw, dw_tf, **TOL)


@_parametrize(SAMPLE)
def test_grouped_matches_tf_gradient_of_grouped_conv(index, case, tf):
    _check_against_tf(index, case, tf)


@pytest.mark.slow
@_parametrize(SLOW_SAMPLE)
def test_grouped_matches_tf_slow(index, case, tf):
    _check_against_tf(index, case, tf)


def test_sample_covers_the_space():
    """The default sample has what the module promises: a guard against drift."""
    everything = SAMPLE + REFERENCE_SAMPLE
    assert {c.num_spatial for c in SAMPLE} == {1, 2, 3}
    assert {c.channels_last for c in SAMPLE} == {True, False}
    assert {c.padding for c in SAMPLE if isinstance(c.padding, str)} == {"SAME", "VALID"}
    assert any(not isinstance(c.padding, str) for c in SAMPLE)
    assert any(c.in_channels == c.groups for c in SAMPLE)  # Depthwise.
    assert any(c.in_channels > c.groups for c in SAMPLE)
    assert any(max(c.dilations) > 1 for c in SAMPLE)
    assert any(max(c.strides) > 1 and max(c.dilations) > 1 for c in everything)
    assert any(c.num_spatial == 3 and max(c.dilations) > 1 for c in REFERENCE_SAMPLE)


@_parametrize(REFERENCE_SAMPLE)
def test_grouped_explicit_padding_matches_reference(index, case):
    x, w, g = _case_arrays(index, case)
    y, dx, dw = _jdeconv(case, x, w, g)
    y_ref = case.reference(x, w)
    np.testing.assert_allclose(y, y_ref, **TOL)
    # Gradients through the adjoint identity <g, T(x, w)> = <dx, x> = <dw, w>.
    inner = float(np.vdot(g, y_ref))
    np.testing.assert_allclose(np.vdot(dx, x), inner, rtol=1e-9)
    np.testing.assert_allclose(np.vdot(dw, w), inner, rtol=1e-9)
    # Each input-gradient entry is the reference response to a unit input.
    flat_index = np.random.default_rng(index).integers(x.size)
    unit = np.zeros(x.size)
    unit[flat_index] = 1.0
    response = case.reference(unit.reshape(x.shape), w)
    np.testing.assert_allclose(dx.reshape(-1)[flat_index], np.vdot(g, response), rtol=1e-9)


def test_depthwise_differs_from_dense():
    """groups == C_in uses each channel's own filter: not a dense convolution."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 4, 3))
    w = rng.standard_normal((3, 3, 2, 3))  # Two outputs per input channel.
    y = np.asarray(jdeconv.conv2d_transpose(x, w, (1, 8, 8, 6), 2, groups=3))
    for channel in range(3):
        single = jdeconv.conv2d_transpose(
            x[..., channel : channel + 1], w[..., channel : channel + 1], (1, 8, 8, 2), 2
        )
        np.testing.assert_allclose(y[..., 2 * channel : 2 * channel + 2], single, rtol=1e-12)


def test_groups_errors():
    x = np.zeros((1, 4, 4, 6))
    with pytest.raises(
        ValueError, match=r"^conv2d_transpose: `groups` must divide the 6 input channels, got 4\.$"
    ):
        jdeconv.conv2d_transpose(x, np.zeros((3, 3, 2, 6)), (1, 8, 8, 8), 2, groups=4)
    with pytest.raises(
        TypeError, match=r"^conv2d_transpose: `groups` must hold integers, got float 2.0\.$"
    ):
        jdeconv.conv2d_transpose(x, np.zeros((3, 3, 2, 6)), (1, 8, 8, 4), 2, groups=2.0)
