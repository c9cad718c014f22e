"""Each lowering's three bilinear maps, one by one, against float64 references.

A lowering supplies the transposed convolution ``T(x, w)``, its adjoint in the
input ``F(g, w)`` and its adjoint in the kernel ``K(x, g)``. Second-order
gradients call each of them in every role, so each map is checked on its own,
for random geometries (1-D to 3-D, strides, dilations, SAME / VALID /
explicit padding, groups, both layouts, kernels that are not a multiple of
the stride, every accepted output size):

* ``T`` against the NumPy scatter-add reference (``reference.py``);
* ``F`` and ``K`` against the reference through the adjoint identities
  ``<g, T(x, w)> = <F(g, w), x> = <K(x, g), w>``, and element-wise against the
  reference lowering's own adjoints.

Then ``check_grads`` to second order, the ``"auto"`` policy and the fallback.
"""

from __future__ import annotations

import dataclasses
import math

import cases
import jax
import jax.numpy as jnp
import jaxlib.version
import numpy as np
import pytest
import reference
from jax import export
from jax.test_util import check_grads

import jdeconv
from jdeconv import _lowerings, _primitives, _shapes
from jdeconv._lowerings import _lhs_dilation, _phase, _release_tuning, auto_choice

FAST_METHODS = [m for m in jdeconv.METHODS if m != "lhs_dilation"]
MAPS = ("transpose_conv", "forward_conv", "kernel_grad")


# Geometries weighted towards 2-d, groups and strides up to 4, a third of them
# with kernels that are not a multiple of the stride. The default sample comes
# with the smallest and the largest accepted output sizes, the grid with every
# accepted size of every dimension.
GEOMETRIES = dict(
    ranks=(1, 1, 2, 2, 2, 3),
    groups=(1, 1, 2, 3),
    max_stride=4,
    max_kernel=5,
    off_stride_kernels=0.35,
)
SAMPLE = cases.sample(seed=107, count=20, outputs="extremes", **GEOMETRIES)
GRID = cases.sample(seed=23, count=400, outputs="every", **GEOMETRIES)


def _case(input_size, kernel, strides, dilations, padding, output, *, groups=1, channels_last=True):
    """A chosen geometry as a case: a batch of 2, two input and output channels per group."""
    return cases.Case(
        num_spatial=len(input_size),
        channels_last=channels_last,
        batch=2,
        in_channels=2 * groups,
        out_channels=2 * groups,
        groups=groups,
        input_size=input_size,
        kernel_size=kernel,
        strides=strides,
        dilations=dilations,
        padding=padding,
        output_size=output,
        spelling=0,
    )


def _geometry(case: cases.Case) -> _shapes.ConvTransposeGeometry:
    return _shapes.make_geometry(
        "test",
        input_size=case.input_size,
        kernel_size=case.kernel_size,
        output_size=case.output_size,
        strides=case.strides,
        dilations=case.dilations,
        padding=case.padding,
        channels_last=case.channels_last,
        groups=case.groups,
    )


def _all_maps(method: str, geometry):
    """``method``'s three primitives and the reference lowering's adjoints, in one jit."""

    def bind(primitive, a, b, method):
        return primitive.bind(
            a,
            b,
            geometry=geometry,
            method=method,
            precision=None,
            preferred_element_type=None,
            partitioned=False,
        )

    def apply(x, w, g):
        return (
            bind(_primitives.transpose_conv_p, x, w, method),
            bind(_primitives.forward_conv_p, g, w, method),
            bind(_primitives.kernel_grad_p, x, g, method),
            bind(_primitives.forward_conv_p, g, w, "lhs_dilation"),
            bind(_primitives.kernel_grad_p, x, g, "lhs_dilation"),
        )

    return jax.jit(apply)


