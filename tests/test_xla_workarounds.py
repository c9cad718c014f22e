"""jdeconv never emits a pattern XLA is known to miscompile.

* Each entry of ``XLA_BUGS`` has a reproducer here, with plain ``jax.lax``:
  it fails (is expected to fail) on the jaxlib releases that have the bug,
  so that a release that fixes it shows up as an unexpected pass, and it
  must pass on the releases recorded as fixed.
* A structural check lowers every method's forward pass and its first- and
  second-order gradients over sampled geometries, and reads every
  convolution: none that jdeconv emits (the StableHLO) has a negative padding
  entry, and none in the compiled HLO (after XLA's own rewrites, which may
  crop by swapping a convolution's operands) has the pattern of the bug, a
  padding pair with a negative and a positive side.
* The reproducer that found the bug, through jdeconv, in float32, for every
  method.
* On CPU with jaxlib 0.10.2, stride-1 convolutions that XLA:CPU would run
  through YNNPACK (on one thread) are computed one output row longer and
  reach XLA's Eigen convolution instead (``CPU_CONVOLUTION_PATH``), with the
  same numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cases
import jax
import jax.numpy as jnp
import jaxlib.version
import numpy as np
import pytest
import reference
from jax import lax

import jdeconv
from jdeconv._lowerings import _xla_workarounds
from jdeconv._lowerings._release_tuning import CPU_CONVOLUTION_PATH
from jdeconv._lowerings._xla_workarounds import XLA_BUGS


def test_every_bug_has_a_reproducer():
    assert {bug.issue for bug in XLA_BUGS} == set(REPRODUCERS)


def negative_padding_reads_outside_the_input():
    """openxla/xla#48713: a float32 convolution with padding (-1, 1) on CPU.

    Five calls: the garbage differs from call to call.
    """
    for _ in range(5):
        _negative_padding_once()


def _negative_padding_once():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 4)).astype(np.float32)
    w = rng.standard_normal((2, 1, 4, 8)).astype(np.float32)
    dimension_numbers = ("NHWC", "HWIO", "NHWC")
    got = lax.conv_general_dilated(
        x, w, (1, 1), [(0, 0), (-1, 1)], dimension_numbers=dimension_numbers
    )
    want = lax.conv_general_dilated(
        x.astype(np.float64) if jax.config.jax_enable_x64 else x,
        w.astype(np.float64) if jax.config.jax_enable_x64 else w,
        (1, 1),
        [(0, 0), (-1, 1)],
        dimension_numbers=dimension_numbers,
        precision="highest",
    )
    # The right answer's last column is zero (it reads the padding).
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


_SIMPLIFIER_ABORT = """
import numpy as np, jax
from jax import lax
x = np.ones((1, 1, 3, 1), np.float32)  # NCHW: height 3, width 1
w = np.ones((1, 1, 2, 2), np.float32)  # OIHW: a 2x2 window, wider than the input
y = jax.jit(lambda x, w: lax.conv_general_dilated(
    x, w, (1, 1), [(0, 0), (1, 0)], lhs_dilation=(2, 1),
    dimension_numbers=("NCHW", "OIHW", "NCHW")))(x, w)
