"""The op is a JAX primitive: every transformation is derived from its rules.

``T(x, w)``, ``F(g, w)`` and ``K(x, g)`` are three primitives whose JVPs and
transposes are each other. Checked here against the float64 NumPy
reference, which knows nothing of them:

* ``check_grads`` in forward and reverse mode, to second order, of ``T`` and
  of ``F`` and ``K`` (reached through ``jax.linear_transpose``);
* ``jvp``, ``jacfwd``, ``jacrev``, ``hessian``, ``linearize`` and
  Hessian-vector products in both nestings, against Jacobians built column
  by column from the reference;
* ``linear_transpose`` and the adjoint identities
  ``<g, T(x, w)> = <x, F(g, w)> = <w, K(x, g)>``;
* ``vmap`` over each argument and over both, against a loop of calls;
* ``jax.export`` with a symbolic batch, for CPU, CUDA and TPU at once;
* the compiled programs hold only the convolutions the lowerings emit.
"""

from __future__ import annotations

import re

import cases
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from jax import export
from jax.test_util import check_grads

import jdeconv

# Ranks 1 to 3, with dilation, groups and explicit padding.
CASES = [
    cases.Case(1, True, 2, 2, 4, 2, (4,), (3,), (2,), (2,), ((3, 1),), (8,), spelling=3),
    cases.Case(2, False, 1, 4, 2, 2, (3, 2), (3, 2), (2, 3), (1, 2), "SAME", (6, 5), spelling=7),
    cases.Case(3, True, 1, 1, 2, 1, (2, 1, 2), (2, 1, 2), (2, 1, 2), (1, 1, 1), "VALID",
               (4, 1, 5), spelling=3),
]  # fmt: skip
IDS = [case.describe() for case in CASES]


def op(case, method):
    def apply(x, w):
        return jdeconv.conv_transpose(x, w, *case.op_args, groups=case.groups, method=method)

    return apply


def arrays(case):
    rng = np.random.default_rng(cases.seed_of(case.describe()))
    x = rng.standard_normal(case.input_shape)
    w = rng.standard_normal(case.filters_shape)
    g = rng.standard_normal(case.output_full_shape)
    return x, w, g


def ref_forward_conv(case, g, w):
    return reference.forward_conv(
        g, w, case.input_size, case.strides, case.dilations, case.padding,
        groups=case.groups, channels_last=case.channels_last,
    )  # fmt: skip


def ref_kernel_grad(case, x, g):
    return reference.kernel_grad(
        x, g, case.kernel_size, case.strides, case.dilations, case.padding,
        groups=case.groups, channels_last=case.channels_last,
    )  # fmt: skip


def jacobian(linear, shape):
    """The matrix of a linear NumPy function of an array of ``shape``, column by column."""
    columns = []
    for i in range(int(np.prod(shape))):
        basis = np.zeros(int(np.prod(shape)))
        basis[i] = 1.0
        columns.append(np.ravel(linear(basis.reshape(shape))))
    return np.stack(columns, axis=1)