def check_three_maps(case: cases.Case, method: str) -> None:
    rng = np.random.default_rng(cases.seed_of(case.describe()))
    x = rng.standard_normal(case.input_shape)
    w = rng.standard_normal(case.filters_shape)
    g = rng.standard_normal(case.output_full_shape)
    t, f, k, f_ref, k_ref = map(np.asarray, _all_maps(method, _geometry(case))(x, w, g))
    tol = dict(rtol=1e-10, atol=1e-10)

    t_ref = case.reference(x, w)
    np.testing.assert_allclose(t, t_ref, err_msg="transpose_conv", **tol)
    assert f.shape == x.shape and k.shape == w.shape
    inner = np.vdot(g, t_ref)
    scale = np.linalg.norm(g) * np.linalg.norm(t_ref) + 1.0
    np.testing.assert_allclose(np.vdot(f, x), inner, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(np.vdot(k, w), inner, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(f, f_ref, err_msg="forward_conv", **tol)
    np.testing.assert_allclose(k, k_ref, err_msg="kernel_grad", **tol)


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", SAMPLE, ids=[c.describe() for c in SAMPLE])
def test_three_maps(case, method):
    check_three_maps(case, method)


@pytest.mark.slow
@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", GRID, ids=[c.describe() for c in GRID])
def test_three_maps_grid(case, method):
    check_three_maps(case, method)


def test_sample_covers_the_hard_cases():
    """The default sample has what the phase decomposition must get right."""
    assert {c.num_spatial for c in SAMPLE} == {1, 2, 3}
    assert {c.channels_last for c in SAMPLE} == {True, False}
    assert any(c.groups > 1 for c in SAMPLE)
    assert any(isinstance(c.padding, tuple) for c in SAMPLE)
    assert {"SAME", "VALID"} <= {c.padding for c in SAMPLE if isinstance(c.padding, str)}
    assert any(max(c.dilations) > 1 for c in SAMPLE)
    assert any(k % s for c in SAMPLE for k, s in zip(c.kernel_size, c.strides))
    assert any(
        o != cases.accepted_range(i, k, s, d, c.padding if isinstance(c.padding, str)
                                  else c.padding[0])[0]
        for c in SAMPLE
        for i, k, s, d, o in zip(c.input_size, c.kernel_size, c.strides, c.dilations,
                                 c.output_size)
    )  # fmt: skip


GRADIENT_CASES = [
    _case((3, 2), (3, 4), (2, 3), (1, 1), "SAME", (6, 5)),
    _case((4,), (5,), (2,), (1,), ((2, 1),), (8,), groups=2, channels_last=False),
    _case((2, 2, 2), (3, 2, 2), (2, 2, 1), (1, 1, 2), "VALID", (5, 4, 4)),
    _case((3, 3), (3, 3), (2, 2), (2, 1), "SAME", (5, 6), channels_last=False),
]


@pytest.mark.parametrize(
    "case, method",
    [(case, FAST_METHODS[i % len(FAST_METHODS)]) for i, case in enumerate(GRADIENT_CASES)],
    ids=lambda value: value if isinstance(value, str) else value.describe(),
)
def test_second_order_gradients(case, method):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(case.input_shape)
    w = rng.standard_normal(case.filters_shape)

    def op(x, w):
        return jdeconv.conv_transpose(x, w, *case.op_args, groups=case.groups, method=method)

    check_grads(op, (x, w), order=2, modes=("rev",), atol=1e-6, rtol=1e-6)


DCGAN = _geometry(_case((8, 8), (5, 5), (2, 2), (1, 1), "SAME", (16, 16)))
UNET = _geometry(_case((32, 32), (2, 2), (2, 2), (1, 1), "VALID", (64, 64)))
FCN = _geometry(_case((32, 32), (16, 16), (8, 8), (1, 1), ((4, 4), (4, 4)), (256, 256)))
AUDIO = _geometry(_case((64,), (16,), (8,), (1,), "SAME", (512,)))
VOLUME = _geometry(_case((4, 4, 4), (3, 3, 3), (2, 2, 2), (1, 1, 1), "SAME", (8, 8, 8)))
NCHW = _geometry(_case((16, 16), (4, 4), (2, 2), (1, 1), "SAME", (32, 32), channels_last=False))
GROUPED = _geometry(_case((16, 16), (4, 4), (2, 2), (1, 1), "SAME", (32, 32), groups=64))


# The rules that won on jaxlib 0.10.2 only (see _release_tuning): there, T of
# U-Net's k = s layer and of an image layer is the lhs-dilated convolution,
# and F of a layer with many channels is in phase space.
LHS_T = "lhs_dilation" if _release_tuning.LHS_DILATED_TRANSPOSE.active() else "phase"
MANY_F = "phase_matmul" if _release_tuning.MANY_CHANNEL_INPUT_GRADIENT.active() else "phase"


@pytest.mark.parametrize(
    "geometry, in_channels, out_channels, expected",
    [
        # (T, F, K) on CPU; see the policy in jdeconv/_lowerings/__init__.py.
        (DCGAN, 256, 128, ("phase", MANY_F, "phase")),
        # K: the backprop-filter convolution where the phase-wise matmuls
        # would pad the input (k > s here), but for large kernels (FCN).
        (DCGAN, 64, 16, ("phase", "phase", "phase")),
        (UNET, 128, 64, (LHS_T, "phase_matmul", "phase_matmul")),
        (FCN, 21, 21, ("phase", "phase_matmul", "phase_matmul")),
        (AUDIO, 128, 64, ("phase", "phase", "phase")),
        (VOLUME, 64, 32, ("phase", "phase", "phase")),
        (NCHW, 64, 32, ("phase", "phase", "phase")),
        (GROUPED, 64, 64, ("phase", "phase", "phase_matmul")),
        # T: an image layer (<= 4 channels).
        (DCGAN, 64, 3, (LHS_T, "phase", "phase")),
        (DCGAN, 64, 8, ("phase", "phase", "phase")),
    ],
    ids=[
        "dcgan", "dcgan-few-channels", "unet", "fcn", "audio", "volume", "nchw", "grouped",
        "dcgan-rgb", "dcgan-8-channels",
    ],
)  # fmt: skip
def test_auto_policy_on_cpu(geometry, in_channels, out_channels, expected):
    chosen = tuple(auto_choice(geometry, m, in_channels, out_channels, "cpu") for m in MAPS)
    assert chosen == expected


@pytest.mark.parametrize(
    "rule", [_release_tuning.LHS_DILATED_TRANSPOSE, _release_tuning.MANY_CHANNEL_INPUT_GRADIENT]
)
def test_release_rules_name_measured_releases(rule):
    """A release-specific rule applies only on releases the policy was measured on."""
    assert rule.jaxlib_versions
    assert set(rule.jaxlib_versions) <= set(_release_tuning.MEASURED_RELEASES)
    assert rule.active() == (jaxlib.version.__version__ in rule.jaxlib_versions)


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_auto_policy_elsewhere_is_the_reference(platform):
    for geometry in (DCGAN, UNET, FCN, AUDIO, VOLUME):
        for bilinear_map in MAPS:
            assert auto_choice(geometry, bilinear_map, 64, 64, platform) == "lhs_dilation"


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_auto_policy_for_grouped_layers_on_a_mesh(platform):
    """XLA replicates a batch-split grouped convolution; the sub-pixel forms keep the split."""
    for bilinear_map in MAPS:
        on_mesh = auto_choice(GROUPED, bilinear_map, 64, 64, platform, partitioned=True)
        assert on_mesh == "phase"
        assert auto_choice(DCGAN, bilinear_map, 64, 64, platform, partitioned=True) == (
            "lhs_dilation"
        )


def test_auto_input_gradient_on_a_mesh_is_one_contraction():
    """Under a mesh the input gradient is the strided convolution (one all-reduce)."""
    for geometry in (DCGAN, UNET, FCN, AUDIO, VOLUME):
        assert auto_choice(geometry, "forward_conv", 64, 64, "cpu", partitioned=True) == "phase"


def _input_gradient_form(geometry, block, in_channels: int, out_channels: int) -> str:
    """The form ``forward_conv_phase`` uses for one part."""
    part_channels = math.prod(p.stop - p.start for p in block) * out_channels
    wins = _phase._overlap_add_wins(block, part_channels, in_channels, geometry.groups)
    return "overlap_add" if wins else "convolution"


def _kernel_gradient_form(geometry, block, in_channels: int, out_channels: int) -> str:
    """The form ``kernel_grad_matmul`` uses for one part."""
    groups = geometry.groups
    pairs = math.prod(p.stop - p.start for p in block) * out_channels // groups
    wins = _phase._multiply_reduce_wins(in_channels // groups, pairs)
    return "multiply_reduce" if wins else "matmul"


# Channels chosen so that each input-gradient form is taken: the matmul and
# overlap-add where the lags' results fit in the gradient's room (few input
# channels, many phases), the stride-1 convolution otherwise.
PHASE_SPACE_FORMS = [
    (_case((6, 5), (5, 4), (2, 2), (1, 1), "SAME", (12, 10)), 2, 16, {"overlap_add"}),
    (_case((6, 5), (5, 4), (2, 2), (1, 1), "SAME", (12, 10)), 16, 2, {"convolution"}),
    (_case((6, 5), (5, 3), (2, 2), (1, 1), "SAME", (12, 10)), 2, 8, {"overlap_add", "convolution"}),
    (_case((9,), (16,), (8,), (1,), "SAME", (72,)), 8, 4, {"overlap_add"}),
    (_case((7,), (3,), (1,), (2,), ((1, 2),), (8,)), 1, 3, {"overlap_add"}),
    (_case((3, 4, 3), (3, 2, 3), (2, 2, 1), (1, 1, 2), "VALID", (8, 8, 7)), 2, 8, {"overlap_add"}),
]  # fmt: skip

# Grouped geometries whose parts take each kernel-gradient form: sums of
# products where a group has few channel pairs (depthwise), a matmul batched
# over the groups otherwise.
KERNEL_GRAD_FORMS = [
    # Depthwise, one phase per part (SAME, k=4, s=2): one pair.
    (_case((5, 4), (4, 4), (2, 2), (1, 1), "SAME", (10, 8), groups=3), 3, 3, {"multiply_reduce"}),
    # Depthwise, all four phases in one part: four pairs.
    (_case((4, 3), (4, 4), (2, 2), (1, 1), "VALID", (10, 8), groups=3), 3, 3, {"multiply_reduce"}),
    # Two output channels per group, k=4, s=3: parts of 1, 2 and 4 phases,
    # so 2, 4 and 8 pairs.
    (_case((4, 3), (4, 4), (3, 3), (1, 1), "VALID", (13, 10), groups=2), 2, 4,
     {"multiply_reduce", "matmul"}),
    # Three channels per group, dilated 1-D and 3-D.
    (_case((7,), (3,), (2,), (2,), "SAME", (14,), groups=2), 6, 6, {"matmul"}),
    (_case((3, 2, 3), (2, 3, 2), (2, 1, 2), (1, 2, 1), "VALID", (6, 6, 6), groups=2), 2, 2,
     {"multiply_reduce"}),
]  # fmt: skip

PHASE_MATMUL_FORMS = [(*row, _input_gradient_form) for row in PHASE_SPACE_FORMS] + [
    (*row, _kernel_gradient_form) for row in KERNEL_GRAD_FORMS
]


@pytest.mark.parametrize(
    "case, in_channels, out_channels, forms, form_of",
    PHASE_MATMUL_FORMS,
    ids=[f"{f.__name__[1:-5]}-{c.describe()}-{i}-{o}" for c, i, o, _, f in PHASE_MATMUL_FORMS],
)
def test_phase_matmul_forms(case, in_channels, out_channels, forms, form_of):
    """Each form of ``phase_matmul``'s gradients is taken and matches the reference.

    The input gradient is a matmul and overlap-add or a stride-1
    convolution per part; the grouped kernel gradient sums of products or a
    batched matmul.
    """
    case = dataclasses.replace(case, in_channels=in_channels, out_channels=out_channels)
    geometry = _geometry(case)
    taken = {
        form_of(geometry, block, in_channels, out_channels)
        for block in _phase._blocks_with_taps(_phase._plan(geometry))
    }
    assert taken == forms
    check_three_maps(case, "phase_matmul")


def _auto_loss(x, w):
    y = jdeconv.conv2d_transpose(x, w, (2, 16, 16, w.shape[2]), 2, "SAME", method="auto")
    return jnp.sum(y**2)


def test_auto_stages_the_choice_per_platform():
    """CPU code has no lhs-dilated convolution; GPU code is the reference's.

    (8 output channels: on CPU, ``auto`` takes the lhs-dilated forward pass
    for 2-D layers with at most 4.)
    """
    x = jnp.ones((2, 8, 8, 3), jnp.float32)
    w = jnp.ones((5, 5, 8, 3), jnp.float32)
    grad = jax.jit(jax.grad(_auto_loss, argnums=(0, 1)))
    cpu = grad.lower(x, w).compile().as_text()
    assert "convolution(" in cpu and "lhs_dilate" not in cpu
    cuda = export.export(grad, platforms=("cuda",))(x, w).mlir_module()
    assert "lhs_dilate = [2, 2]" in cuda


def test_auto_matches_reference_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 3))
    w = rng.standard_normal((5, 5, 4, 3))
    y = jdeconv.conv2d_transpose(x, w, (16, 16), 2, "SAME", method="auto")
    want = reference.conv_transpose(x, w, (16, 16), (2, 2), (1, 1), "SAME")
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-10, atol=1e-10)


