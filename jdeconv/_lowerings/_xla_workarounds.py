"""XLA bugs that jdeconv works around, and the convolution every lowering emits.

XLA has bugs that return wrong numbers without an error. Where a pattern is
known to miscompile, the lowerings never emit it: every convolution goes
through :func:`conv_general_dilated` here, which rewrites the pattern into
an equivalent one. :data:`XLA_BUGS` lists each bug with its reproducer;
``tests/test_xla_workarounds.py`` runs every reproducer with plain ``jax.lax``
(so that a fixed XLA release shows up as an unexpected pass) and checks that
no compiled jdeconv program contains the pattern.

The same function steers stride-1 convolutions on CPU away from XLA:CPU's
YNNPACK path, which jaxlib 0.10.2 runs on one thread
(:data:`jdeconv._lowerings._release_tuning.CPU_CONVOLUTION_PATH`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib.version
from jax import lax

from jdeconv._lowerings import _release_tuning
from jdeconv._lowerings._arrays import pad_axes

Pairs = Sequence[tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class XlaBug:
    """One XLA bug: where it is tracked, what goes wrong, how jdeconv avoids it.

    Attributes:
      issue: the upstream issue, ``"openxla/xla#NNNNN"``, or ``"unfiled: ..."``
        where none is filed yet.
      summary: what the bug does, in one sentence.
      pattern: the program pattern that triggers it.
      workaround: what jdeconv emits instead.
      fixed_in_jaxlib: the first jaxlib release whose XLA computes the
        reproducer right, or ``None`` while every release has the bug. The
        workaround stays on every release: users may run any of them, and the
        rewritten program computes the same function.
    """

    issue: str
    summary: str
    pattern: str
    workaround: str
    fixed_in_jaxlib: str | None = None

    def present(self, jaxlib_version: str = jaxlib.version.__version__) -> bool:
        """Whether the bug is in XLA as ``jaxlib_version`` ships it.

        >>> XLA_BUGS[0].present("0.10.2"), XLA_BUGS[0].present("0.12.1")
        (True, False)
        """
        return self.fixed_in_jaxlib is None or _release(jaxlib_version) < _release(
            self.fixed_in_jaxlib
        )


def _release(version: str) -> tuple[int, ...]:
    """``"0.12.0.1"`` as ``(0, 12, 0, 1)``: the numeric parts, for comparisons."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4])


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
        # Reproduces with jaxlib 0.10.0 to 0.11.2; not with 0.12.0 and 0.12.1.
        fixed_in_jaxlib="0.12.0",
    ),
    XlaBug(
        issue="unfiled: simplifier abort on input dilation",
        summary=(
            "XLA's algebraic simplifier aborts the whole process (a C++ 'Check failed: "
            "Window dimensions do not match RHS shape', no Python exception) when it compiles "
            "some convolutions with input dilation whose input is smaller than the window in "
            "another spatial axis, on every platform; seen in jaxlib 0.10.2 and 0.12.1 with a "
            "window of 2 and input dilation 2 in one axis and an input of 1 or 2 against a "
            "window of 2 or 3 in another."
        ),
        pattern=(
            "a convolution with lhs_dilation > 1 and, in some spatial axis, an input smaller "
            "than the (dilated) window"
        ),
        workaround=(
            "the input dilation is written out as interior padding (lax.pad) and the "
            "convolution has none (the same function on finite values; an Inf in the kernel "
            "may meet the written-out zeros)"
        ),
    ),
)