TOL = dict(rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------ derivatives


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_check_grads_of_the_three_maps(case, method):
    x, w, g = arrays(case)
    t = op(case, method)

    def f(g, w):
        return jax.linear_transpose(lambda x: t(x, w), x)(g)[0]

    def k(x, g):
        return jax.linear_transpose(lambda w: t(x, w), w)(g)[0]

    for function, args in ((t, (x, w)), (f, (g, w)), (k, (x, g))):
        check_grads(function, args, order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jvp_and_linear_transpose_match_the_reference(case, method):
    x, w, g = arrays(case)
    t = op(case, method)
    dx, dw = np.cos(x), np.sin(w)
    y, tangent = jax.jvp(t, (x, w), (dx, dw))
    np.testing.assert_allclose(np.asarray(y), case.reference(x, w), **TOL)
    want = case.reference(dx, w) + case.reference(x, dw)
    np.testing.assert_allclose(np.asarray(tangent), want, **TOL)

    (fx,) = jax.linear_transpose(lambda x: t(x, w), x)(g)
    (kw,) = jax.linear_transpose(lambda w: t(x, w), w)(g)
    np.testing.assert_allclose(np.asarray(fx), ref_forward_conv(case, g, w), **TOL)
    np.testing.assert_allclose(np.asarray(kw), ref_kernel_grad(case, x, g), **TOL)
    inner = np.vdot(g, case.reference(x, w))
    np.testing.assert_allclose(np.vdot(x, fx), inner, rtol=1e-10)
    np.testing.assert_allclose(np.vdot(w, kw), inner, rtol=1e-10)

    # The transposes of the transposes are the maps themselves.
    (tx,) = jax.linear_transpose(lambda g: jax.linear_transpose(lambda x: t(x, w), x)(g)[0], g)(x)
    np.testing.assert_allclose(np.asarray(tx), case.reference(x, w), **TOL)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_jacobians_and_hessians_match_the_reference(method):
    case = CASES[1]
    x, w, _ = arrays(case)
    t = op(case, method)
    jac_x = jacobian(lambda x: case.reference(x, w), x.shape)  # (out, in)
    jac_w = jacobian(lambda w: case.reference(x, w), w.shape)
    out_shape = case.output_full_shape
    for jac in (jax.jacfwd, jax.jacrev):
        got = np.asarray(jac(t, argnums=0)(x, w)).reshape(-1, x.size)
        np.testing.assert_allclose(got, jac_x, **TOL)
        got = np.asarray(jac(t, argnums=1)(x, w)).reshape(-1, w.size)
        np.testing.assert_allclose(got, jac_w, **TOL)

    # f(w) = sum(sin(T(x, w))): its Hessian is J^T diag(-sin(y)) J.
    def loss(w):
        return jnp.sum(jnp.sin(t(x, w)))

    y = case.reference(x, w).ravel()
    hessian = jac_w.T @ (-np.sin(y)[:, None] * jac_w)
    np.testing.assert_allclose(
        np.asarray(jax.hessian(loss)(w)).reshape(w.size, w.size), hessian, **TOL
    )
    v = np.cos(w)
    forward_over_reverse = jax.jvp(jax.grad(loss), (w,), (v,))[1]
    reverse_over_forward = jax.grad(lambda w: jax.jvp(loss, (w,), (v,))[1])(w)
    for hvp in (forward_over_reverse, reverse_over_forward):
        np.testing.assert_allclose(np.asarray(hvp).ravel(), hessian @ v.ravel(), **TOL)
    value, linear = jax.linearize(lambda w: t(x, w), w)
    np.testing.assert_allclose(np.asarray(linear(v)).ravel(), jac_w @ v.ravel(), **TOL)
    assert value.shape == out_shape


# --------------------------------------------------------------- batching


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_equals_a_loop(case, method):
    x, w, g = arrays(case)
    xs = np.stack([x, 2 * x, -x])
    ws = np.stack([w, np.flip(w, 0), 0.5 * w])
    gs = np.stack([g, -g, 3 * g])
    t = op(case, method)

    def vjp(x, w, g):
        return jax.vjp(t, x, w)[1](g)

    for in_axes in ((0, 0), (0, None), (None, 0)):
        args = [a if axis == 0 else b for a, b, axis in zip((xs, ws), (x, w), in_axes)]
        got = jax.vmap(t, in_axes=in_axes)(*args)
        for i in range(3):
            slice_args = [a[i] if axis == 0 else a for a, axis in zip(args, in_axes)]
            np.testing.assert_allclose(np.asarray(got[i]), case.reference(*slice_args), **TOL)
    for in_axes in ((0, 0, 0), (0, None, None), (None, 0, None), (None, None, 0), (0, None, 0)):
        args = [a if axis == 0 else b for a, b, axis in zip((xs, ws, gs), (x, w, g), in_axes)]
        got_x, got_w = jax.vmap(vjp, in_axes=in_axes)(*args)
        for i in range(3):
            xi, wi, gi = (a[i] if axis == 0 else a for a, axis in zip(args, in_axes))
            np.testing.assert_allclose(np.asarray(got_x[i]), ref_forward_conv(case, gi, wi), **TOL)
            np.testing.assert_allclose(np.asarray(got_w[i]), ref_kernel_grad(case, xi, gi), **TOL)


def test_vmap_over_a_kernel_axis_that_is_not_first():
    case = CASES[1]
    x, w, _ = arrays(case)
    ws = np.stack([w, -w], axis=2)  # mapped along axis 2
    got = jax.vmap(op(case, "auto"), in_axes=(None, 2), out_axes=1)(x, ws)
    for i in range(2):
        np.testing.assert_allclose(np.asarray(got[:, i]), case.reference(x, ws[:, :, i]), **TOL)


# ----------------------------------------------------- other transformations


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_scan_checkpoint_policies_and_eval_shape(method):
    case = CASES[1]
    x, w, _ = arrays(case)
    t = op(case, method)

    def loss(x, w, policy):
        layer = jax.checkpoint(lambda x, w: jnp.sin(t(x, w)), policy=policy)
        return jnp.sum(layer(x, w) ** 2)

    want = jax.grad(lambda x, w: jnp.sum(jnp.sin(t(x, w)) ** 2), argnums=(0, 1))(x, w)
    for policy in (
        None,
        jax.checkpoint_policies.nothing_saveable,
        jax.checkpoint_policies.everything_saveable,
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    ):
        got = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(x, w, policy)
        for a, b in zip(got, want):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)

    def body(carry, w):
        return carry + jnp.sum(t(x, w)), t(x, w)

    ws = np.stack([w, 2 * w])
    total, ys = jax.lax.scan(body, 0.0, ws)
    np.testing.assert_allclose(np.asarray(ys[1]), case.reference(x, 2 * w), **TOL)
    np.testing.assert_allclose(float(total), 3 * case.reference(x, w).sum(), rtol=1e-10)

    shape = jax.eval_shape(t, jax.ShapeDtypeStruct(x.shape, jnp.float32), w.astype(np.float32))
    assert shape.shape == case.output_full_shape and shape.dtype == jnp.float32


def _export_case():
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 2)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((3, 3, 6, 2)).astype(np.float32)

    def f(x, w):
        # Spelled as a TF port writes it: the batch taken from the input.
        return jdeconv.conv2d_transpose(x, w, (x.shape[0], 8, 10, 6), 2, "SAME")

    return f, x, w


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_export_with_a_symbolic_batch(method):
    _, x, w = _export_case()

    def f(x, w):
        return jdeconv.conv2d_transpose(x, w, (x.shape[0], 8, 10, 6), 2, "SAME", method=method)

    def grads(x, w):
        return jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1))(x, w)

    (b,) = export.symbolic_shape("b")
    specs = (
        jax.ShapeDtypeStruct((b, 4, 5, 2), jnp.float32),
        jax.ShapeDtypeStruct(w.shape, w.dtype),
    )
    for function in (f, grads):
        exported = export.export(jax.jit(function), platforms=("cpu", "cuda", "tpu"))(*specs)
        restored = export.deserialize(exported.serialize())
        for batch in (1, 3):
            got = restored.call(x[:batch], w)
            want = function(x[:batch], w)
            for a, b_ in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b_), rtol=1e-5, atol=1e-5)