# An output that no input position reaches: stride and dilation share the
# factor 2, so only even positions (counted from the padding) get values.
UNREACHED = _geometry(_case((1,), (2,), (2,), (2,), ((1, 1),), (1,)))


@pytest.mark.parametrize("method", ["phase", "phase_matmul"])
def test_fallback_where_the_decomposition_does_not_apply(method):
    assert _lowerings.resolve(method, UNREACHED).name == "lhs_dilation"
    assert _lowerings.resolve(method, DCGAN).name == method
    assert auto_choice(UNREACHED, "transpose_conv", 1, 1, "cpu") == "lhs_dilation"
    chosen = _lowerings.bilinear_map(
        method,
        "kernel_grad",
        UNREACHED,
        platform="cpu",
        in_channels=1,
        out_channels=1,
        partitioned=False,
    )
    assert chosen is _lhs_dilation.kernel_grad
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, 3))
    w = rng.standard_normal((2, 2, 3))
    padding = [[0, 0], [1, 1], [0, 0]]
    y = jdeconv.conv1d_transpose(x, w, (2, 1, 2), 2, padding, dilations=2, method=method)
    want = reference.conv_transpose(x, w, (1,), (2,), (2,), ((1, 1),))
    np.testing.assert_allclose(np.asarray(y), want, atol=0)
    assert not np.any(want)