def _rows_past_ynnpack(
    lhs: jax.Array,
    rhs: jax.Array,
    *,
    padding: Pairs,
    window_strides: Sequence[int],
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    dimension_numbers: lax.ConvDimensionNumbers,
    batch_group_count: int,
    preferred_element_type: Any,
) -> tuple[int, int] | None:
    """``(spatial axis, extra rows)`` that keep this convolution off YNNPACK, if cheap.

    None where YNNPACK would not take the convolution anyway, or where the
    rows needed would add more than ``1 / min_rows`` of its work.
    """
    rule = _release_tuning.CPU_CONVOLUTION_PATH
    lhs_spec, rhs_spec, _ = dimension_numbers
    floats = (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
    features = (lhs.shape[lhs_spec[1]], rhs.shape[rhs_spec[0]])
    sizes = [lhs.shape[a] for a in lhs_spec[2:]]
    kernel = [rhs.shape[a] for a in rhs_spec[2:]]
    if (
        not all(isinstance(d, int) for d in (*features, *sizes, *kernel))
        or len(window_strides) != 2
        or any(s != 1 for s in (*window_strides, *lhs_dilation))
        or batch_group_count != 1
        or lhs.dtype not in floats
        or rhs.dtype != lhs.dtype
        or (preferred_element_type is not None and jnp.dtype(preferred_element_type) != lhs.dtype)
        or max(features) <= rule.features
        or (features[0] > rule.max_in_features and features[1] > rule.max_out_features)
    ):
        return None
    outputs = [
        size + low + high - (k - 1) * d
        for size, (low, high), k, d in zip(sizes, padding, kernel, rhs_dilation)
    ]
    if any(o > size for o, size in zip(outputs, sizes)) or min(outputs) < 1:
        return None
    axis = max(range(2), key=lambda a: outputs[a])
    extra = sizes[axis] + 1 - outputs[axis]
    if extra * rule.min_rows > outputs[axis]:
        return None
    return axis, extra


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
    platform: str = "other",
) -> jax.Array:
    """``lax.conv_general_dilated`` without the patterns in :data:`XLA_BUGS`.

    Same arguments and result, with ``padding`` as ``(low, high)`` pairs that
    may be negative (a crop of the padded, dilated input), and the platform
    compiled for (on ``"cpu"``, see :data:`._release_tuning.CPU_CONVOLUTION_PATH`). A negative entry
    is applied as a slice of ``lhs``: with dilation ``s`` and padding
    ``(low, high)``, input element ``j`` sits at ``j * s + low`` of the padded
    signal, so the elements that land inside it are kept and the padding is
    recomputed, non-negative, around them. Where no element lands inside,
    the result is zeros.
    """
    n = len(window_strides)
    lhs_dilation = tuple(lhs_dilation or (1,) * n)
    rhs_dilation = tuple(rhs_dilation or (1,) * n)
    convolve = functools.partial(
        lax.conv_general_dilated,
        window_strides=tuple(window_strides),
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    padding = tuple((int(low), int(high)) for low, high in padding)
    if any(low < 0 or high < 0 for low, high in padding):
        cropped = _crop_for_negative_padding(lhs, padding, lhs_dilation, dimension_numbers)
        if cropped is None:
            result = jax.eval_shape(functools.partial(convolve, padding=padding), lhs, rhs)
            return jnp.zeros(result.shape, result.dtype)
        lhs, padding = cropped
    if _simplifier_may_abort(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers):
        lhs = _dilate(lhs, lhs_dilation, dimension_numbers)
        lhs_dilation = (1,) * n
        convolve = functools.partial(convolve, lhs_dilation=lhs_dilation)
    past = None
    if platform == "cpu" and _release_tuning.CPU_CONVOLUTION_PATH.active():
        past = _rows_past_ynnpack(
            lhs,
            rhs,
            padding=padding,
            window_strides=window_strides,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            batch_group_count=batch_group_count,
            preferred_element_type=preferred_element_type,
        )
    if past is None:
        return convolve(lhs, rhs, padding=padding)
    axis, extra = past
    low, high = padding[axis]
    longer = list(padding)
    longer[axis] = (low, high + extra)
    out = convolve(lhs, rhs, padding=tuple(longer))
    out_axis = dimension_numbers.out_spec[2 + axis]
    return lax.slice_in_dim(out, 0, out.shape[out_axis] - extra, axis=out_axis)


def _simplifier_may_abort(
    lhs: jax.Array,
    rhs: jax.Array,
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    dimension_numbers: lax.ConvDimensionNumbers,
) -> bool:
    """Whether a convolution has the pattern of the simplifier's abort (see :data:`XLA_BUGS`).

    Input dilation in some axis, and an input smaller than its window in
    some spatial axis: wider than the cases seen to abort, all of which it
    covers.
    """
    if all(d == 1 for d in lhs_dilation):
        return False
    lhs_spec, rhs_spec, _ = dimension_numbers
    return any(
        lhs.shape[i] < (rhs.shape[k] - 1) * d + 1
        for i, k, d in zip(lhs_spec[2:], rhs_spec[2:], rhs_dilation)
    )


def _dilate(
    lhs: jax.Array, lhs_dilation: Sequence[int], dimension_numbers: lax.ConvDimensionNumbers
) -> jax.Array:
    """``lhs`` with ``lhs_dilation - 1`` zeros between its elements, along each spatial axis."""
    pads = [(0, 0, dilation - 1) for dilation in lhs_dilation]
    return pad_axes(lhs, dimension_numbers.lhs_spec[2:], pads)


def _crop_for_negative_padding(
    lhs: jax.Array,
    padding: Pairs,
    lhs_dilation: Sequence[int],
    dimension_numbers: lax.ConvDimensionNumbers,
) -> tuple[jax.Array, tuple[tuple[int, int], ...]] | None:
    """``lhs`` cropped to the elements inside the padded signal, and its padding.

    The padding is non-negative; None where no element lands inside.
    """
    starts, limits = [0] * lhs.ndim, list(lhs.shape)
    kept_padding = []
    for axis, (low, high), dilation in zip(dimension_numbers.lhs_spec[2:], padding, lhs_dilation):
        size = lhs.shape[axis]
        length = low + (size - 1) * dilation + 1 + high if size else low + high
        first = max(0, -(low // dilation))  # ceil(-low / dilation)
        last = min(size - 1, (length - 1 - low) // dilation)
        if first > last:
            return None
        starts[axis], limits[axis] = first, last + 1
        kept_padding.append(
            (first * dilation + low, length - 1 - (last * dilation + low)),
        )
    return lax.slice(lhs, starts, limits), tuple(kept_padding)