print(y.shape)
"""


def simplifier_aborts_on_input_dilation():
    """XLA's algebraic simplifier aborts the process on this lhs-dilated convolution."""
    result = subprocess.run(
        [sys.executable, "-c", _SIMPLIFIER_ABORT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() == "(1, 1, 4, 1)"


REPRODUCERS = {
    "openxla/xla#48713": negative_padding_reads_outside_the_input,
    "unfiled: simplifier abort on input dilation": simplifier_aborts_on_input_dilation,
}


@pytest.mark.parametrize("bug", XLA_BUGS, ids=lambda bug: bug.issue)
def test_the_reproducer_fails_where_the_bug_is(bug, request):
    """The reproducer fails on the jaxlib releases that have the bug, and passes after.

    Where the bug is present, the failure is expected (an unexpected pass
    means XLA fixed it: record the release in ``fixed_in_jaxlib``); on the
    releases that fixed it, the reproducer must pass.
    """
    if jax.default_backend() != "cpu":
        pytest.skip("the bug is in XLA:CPU")
    if bug.present():
        request.applymarker(
            pytest.mark.xfail(
                strict=False,
                reason=f"{bug.issue} is in jaxlib {jaxlib.version.__version__} "
                f"(fixed in {bug.fixed_in_jaxlib or 'no release yet'})",
            )
        )
    REPRODUCERS[bug.issue]()


# ---------------------------------------------------------------- structure

_PADDING = re.compile(r"stablehlo.convolution.*?pad = (\[\[.*?\]\])")
_HLO_PAD = re.compile(r"\bconvolution\(.*?window=\{[^}]*pad=([-\d_x]+)")


def _mixed_signs(pads: str) -> bool:
    """Whether an HLO ``pad=lo_hi x lo_hi`` has a pair with a negative and a positive side."""
    pairs = [tuple(map(int, re.findall(r"-?\d+", pair))) for pair in pads.split("x")]
    return any(min(pair) < 0 < max(pair) for pair in pairs)


# Explicit padding up to twice the kernel's reach, where the sub-pixel
# lowerings and the reference's lhs-dilated padding crop.
STRUCTURE_SAMPLE = cases.sample(
    seed=48713,
    count=14,
    ranks=(1, 2, 2, 3),
    paddings=("SAME", "VALID", "EXPLICIT", "EXPLICIT"),
    groups=(1, 1, 2),
    max_padding=6,
)


def _negative_paddings(case: cases.Case, method: str) -> list[str]:
    x, w = case.arrays(dtype=np.float32)

    def op(x, w):
        return jdeconv.conv_transpose(x, w, *case.op_args, groups=case.groups, method=method)

    def loss(x, w):
        return jnp.sum(jnp.sin(op(x, w)))

    grad = jax.grad(loss, argnums=(0, 1))

    def second(x, w):
        return jax.grad(lambda x, w: sum(jnp.sum(g**2) for g in grad(x, w)), argnums=(0, 1))(x, w)

    found = []
    for function in (op, grad, second):
        lowered = jax.jit(function).lower(x, w)
        for pairs in _PADDING.findall(lowered.as_text()):
            if "-" in pairs:
                found.append(f"StableHLO {function.__name__}: {pairs}")
        for pads in _HLO_PAD.findall(lowered.compile().as_text()):
            if _mixed_signs(pads):
                found.append(f"HLO {function.__name__}: {pads}")
    return found


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("case", STRUCTURE_SAMPLE, ids=[c.describe() for c in STRUCTURE_SAMPLE])
def test_no_convolution_has_negative_padding(case, method):
    assert _negative_paddings(case, method) == []


def test_the_structural_check_sees_negative_padding():
    """The pattern the check looks for, in plain lax, is found by it."""
    x = jnp.ones((1, 5, 6, 4), jnp.float32)
    w = jnp.ones((2, 1, 4, 8), jnp.float32)
    text = (
        jax.jit(
            lambda x, w: lax.conv_general_dilated(
                x, w, (1, 1), [(0, 0), (-1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        )
        .lower(x, w)
        .as_text()
    )
    assert any("-" in pairs for pairs in _PADDING.findall(text))
    compiled = (
        jax.jit(
            lambda x, w: lax.conv_general_dilated(
                x, w, (1, 1), [(0, 0), (-1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        )
        .lower(x, w)
        .compile()
        .as_text()
    )
    assert any(_mixed_signs(pads) for pads in _HLO_PAD.findall(compiled))


# Geometries whose lhs-dilated convolution has an input smaller than its
# window in some axis (after the crop of explicit padding): the simplifier's
# abort. The first is the one a random search found.
ABORT_CASES = [
    cases.Case(3, False, 1, 1, 1, 1, (4, 3, 2), (3, 2, 2), (3, 2, 3), (2, 1, 1),
               ((2, 2), (1, 1), (2, 1)), (11, 4, 2), spelling=1),
    cases.Case(2, True, 2, 3, 2, 1, (3, 1), (2, 3), (2, 1), (1, 1), ((0, 0), (1, 1)),
               (6, 1), spelling=2),
    cases.Case(2, False, 1, 2, 4, 2, (4, 1), (2, 2), (2, 3), (1, 1), "VALID", (8, 2),
               spelling=5),
]  # fmt: skip


def _lhs_dilated_with_small_inputs(case: cases.Case, method: str, monkeypatch) -> list[str]:
    """Every convolution jdeconv hands to ``lax`` for ``case``, that has the abort's pattern."""
    found = []
    convolve = lax.conv_general_dilated

    def recording(lhs, rhs, *args, **kwargs):
        dilation = kwargs.get("lhs_dilation") or (1,)
        numbers = kwargs["dimension_numbers"]
        small = [
            lhs.shape[i] < (rhs.shape[k] - 1) * d + 1
            for i, k, d in zip(
                numbers.lhs_spec[2:], numbers.rhs_spec[2:], kwargs.get("rhs_dilation") or ()
            )
        ]
        if max(dilation) > 1 and any(small):
            found.append(f"{lhs.shape} * {rhs.shape}, lhs_dilation {dilation}")
        return convolve(lhs, rhs, *args, **kwargs)

    monkeypatch.setattr(lax, "conv_general_dilated", recording)
    x, w = case.arrays(dtype=np.float32)

    def loss(x, w):
        y = jdeconv.conv_transpose(x, w, *case.op_args, groups=case.groups, method=method)
        return jnp.sum(jnp.sin(y))

    jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(x, w)  # traced, not compiled
    return found


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize(
    "case",
    ABORT_CASES + STRUCTURE_SAMPLE,
    ids=[c.describe() for c in ABORT_CASES + STRUCTURE_SAMPLE],
)
def test_no_lhs_dilated_convolution_has_an_input_smaller_than_its_window(case, method, monkeypatch):
    assert _lhs_dilated_with_small_inputs(case, method, monkeypatch) == []


def test_the_small_input_check_sees_the_pattern(monkeypatch):
    """Without the workaround, the reference lowering emits the pattern for these cases."""
    monkeypatch.setattr(_xla_workarounds, "_simplifier_may_abort", lambda *args: False)
    for case in ABORT_CASES:
        assert _lhs_dilated_with_small_inputs(case, "lhs_dilation", monkeypatch), case.describe()


_ABORT_VALUES = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np, jax, jax.numpy as jnp, cases, reference, jdeconv
jax.config.update("jax_enable_x64", True)
for case in {cases!r}:
    x, w = case.arrays(dtype=np.float64)
    g = np.random.default_rng(0).standard_normal(case.output_full_shape)
    for method in jdeconv.METHODS:
        def op(x, w):
            return jdeconv.conv_transpose(x, w, *case.op_args, groups=case.groups, method=method)
        y, vjp = jax.vjp(jax.jit(op), x, w)
        dx, dw = vjp(g)
        kwargs = dict(groups=case.groups, channels_last=case.channels_last)
        common = (case.strides, case.dilations, case.padding)
        np.testing.assert_allclose(y, case.reference(x, w), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(
            dx, reference.forward_conv(g, w, case.input_size, *common, **kwargs), atol=1e-9)
        np.testing.assert_allclose(
            dw, reference.kernel_grad(x, g, case.kernel_size, *common, **kwargs), atol=1e-9)
print("computed")
"""


def test_the_abort_cases_compute_the_reference():
    """Every method computes the cases that aborted, in a child process (an abort fails here)."""
    script = _ABORT_VALUES.format(tests=str(Path(__file__).parent), cases=ABORT_CASES)
    result = subprocess.run(
        [sys.executable, "-c", "from cases import Case\n" + script],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "computed"


def test_the_sample_pads_beyond_the_kernel():
    """The structural sample has explicit padding larger than the kernel's reach."""
    assert any(
        not isinstance(c.padding, str)
        and any(max(p) > (k - 1) * d for p, k, d in zip(c.padding, c.kernel_size, c.dilations))
        for c in STRUCTURE_SAMPLE
    )


# ------------------------------------------------------------ the reproducer


@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_padding_beyond_the_kernel_in_float32(method, data_format):
    """The case that returned uninitialised memory, now equal to the reference."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
    pad = [[0, 0], [0, 0], [2, 2], [2, 0]]
    output_shape = [2, 4, 8, 18]
    if data_format == "NHWC":
        x = np.moveaxis(x, 1, -1)
        pad = [pad[0], *pad[2:], pad[1]]
        output_shape = [2, 8, 18, 4]
    want = reference.conv_transpose(
        x, w, (8, 18), (2, 3), (1, 1), ((2, 2), (2, 0)), channels_last=data_format == "NHWC"
    )
    for _ in range(3):
        got = jdeconv.conv2d_transpose(
            x, w, output_shape, (2, 3), pad, data_format=data_format, method=method
        )
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


# ------------------------------------------------ the CPU convolution path


def _ynnpack_convolutions(compiled_text: str) -> int:
    """How many convolutions the compiled HLO runs inside YNNPACK fusions."""
    bodies = dict(re.findall(r"^%?(\S+) [^\n]*\{\n(.*?)^\}", compiled_text, re.S | re.M))
    called = re.findall(r"%?ynn_fusion[\w.]* = .*?calls=%?([\w.\-]+)", compiled_text)
    return sum(bodies.get(name, "").count(" convolution(") for name in called)


def _stride_one_conv(x, w, padding, platform):
    return _xla_workarounds.conv_general_dilated(
        x,
        w,
        window_strides=(1, 1),
        padding=padding,
        dimension_numbers=lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)),
        platform=platform,
    )


def test_a_plain_convolution_is_seen_in_ynnpack():
    """The check below can fail: plain ``lax`` puts this convolution in YNNPACK.

    Skipped where this jaxlib has no YNNPACK path for it (nothing to avoid).
    """
    x = jax.ShapeDtypeStruct((4, 32, 32, 32), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 3, 32, 32), jnp.float32)
    text = jax.jit(lambda x, w: _stride_one_conv(x, w, ((1, 1), (1, 1)), "other")).lower(x, w)
    count = _ynnpack_convolutions(text.compile().as_text())
    if count == 0:
        pytest.skip("this jaxlib runs no convolution through YNNPACK")
    assert count == 1


@pytest.mark.parametrize(
    "layer",
    [
        # (input, kernel, stride, padding, C_in, C_out), channels-last, float32
        ((32, 32), 3, 1, "SAME", 32, 32),
        ((16, 16), 4, 2, "SAME", 32, 32),
        ((16, 16), 5, 2, "SAME", 64, 32),
        ((8, 8), 8, 4, "SAME", 32, 24),
    ],
    ids=["stride1_k3", "k4s2", "k5s2", "k8s4"],
)
def test_stride_one_convolutions_stay_off_ynnpack_on_cpu(layer):
    """``auto``'s forward pass on CPU runs no convolution inside YNNPACK."""
    if not CPU_CONVOLUTION_PATH.active():
        pytest.skip("the CPU convolution path is for other jaxlib releases")
    size, k, s, padding, c_in, c_out = layer
    x = jax.ShapeDtypeStruct((4, *size, c_in), jnp.float32)
    w = jax.ShapeDtypeStruct((k, k, c_out, c_in), jnp.float32)
    out = (4, *(i * s for i in size), c_out)

    def forward(x, w):
        return jdeconv.conv2d_transpose(x, w, out, s, padding)

    assert _ynnpack_convolutions(jax.jit(forward).lower(x, w).compile().as_text()) == 0


@pytest.mark.parametrize(
    "padding", [((1, 1), (1, 1)), ((0, 0), (2, 0)), ((2, 0), (0, 2)), ((0, 2), (1, 1))]
)
@pytest.mark.parametrize("shape", [(2, 16, 24, 20), (1, 9, 40, 24)])
def test_the_longer_convolution_gives_the_same_numbers(shape, padding):
    rng = np.random.default_rng(cases.seed_of(f"cpu path {shape} {padding}"))
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, 3, shape[-1], 17))
    got = _stride_one_conv(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), padding, "cpu")
    want = lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest"
    )
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_the_cpu_path_rule():
    """Extra rows where they cost at most 1/min_rows of the work; none elsewhere."""
    dn = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))

    def rows(shape, kernel, padding, features=32, strides=(1, 1), dtype=jnp.float32):
        return _xla_workarounds._rows_past_ynnpack(
            jax.ShapeDtypeStruct((*shape, features), dtype),
            jax.ShapeDtypeStruct((*kernel, features, features), dtype),
            padding=padding,
            window_strides=strides,
            lhs_dilation=(1, 1),
            rhs_dilation=(1, 1),
            dimension_numbers=dn,
            batch_group_count=1,
            preferred_element_type=None,
        )

    same = ((1, 1), (1, 1))
    assert rows((2, 32, 16), (3, 3), same) == (0, 1)  # the longest output axis
    assert rows((2, 16, 32), (3, 3), same) == (1, 1)
    assert rows((2, 32, 32), (3, 3), ((0, 0), (0, 0))) == (0, 3)  # VALID: 30 -> 33 rows
    min_rows = CPU_CONVOLUTION_PATH.min_rows
    small = (2, min_rows - 1, min_rows - 1)
    assert rows(small, (3, 3), same) is None  # one row is more than 1/min_rows
    assert rows((2, 32, 32), (3, 3), same, features=CPU_CONVOLUTION_PATH.features) is None
    wide_in = CPU_CONVOLUTION_PATH.max_in_features + 1
    wide_out = CPU_CONVOLUTION_PATH.max_out_features + 1
    assert rows((2, 32, 32), (3, 3), same, features=max(wide_in, wide_out)) is None
    assert rows((2, 32, 32), (3, 3), same, features=min(wide_in, wide_out)) == (0, 1)
    assert rows((2, 32, 32), (3, 3), same, strides=(2, 2)) is None
    assert rows((2, 32, 32), (3, 3), same, dtype=jnp.bfloat16) is None
    assert rows((2, 32, 32), (3, 3), ((1, 2), (1, 1))) is None  # already longer