def test_unknown_method_is_refused():
    with pytest.raises(
        ValueError, match=r"conv2d_transpose: `method` must be None .* or one of .*'phase'"
    ):
        jdeconv.conv2d_transpose(jnp.ones((1, 2, 2, 1)), jnp.ones((2, 2, 1, 1)), (4, 4), 2,
                                 method="fast")  # fmt: skip


@pytest.mark.parametrize("method", FAST_METHODS)
def test_phase_lowerings_emit_no_lhs_dilation(method):
    """The point of these lowerings on CPU: no lhs-dilated convolution, in any map.

    (With 8 output channels: ``auto`` takes the lhs-dilated forward pass on
    purpose for 2-D layers with at most 4.)
    """
    for kernel, strides in (((3, 3), (2, 2)), ((4, 4), (2, 2)), ((5, 2), (3, 1))):
        x = jnp.ones((1, 4, 4, 2), jnp.float32)
        w = jnp.ones((*kernel, 8, 2), jnp.float32)

        def loss(x, w, kernel=kernel, strides=strides):
            y = jdeconv.conv2d_transpose(x, w, (4 * strides[0], 4 * strides[1]), strides,
                                         method=method)  # fmt: skip
            return jnp.sum(jnp.sin(y))

        second = jax.grad(lambda x, w: jnp.sum(jax.grad(loss, (0, 1))(x, w)[1] ** 2), (0, 1))
        assert "lhs_dilate" not in jax.jit(second).lower(x, w).compile().as_text()
