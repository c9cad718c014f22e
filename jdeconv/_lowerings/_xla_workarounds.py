"""XLA bugs that jdeconv works around, and the convolution every lowering emits.

XLA has bugs that return wrong numbers without an error. Where a pattern is
known to miscompile, the lowerings never emit it: every convolution goes
through :func:`conv_general_dilated` here, which rewrites the pattern into
an equivalent one. :data:`XLA_BUGS` lists each bug with its reproducer;
``tests/test_xla_workarounds.py`` runs every reproducer with plain ``jax.lax``
(so that a fixed XLA release shows up as an unexpected pass) and checks that
no compiled jdeconv program contains the pattern.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Pairs = Sequence[tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class XlaBug:
    """One XLA bug: where it is tracked, what goes wrong, how jdeconv avoids it.

    Attributes:
      issue: the upstream issue, ``"openxla/xla#NNNNN"``.
      summary: what the bug does, in one sentence.
      pattern: the program pattern that triggers it.
      workaround: what jdeconv emits instead.
    """

    issue: str
    summary: str
    pattern: str
    workaround: str


#: The XLA bugs jdeconv shields its users from. ``jax.lax.conv_transpose``
#: and ``jax.lax.conv_general_dilated`` do not.
XLA_BUGS: tuple[XlaBug, ...] = (
    XlaBug(
        issue="openxla/xla#48713",
        summary=(
            "On CPU, a float32 convolution whose spatial padding has a negative side reads "
            "outside its input: outputs that should be zero hold data from the next row or "
            "uninitialised memory, and differ from call to call."
        ),
        pattern="a convolution with a negative padding entry (a crop), e.g. (-1, 1)",
        workaround=(
            "every negative padding entry becomes a slice of the input (the same function), "
            "so no emitted convolution has negative padding"
        ),
    ),
)


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    *,
    window_strides: Sequence[int],
    padding: Pairs,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: lax.ConvDimensionNumbers,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
    """``lax.conv_general_dilated`` without the patterns in :data:`XLA_BUGS`.

    Same arguments and result, with ``padding`` as ``(low, high)`` pairs that
    may be negative (a crop of the padded, dilated input). A negative entry
    is applied as a slice of ``lhs``: with dilation ``s`` and padding
    ``(low, high)``, input element ``j`` sits at ``j * s + low`` of the padded
    signal, so the elements that land inside it are kept and the padding is
    recomputed, non-negative, around them. Where no element lands inside,
    the result is zeros.
    """
    n = len(window_strides)
    lhs_dilation = tuple(lhs_dilation or (1,) * n)
    convolve = functools.partial(
        lax.conv_general_dilated,
        window_strides=tuple(window_strides),
        lhs_dilation=lhs_dilation,
        rhs_dilation=tuple(rhs_dilation or (1,) * n),
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    padding = tuple((int(low), int(high)) for low, high in padding)
    if all(low >= 0 and high >= 0 for low, high in padding):
        return convolve(lhs, rhs, padding=padding)
    starts, limits = [0] * lhs.ndim, list(lhs.shape)
    kept_padding = []
    for axis, (low, high), dilation in zip(dimension_numbers.lhs_spec[2:], padding, lhs_dilation):
        size = lhs.shape[axis]
        length = low + (size - 1) * dilation + 1 + high if size else low + high
        first = max(0, -(low // dilation))  # ceil(-low / dilation)
        last = min(size - 1, (length - 1 - low) // dilation)
        if first > last:
            result = jax.eval_shape(functools.partial(convolve, padding=padding), lhs, rhs)
            return jnp.zeros(result.shape, result.dtype)
        starts[axis], limits[axis] = first, last + 1
        kept_padding.append(
            (first * dilation + low, length - 1 - (last * dilation + low)),
        )
    return convolve(lax.slice(lhs, starts, limits), rhs, padding=tuple(kept_padding))