def test_export_checks_the_symbolic_batch():
    (b, c) = export.symbolic_shape("b, c")
    w = jax.ShapeDtypeStruct((3, 3, 6, 2), jnp.float32)
    x = jax.ShapeDtypeStruct((b, 4, 5, 2), jnp.float32)
    with pytest.raises(ValueError, match=r"^conv2d_transpose: `output_shape` has batch size c"):
        export.export(jax.jit(lambda x, w: jdeconv.conv2d_transpose(x, w, (c, 8, 10, 6), 2)))(x, w)
    with pytest.raises(TypeError, match=r"^conv2d_transpose: `output_shape` must hold integers"):
        export.export(jax.jit(lambda x, w: jdeconv.conv2d_transpose(x, w, (8, b), 2)))(x, w)


def _tf_reads_symbolic_shapes(tf) -> str | None:
    """Why TensorFlow cannot run jax2tf's output with symbolic shapes here, or None.

    Probed with ``jnp.sin``, not jdeconv: jax 0.12 writes shape assertions in
    a StableHLO (``vhlo.custom_call_v2``) that TensorFlow 2.21 cannot read,
    whatever the function.
    """
    from jax.experimental import jax2tf

    sin = tf.function(jax2tf.convert(jnp.sin, polymorphic_shapes=["(b, 3)"]), autograph=False)
    try:
        sin(np.ones((2, 3), np.float32))
    except tf.errors.InvalidArgumentError as error:
        detail = re.search(r"unregistered operation '[^']*'|Cannot deserialize[^\n]*", str(error))
        return (
            f"TensorFlow {tf.__version__} cannot run what jax {jax.__version__} writes for "
            f"symbolic shapes, even for jnp.sin ({detail[0] if detail else 'InvalidArgumentError'})"
        )
    return None


