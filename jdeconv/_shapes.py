"""Shape arithmetic of TensorFlow's transposed convolution, in plain Python.

This module has no JAX import. It turns the user's arguments (``strides``,
``dilations``, ``padding``, ``data_format``, ``output_shape``) into a
:class:`ConvTransposeGeometry`, checking every rule of TensorFlow's
``Conv2DBackpropInput`` on the way, and it derives the padding that each
lowering needs from that geometry.

Notation, per spatial dimension: ``I`` input size, ``O`` output size, ``k``
kernel size, ``d`` dilation, ``s`` stride and ``k_eff = (k - 1) * d + 1``. The
transposed convolution is the adjoint of a forward convolution that maps a
size-``O`` signal to a size-``I`` one:

    y[j * s + t * d - p_before] += x[j] * w[t]

where ``p_before`` is the forward convolution's padding before the signal.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

from jdeconv import _checks

Padding = str | Sequence[Sequence[int]]

_CHANNELS_LAST_FORMATS = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
#: The names of the spatial dimensions of 1-, 2- and 3-d layouts, for messages.
SPATIAL_NAMES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}
_CHANNELS_FIRST_FORMATS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


@dataclasses.dataclass(frozen=True)
class ConvTransposeGeometry:
    """Validated, static description of one transposed convolution.

    All tuples have one entry per spatial dimension.

    Attributes:
      channels_last: whether the feature axis of input and output is the last
        one (``NHWC``) rather than axis 1 (``NCHW``).
      input_size: spatial size ``I`` of the input.
      output_size: spatial size ``O`` of the output.
      kernel_size: spatial size ``k`` of the filters.
      strides: stride ``s`` of the equivalent forward convolution.
      dilations: kernel dilation ``d``.
      padding: the equivalent forward convolution's ``(before, after)`` padding.
        ``after`` is exact: a forward convolution of a size-``O`` signal with
        this padding has size ``I``. It may be negative (a crop).
      groups: number of feature groups.
    """

    channels_last: bool
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    groups: int = 1

    @property
    def num_spatial(self) -> int:
        return len(self.input_size)

    @property
    def spatial_axes(self) -> range:
        """The input's and output's spatial axes in their layout."""
        n = self.num_spatial
        return range(1, n + 1) if self.channels_last else range(2, n + 2)

    @property
    def channel_axis(self) -> int:
        """The input's and output's feature axis in their layout."""
        return self.num_spatial + 1 if self.channels_last else 1

    @property
    def effective_kernel_size(self) -> tuple[int, ...]:
        """``(k - 1) * d + 1`` per spatial dimension."""
        return tuple(map(effective_kernel_size, self.kernel_size, self.dilations))


def effective_kernel_size(kernel_size: int, dilation: int) -> int:
    """``k_eff = (k - 1) * d + 1``: the span of a dilated kernel, for one dimension.

    >>> effective_kernel_size(3, 2)
    5
    """
    return (kernel_size - 1) * dilation + 1


def normalize_data_format(function: str, data_format: str | None, num_spatial: int) -> bool:
    """Checks ``data_format`` for an op of rank ``num_spatial``.

    Args:
      function: name of the public function, for error messages.
      data_format: ``None`` (channels last) or one of TensorFlow's strings.
      num_spatial: number of spatial dimensions.

    Returns:
      Whether the layout is channels-last.

    Raises:
      TypeError: if ``data_format`` is not a string or ``None``.
      ValueError: if it is not a layout of this rank.
    """
    if data_format is None:
        return True
    if not isinstance(data_format, str):
        raise TypeError(
            f"{function}: `data_format` must be a string or None, "
            f"got {type(data_format).__name__} {data_format!r}."
        )
    last = _CHANNELS_LAST_FORMATS.get(num_spatial)
    first = _CHANNELS_FIRST_FORMATS.get(num_spatial)
    if last is None:  # N-d beyond 3: spelled generically.
        spatial = "".join(chr(ord("0") + i) for i in range(num_spatial))
        last, first = f"N{spatial}C", f"NC{spatial}"
    if data_format == last:
        return True
    if data_format == first:
        return False
    raise ValueError(
        f"{function}: `data_format` must be {last!r} or {first!r} for "
        f"{num_spatial} spatial dimension(s), got {data_format!r}."
    )


def normalize_window_argument(
    function: str,
    argument: str,
    value: int | Sequence[int] | None,
    num_spatial: int,
    channels_last: bool,
) -> tuple[int, ...]:
    """Normalises ``strides`` or ``dilations`` to one positive int per dimension.

    TensorFlow accepts an int, or a sequence of length 1, ``N`` or ``N + 2``
    (the last in ``data_format`` order, with batch and channel entries of 1).
    ``None`` means 1.

    Raises:
      TypeError: if an entry is not an integer.
      ValueError: on a wrong length, a batch or channel entry other than 1, or
        an entry below 1.
    """
    if value is None:
        return (1,) * num_spatial
    value = _checks.static(function, argument, value)
    if isinstance(value, numbers.Integral) or getattr(value, "ndim", None) == 0:
        values: tuple[int, ...] = (_checks.integer(function, argument, value),)
    elif isinstance(value, str) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"{function}: `{argument}` must be an int or a sequence of ints, "
            f"got {type(value).__name__} {value!r}."
        )
    else:
        values = tuple(_checks.integer(function, argument, v) for v in value)
    full = num_spatial + 2
    if len(values) == 1:
        spatial = values * num_spatial
    elif len(values) == num_spatial:
        spatial = values
    elif len(values) == full:
        outer = (values[0], values[-1]) if channels_last else (values[0], values[1])
        if outer != (1, 1):
            raise ValueError(
                f"{function}: `{argument}` in its length-{full} form must be 1 "
                f"on the batch and channel dimensions, got {values}."
            )
        spatial = values[1:-1] if channels_last else values[2:]
    else:
        lengths = sorted({1, num_spatial, full})
        allowed = ", ".join(map(str, lengths[:-1])) + f" or {lengths[-1]}"
        raise ValueError(f"{function}: `{argument}` must have length {allowed}, got {values}.")
    if any(v < 1 for v in spatial):
        raise ValueError(f"{function}: every entry of `{argument}` must be >= 1, got {values}.")
    return tuple(spatial)


def normalize_output_shape(
    function: str,
    output_shape: Sequence[int],
    num_spatial: int,
    channels_last: bool,
    batch_size: int,
    out_channels: int,
) -> tuple[int, ...]:
    """Checks ``output_shape`` and returns its spatial sizes.

    Args:
      function: name of the public function, for error messages.
      output_shape: ``N + 2`` sizes in ``data_format`` order, or only the
        ``N`` spatial sizes. Spatial sizes are concrete integers; the batch and
        channel entries may be symbolic dimensions (``jax.export``) equal to
        the input's.
      num_spatial: number of spatial dimensions.
      channels_last: the layout.
      batch_size: the input's batch size, which a full shape must repeat.
      out_channels: the output's channel count (from the filters), which a full
        shape must repeat.

    Raises:
      TypeError: if an entry is not an integer.
      ValueError: on a wrong length, a batch or channel mismatch or a negative
        size.
    """
    values = tuple(output_shape)
    if len(values) == num_spatial + 2:
        # The batch and channel entries may be symbolic (jax.export), as the input's.
        batch = _checks.dimension(function, "output_shape", values[0])
        channels = _checks.dimension(
            function, "output_shape", values[-1] if channels_last else values[1]
        )
        spatial = values[1:-1] if channels_last else values[2:]
        if not _same_size(batch, batch_size):
            raise ValueError(
                f"{function}: `output_shape` has batch size {batch}, but `input` "
                f"has batch size {batch_size}; output_shape={values}."
            )
        if not _same_size(channels, out_channels):
            raise ValueError(
                f"{function}: `output_shape` has {channels} channels, but `filters` "
                f"produce {out_channels} output channels; output_shape={values}."
            )
    elif len(values) == num_spatial:
        spatial = values
    else:
        raise ValueError(
            f"{function}: `output_shape` must have length {num_spatial + 2} (the "
            f"full shape) or {num_spatial} (spatial sizes only), got {values}."
        )
    spatial = tuple(_checks.integer(function, "output_shape", v) for v in spatial)
    if any(v < 0 for v in spatial):
        raise ValueError(f"{function}: `output_shape` sizes must be >= 0, got {values}.")
    return tuple(spatial)


def _same_size(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an inconclusive comparison of symbolic dimensions
        return False


def normalize_padding(
    function: str, padding: Padding, num_spatial: int, channels_last: bool
) -> str | tuple[tuple[int, int], ...]:
    """Checks ``padding`` and returns ``"SAME"``, ``"VALID"`` or spatial pairs.

    Explicit padding is ``N + 2`` ``(before, after)`` pairs in ``data_format``
    order whose batch and channel pairs are ``(0, 0)``, as in TensorFlow.

    Raises:
      TypeError: if ``padding`` is neither a string nor a sequence of pairs.
      ValueError: on an unknown string, a wrong number of pairs, a non-zero
        batch or channel pair, or a negative entry.
    """
    if isinstance(padding, str):
        if padding in ("SAME", "VALID"):
            return padding
        hint = (
            f" (TensorFlow spells it {padding.upper()!r})"
            if padding.upper() in ("SAME", "VALID")
            else ""
        )
        raise ValueError(
            f"{function}: `padding` must be 'SAME', 'VALID' or a list of "
            f"(before, after) pairs, got {padding!r}{hint}."
        )
    try:
        pairs = tuple(tuple(pair) for pair in padding)
    except TypeError:
        raise TypeError(
            f"{function}: `padding` must be 'SAME', 'VALID' or a list of "
            f"(before, after) pairs, got {type(padding).__name__} {padding!r}."
        ) from None
    full = num_spatial + 2
    if len(pairs) != full or any(len(pair) != 2 for pair in pairs):
        raise ValueError(
            f"{function}: explicit `padding` must be {full} (before, after) pairs, "
            f"one per dimension in `data_format` order, got {padding!r}."
        )
    int_pairs: tuple[tuple[int, int], ...] = tuple(
        (_checks.integer(function, "padding", a), _checks.integer(function, "padding", b))
        for a, b in pairs
    )
    outer = (int_pairs[0], int_pairs[-1]) if channels_last else (int_pairs[0], int_pairs[1])
    if outer != ((0, 0), (0, 0)):
        raise ValueError(
            f"{function}: explicit `padding` must be (0, 0) on the batch and "
            f"channel dimensions, got {int_pairs}."
        )
    if any(v < 0 for pair in int_pairs for v in pair):
        raise ValueError(f"{function}: explicit `padding` must be >= 0, got {int_pairs}.")
    return int_pairs[1:-1] if channels_last else int_pairs[2:]


def full_pairs(spatial: Sequence[tuple[int, int]], channels_last: bool) -> list[tuple[int, int]]:
    """Spatial ``(before, after)`` pairs as ``N + 2`` pairs in the layout's order.

    >>> full_pairs([(1, 2)], channels_last=False)
    [(0, 0), (0, 0), (1, 2)]
    """
    if channels_last:
        return [(0, 0), *spatial, (0, 0)]
    return [(0, 0), (0, 0), *spatial]


def accepted_output_sizes(
    input_size: int,
    kernel_size: int,
    stride: int,
    dilation: int,
    padding: str | tuple[int, int],
) -> range:
    """The output sizes TensorFlow accepts for one spatial dimension.

    They are the ``O`` for which a forward convolution of a size-``O`` signal
    has size ``input_size``.

    >>> accepted_output_sizes(4, 3, 2, 1, "SAME")
    range(7, 9)
    >>> accepted_output_sizes(4, 3, 2, 1, "VALID")
    range(9, 11)
    """
    k_eff = effective_kernel_size(kernel_size, dilation)
    if isinstance(padding, str):
        reach = 1 if padding == "SAME" else k_eff
        low = (input_size - 1) * stride + reach
    else:
        before, after = padding
        low = (input_size - 1) * stride + k_eff - before - after
    return range(max(low, 0), max(low + stride, 0))


def forward_padding(
    input_size: int,
    output_size: int,
    kernel_size: int,
    stride: int,
    dilation: int,
    padding: str | tuple[int, int],
) -> tuple[int, int]:
    """The forward convolution's ``(before, after)`` padding for one dimension.

    ``before`` follows TensorFlow (``SAME`` puts the odd element after);
    ``after`` is chosen so that the forward convolution maps ``output_size`` to
    exactly ``input_size``.

    >>> forward_padding(4, 8, 3, 2, 1, "SAME")
    (0, 1)
    >>> forward_padding(4, 9, 3, 2, 1, "VALID")
    (0, 0)
    >>> forward_padding(4, 7, 3, 2, 1, "SAME")
    (1, 1)
    """
    k_eff = effective_kernel_size(kernel_size, dilation)
    if isinstance(padding, str):
        need = max(0, (input_size - 1) * stride + k_eff - output_size)
        before = need // 2 if padding == "SAME" else 0
    else:
        before = padding[0]
    after = (input_size - 1) * stride + k_eff - output_size - before
    return before, after


def from_exact_padding(
    function: str,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    exact: Sequence[tuple[int, int]],
    nominal: Sequence[tuple[int, int]] | None = None,
) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """Output size and padding in TensorFlow's terms for a forward padding of any sign.

    Other frameworks let the forward convolution's padding be negative (a
    PyTorch ``output_padding`` of at least the stride, a ``jax.lax`` padding
    larger than ``k_eff - 1``). A negative entry places output positions
    beyond every kernel tap: they are zeros, which TensorFlow's output-size
    rule cannot express, so they are returned apart, as zero padding of the
    result.

    Args:
      function: name of the public function, for error messages.
      input_size: the input's spatial sizes.
      kernel_size: the kernel's spatial sizes.
      strides: one stride per spatial dimension.
      dilations: one dilation per spatial dimension.
      exact: the forward convolution's ``(before, after)`` padding, of any sign.
      nominal: the padding as the source spells it (PyTorch's symmetric
        ``padding``), used instead wherever TensorFlow's rule accepts it at
        the same output size, since it then describes the same geometry.

    Returns:
      ``(output_size, padding, zero_padding)``: the op's spatial output size,
      its non-negative ``(before, after)`` padding, and the zeros to add
      around the op's result.

    Raises:
      ValueError: if the output would be empty, or lie wholly outside the
        kernel's reach.

    >>> from_exact_padding("f", (4,), (3,), (2,), (1,), [(1, 0)], nominal=[(1, 1)])
    ((8,), ((1, 1),), ((0, 0),))
    >>> from_exact_padding("f", (4,), (3,), (1,), (3,), [(0, -2)])
    ((10,), ((0, 0),), ((0, 2),))
    """
    sizes = [
        (i - 1) * s + effective_kernel_size(k, d) - before - after
        for i, k, s, d, (before, after) in zip(
            input_size, kernel_size, strides, dilations, exact, strict=True
        )
    ]
    for dim, size in enumerate(sizes):
        if size < 1:
            raise ValueError(
                f"{function}: the output size in spatial dimension {dim} would be "
                f"{size}; it must be >= 1 (input size {input_size[dim]}, kernel size "
                f"{kernel_size[dim]}, stride {strides[dim]}, dilation {dilations[dim]}, "
                f"forward padding {exact[dim]})."
            )
    no_zeros = ((0, 0),) * len(sizes)
    if nominal is not None and all(
        before >= 0 and after >= 0 and size in accepted_output_sizes(i, k, s, d, (before, after))
        for (before, after), size, i, k, s, d in zip(
            nominal, sizes, input_size, kernel_size, strides, dilations, strict=True
        )
    ):
        return tuple(sizes), tuple((int(b), int(a)) for b, a in nominal), no_zeros
    padding, zeros, inner = [], [], []
    for dim, (size, (before, after)) in enumerate(zip(sizes, exact, strict=True)):
        lead, trail = max(-before, 0), max(-after, 0)
        if size - lead - trail < 0:
            raise ValueError(
                f"{function}: the padding {tuple(exact[dim])} of spatial dimension {dim} "
                f"places the whole output outside the kernel's reach; such a layer "
                f"only outputs zeros (and its bias)."
            )
        padding.append((max(before, 0), max(after, 0)))
        zeros.append((lead, trail))
        inner.append(size - lead - trail)
    return tuple(inner), tuple(padding), tuple(zeros)


def make_geometry(
    function: str,
    *,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    output_size: Sequence[int],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    padding: str | tuple[tuple[int, int], ...],
    channels_last: bool,
    groups: int = 1,
) -> ConvTransposeGeometry:
    """Builds the geometry, checking each output size against TensorFlow's range.

    Args:
      function: name of the public function, for error messages.
      input_size: spatial sizes of the input.
      kernel_size: spatial sizes of the filters.
      output_size: requested spatial output sizes.
      strides: normalised strides.
      dilations: normalised dilations.
      padding: ``"SAME"``, ``"VALID"`` or spatial ``(before, after)`` pairs.
      channels_last: the layout.
      groups: number of feature groups.

    Raises:
      ValueError: if an output size is outside TensorFlow's accepted range.
    """
    pads = []
    for dim, (i, k, s, d, o) in enumerate(
        zip(input_size, kernel_size, strides, dilations, output_size)
    ):
        dim_padding = padding if isinstance(padding, str) else padding[dim]
        accepted = accepted_output_sizes(i, k, s, d, dim_padding)
        if o not in accepted:
            expected = (
                f"the accepted range is [{accepted.start}, {accepted.stop - 1}]"
                if len(accepted)
                else "no output size is accepted"
            )
            raise ValueError(
                f"{function}: output size {o} in dimension {dim} "
                f"({_spatial_name(dim, len(input_size))}) does not fit input size {i} with "
                f"kernel size {k}, stride {s}, dilation {d} and padding {dim_padding!r}: "
                f"{expected}."
            )
        pads.append(forward_padding(i, o, k, s, d, dim_padding))
    return ConvTransposeGeometry(
        channels_last=channels_last,
        input_size=tuple(input_size),
        output_size=tuple(output_size),
        kernel_size=tuple(kernel_size),
        strides=strides,
        dilations=dilations,
        padding=tuple(pads),
        groups=groups,
    )


def _spatial_name(dim: int, num_spatial: int) -> str:
    """``"height"``, ``"width"``, ... for messages (``"spatial 3"`` beyond 3-d)."""
    names = SPATIAL_NAMES.get(num_spatial)
    return names[dim] if names else f"spatial {dim}"
