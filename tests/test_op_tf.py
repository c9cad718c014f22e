"""TensorFlow as the oracle: values, both gradients, and the shapes it rejects.

TF's own CPU kernel refuses channels-first layouts and dilations above 1; those
cases run through TF's XLA path (``tf.function(jit_compile=True)``), which
computes them. TF's 1-d and 3-d ops take no explicit padding, so explicit
padding is compared for 2-d here (and for every rank against the NumPy
reference in ``test_op_reference.py``).

TF's registered gradient of ``conv3d_transpose`` ignores ``dilations`` (it
returns a gradient of the wrong shape), so for dilated 3-d cases the oracle
gradients come from TF's forward ``conv3d`` through the adjoint identity
``<g, T(x, w)> = <conv3d(g, w), x>``: the input gradient is ``conv3d(g, w)`` and
the kernel gradient is TF's filter gradient of that forward convolution.
"""

from __future__ import annotations

import functools

import cases
import jax
import numpy as np
import pytest

import jdeconv

OPS = {1: "conv1d_transpose", 2: "conv2d_transpose", 3: "conv3d_transpose"}

SAMPLE = (
    cases.sample(seed=10, count=18, ranks=(2,))
    + cases.sample(seed=11, count=6, ranks=(1,), paddings=("SAME", "VALID"))
    + cases.sample(seed=12, count=5, ranks=(3,), paddings=("SAME", "VALID"))
)
GRID = (
    cases.sample(seed=20, count=120, ranks=(2,))
    + cases.sample(seed=21, count=40, ranks=(1,), paddings=("SAME", "VALID"))
    + cases.sample(seed=22, count=40, ranks=(3,), paddings=("SAME", "VALID"))
)
IDS = [c.describe() for c in SAMPLE]

# Float32, explicit padding up to twice the kernel's reach (the sub-pixel
# lowerings crop there), with the case that once returned uninitialised
# memory (XLA:CPU's negative-padding bug, openxla/xla#48713).
FLOAT32_SAMPLE = [
    cases.Case(2, False, 2, 4, 4, 1, (5, 6), (3, 3), (2, 3), (1, 1), ((2, 2), (2, 0)), (8, 18),
               spelling=0),
    *cases.sample(seed=13, count=7, ranks=(2,), paddings=("EXPLICIT",), max_padding=6),
]  # fmt: skip


def tf_full_spelling(case, values):
    return [1, *values, 1] if case.channels_last else [1, 1, *values]


def tf_needs_xla(case):
    return not case.channels_last or any(d > 1 for d in case.dilations)


def tf_op(tf, case):
    op = getattr(tf.nn, OPS[case.num_spatial])

    def f(x, w):
        return op(
            x,
            w,
            list(case.output_full_shape),
            tf_full_spelling(case, case.strides),
            case.padding_arg,
            data_format=case.data_format,
            dilations=tf_full_spelling(case, case.dilations),
        )

    return tf.function(f, jit_compile=True) if tf_needs_xla(case) else f


@functools.cache
def tf_result(case):
    import tensorflow as tf

    index = (SAMPLE + GRID).index(case)
    x, w = case.arrays(seed=index)
    g = np.random.default_rng(1000 + index).standard_normal(case.output_full_shape)
    op = tf_op(tf, case)
    xt, wt, gt = tf.constant(x), tf.constant(w), tf.constant(g)
    if case.num_spatial == 3 and any(d > 1 for d in case.dilations):
        y = op(xt, wt)  # Not under a tape: TF would build the broken gradient.
        dx, dw = tf_conv3d_adjoints(tf, case, xt, wt, gt)
    else:
        with tf.GradientTape() as tape:
            tape.watch([xt, wt])
            y = op(xt, wt)
        dx, dw = tape.gradient(y, [xt, wt], output_gradients=gt)
    return x, w, g, y.numpy(), dx.numpy(), dw.numpy()


def tf_conv3d_adjoints(tf, case, x, w, g):
    @tf.function(jit_compile=True)
    def forward_conv(g, w):
        return tf.nn.conv3d(
            g,
            w,
            tf_full_spelling(case, case.strides),
            case.padding_arg,
            data_format=case.data_format,
            dilations=tf_full_spelling(case, case.dilations),
        )

    with tf.GradientTape() as tape:
        tape.watch(w)
        dx = forward_conv(g, w)
    return dx, tape.gradient(dx, w, output_gradients=x)


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", SAMPLE, ids=IDS)
def test_values_and_gradients_match_tensorflow(tf, case, method):
    check_against_tensorflow(case, method)


