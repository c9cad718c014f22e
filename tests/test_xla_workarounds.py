"""jdeconv never emits a pattern XLA is known to miscompile.

* Each entry of ``XLA_BUGS`` has a reproducer here, with plain ``jax.lax``:
  it fails (is expected to fail) while the XLA bug is there, so that an XLA
  release that fixes it shows up as an unexpected pass.
* A structural check lowers every method's forward pass and its first- and
  second-order gradients over sampled geometries, and reads every
  convolution: none that jdeconv emits (the StableHLO) has a negative padding
  entry, and none in the compiled HLO (after XLA's own rewrites, which may
  crop by swapping a convolution's operands) has the pattern of the bug, a
  padding pair with a negative and a positive side.
* The reproducer that found the bug, through jdeconv, in float32, for every
  method.
"""

from __future__ import annotations

import re

import cases
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from jax import lax

import jdeconv
from jdeconv._lowerings._xla_workarounds import XLA_BUGS


def test_every_bug_has_a_reproducer():
    assert {bug.issue for bug in XLA_BUGS} == set(REPRODUCERS)


def negative_padding_reads_outside_the_input():
    """openxla/xla#48713: a float32 convolution with padding (-1, 1) on CPU."""
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


REPRODUCERS = {"openxla/xla#48713": negative_padding_reads_outside_the_input}


@pytest.mark.xfail(strict=False, reason="an open XLA bug; an unexpected pass means it was fixed")
@pytest.mark.parametrize("issue", sorted(REPRODUCERS))
def test_the_bug_is_still_there(issue):
    if jax.default_backend() != "cpu":
        pytest.skip("the bug is in XLA:CPU")
    for _ in range(5):  # the garbage differs from call to call
        REPRODUCERS[issue]()


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