@pytest.mark.parametrize("symbolic", [False, True], ids=["static", "symbolic batch"])
def test_jax2tf_round_trip(tf, symbolic):
    from jax.experimental import jax2tf

    if symbolic and (reason := _tf_reads_symbolic_shapes(tf)):
        pytest.skip(reason)
    f, x, w = _export_case()
    shapes = ["(b, 4, 5, 2)", None] if symbolic else None
    tf_f = tf.function(jax2tf.convert(f, polymorphic_shapes=shapes), autograph=False)
    np.testing.assert_allclose(tf_f(x, w).numpy(), np.asarray(f(x, w)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- programs

_CONVOLUTION = re.compile(
    r"stablehlo.convolution.*?lhs_dilate = \[([\d, ]*)\], rhs_dilate = \[([\d, ]*)\]"
)


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_programs_hold_only_the_lowerings_convolutions(method):
    """No convolution in any derivative program is one XLA would derive by transposing.

    The only lhs-dilated convolution a lowering emits is the reference
    lowering's ``T``, with ``lhs_dilation = strides`` and ``rhs_dilation =
    dilations``; a transpose derived by XLA would carry other dilations.
    """
    x = jnp.ones((1, 3, 4, 2), jnp.float32)
    w = jnp.ones((3, 2, 4, 2), jnp.float32)
    strides, dilations = (2, 3), (2, 2)

    def t(x, w):
        return jdeconv.conv2d_transpose(
            x, w, (1, 6, 12, 4), strides, "SAME", dilations=dilations, method=method
        )

    def loss(x, w):
        return jnp.sum(jnp.sin(t(x, w)))

    programs = {
        "forward": t,
        "grad": jax.grad(loss, argnums=(0, 1)),
        "jvp": lambda x, w: jax.jvp(t, (x, w), (x, w)),
        "hessian": jax.hessian(loss, argnums=1),
        "reverse over forward": jax.grad(lambda w: jax.jvp(loss, (x, w), (x, w))[1]),
    }
    for name, program in programs.items():
        args = (w,) if name == "reverse over forward" else (x, w)
        text = jax.jit(program).lower(*args).as_text()
        for lhs, rhs in _CONVOLUTION.findall(text):
            lhs_dilate = tuple(map(int, lhs.split(",")))
            rhs_dilate = tuple(map(int, rhs.split(",")))
            if any(d > 1 for d in lhs_dilate):
                assert (lhs_dilate, rhs_dilate) == (strides, dilations), (name, lhs, rhs)