@pytest.mark.slow
@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", GRID, ids=[c.describe() for c in GRID])
def test_values_and_gradients_match_tensorflow_grid(tf, case, method):
    check_against_tensorflow(case, method)


def check_against_tensorflow(case, method):
    x, w, g, y_tf, dx_tf, dw_tf = tf_result(case)
    op = getattr(jdeconv, OPS[case.num_spatial])

    def f(x, w):
        return op(
            x,
            w,
            case.output_shape_arg,
            case.strides_arg,
            case.padding_arg,
            case.data_format,
            case.dilations_arg,
            method=method,
        )

    y, vjp = jax.vjp(f, x, w)
    dx, dw = vjp(g)
    np.testing.assert_allclose(np.asarray(y), y_tf, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(dx), dx_tf, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(dw), dw_tf, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", FLOAT32_SAMPLE, ids=[c.describe() for c in FLOAT32_SAMPLE])
def test_float32_with_padding_beyond_the_kernel(tf, case, method):
    x, w = case.arrays(seed=cases.seed_of(case.describe()), dtype=np.float32)
    y_tf = tf_op(tf, case)(tf.constant(x), tf.constant(w)).numpy()
    y = getattr(jdeconv, OPS[case.num_spatial])(x, w, *case.op_args, method=method)
    assert y.dtype == np.float32
    scale = np.abs(y_tf).max() + 1.0
    np.testing.assert_allclose(np.asarray(y), y_tf, rtol=1e-5, atol=1e-5 * scale)


def rejected_variants(case):
    """The case with one output size just outside TF's accepted range."""
    padding = case.padding
    for dim in range(case.num_spatial):
        pad = padding if isinstance(padding, str) else padding[dim]
        accepted = cases.accepted_range(
            case.input_size[dim],
            case.kernel_size[dim],
            case.strides[dim],
            case.dilations[dim],
            pad,
        )
        for bad in (accepted.start - 1, accepted.stop):
            if bad >= 1:
                sizes = list(case.output_size)
                sizes[dim] = bad
                yield dim, tuple(sizes)


@pytest.mark.parametrize("index", range(0, len(SAMPLE), 3), ids=IDS[::3])
def test_rejects_what_tensorflow_rejects(tf, index):
    case = SAMPLE[index]
    x, w = case.arrays()
    for dim, sizes in rejected_variants(case):
        bad = case.__class__(**{**case.__dict__, "output_size": sizes})
        with pytest.raises((tf.errors.OpError, ValueError)):
            tf_op(tf, bad)(tf.constant(x), tf.constant(w))
        with pytest.raises(ValueError, match=rf"output size {sizes[dim]} in dimension {dim}"):
            getattr(jdeconv, OPS[case.num_spatial])(
                x,
                w,
                bad.output_shape_arg,
                case.strides_arg,
                case.padding_arg,
                case.data_format,
                case.dilations_arg,
            )


def test_tensorflow_rejects_the_same_argument_errors(tf):
    """A few argument errors, checked on both sides."""
    x = np.ones((1, 4, 4, 3))
    w = np.ones((3, 3, 5, 3))
    bad_calls = [
        dict(output_shape=[1, 8, 8, 6]),  # channel mismatch
        dict(output_shape=[2, 8, 8, 5]),  # batch mismatch
        dict(strides=[2, 2, 2, 1]),  # stride on the channel axis
        dict(padding=[[0, 0], [1, 1], [1, 1], [1, 0]]),  # padding on channels
        dict(filters=np.ones((3, 3, 5, 2))),  # in-channel mismatch
    ]
    for overrides in bad_calls:
        kwargs = dict(input=x, filters=w, output_shape=[1, 8, 8, 5], strides=2, padding="SAME")
        kwargs.update(overrides)
        with pytest.raises((tf.errors.OpError, ValueError)):
            tf.nn.conv2d_transpose(**kwargs)
        with pytest.raises(ValueError, match=r"^conv2d_transpose: "):
            jdeconv.conv2d_transpose(**kwargs)
