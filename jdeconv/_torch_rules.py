"""PyTorch's rules for transposed convolutions, with PyTorch's messages.

:mod:`jdeconv.torch_compat` refuses what ``torch.nn.functional.conv_transpose*d``
and ``torch.nn.ConvTranspose*d`` refuse, and the PyTorch converters of
:mod:`jdeconv.convert` check their arguments the same way; both use this
module. A message is PyTorch's, after the name of the jdeconv function, where
PyTorch's CPU backend words it the same on every path; where PyTorch's oneDNN
path words it otherwise, the message is that of PyTorch's native path.

Notation, per spatial dimension: ``I`` input size, ``k`` kernel size, ``s``
stride, ``p`` padding, ``op`` output padding, ``d`` dilation. PyTorch's output
size is ``(I - 1) * s - 2 * p + d * (k - 1) + op + 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from jdeconv import _checks, _shapes


def dims(name: str, values: Sequence[int], sep: str = " ") -> str:
    """PyTorch's listing of per-dimension values, e.g. ``stride_height: 2 stride_width: 1``."""
    names = _shapes.SPATIAL_NAMES.get(len(values), tuple(str(i) for i in range(len(values))))
    return sep.join(f"{name}_{dim}: {v}" for dim, v in zip(names, values, strict=True))


def per_dimension(function: str, argument: str, value: Any, num_spatial: int) -> tuple[int, ...]:
    """An int, or a list of one or ``num_spatial`` ints, as PyTorch takes it.

    Raises:
      TypeError: on a string (PyTorch's transposed convolutions have no
        string padding) or a non-integer.
      ValueError: on a wrong length, with PyTorch's message.
    """
    if isinstance(value, str):
        raise TypeError(
            f"{function}: argument '{argument}' must be tuple of ints, not str "
            f"(PyTorch's transposed convolutions have no string padding)."
        )
    try:
        return _checks.integer_tuple(function, argument, value, num_spatial, broadcast_one=True)
    except ValueError:
        shown = list(value) if isinstance(value, Sequence) else value
        raise ValueError(
            f"{function}: expected {argument} to be a single integer value or a list "
            f"of {num_spatial} values to match the convolution dimensions, but got "
            f"{argument}={shown}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Window:
    """PyTorch's window arguments, checked: one entry per spatial dimension."""

    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilations: tuple[int, ...]

    def smallest_output_sizes(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """The output sizes at ``output_padding=0``."""
        return tuple(
            (i - 1) * s - 2 * p + d * (k - 1) + 1
            for i, s, p, d, k in zip(
                input_size,
                self.strides,
                self.padding,
                self.dilations,
                self.kernel_size,
                strict=True,
            )
        )

    def forward_padding(
        self, input_size: Sequence[int], output_size: Sequence[int]
    ) -> tuple[tuple[int, int], ...]:
        """The forward convolution's exact ``(before, after)`` padding, of any sign.

        PyTorch pads ``p`` before; ``after`` makes a size-``output_size``
        signal convolve to ``input_size``: ``p - op`` at PyTorch's own size.
        """
        return tuple(
            (p, (i - 1) * s + _shapes.effective_kernel_size(k, d) - o - p)
            for i, o, k, s, p, d in zip(
                input_size,
                output_size,
                self.kernel_size,
                self.strides,
                self.padding,
                self.dilations,
                strict=True,
            )
        )


def check_window(
    function: str,
    num_spatial: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    dilation: Any,
) -> Window:
    """PyTorch's checks of the window arguments, in PyTorch's order and words.

    Raises:
      TypeError: on a string or a non-integer.
      ValueError: where PyTorch refuses the arguments.
    """
    kernel = per_dimension(function, "kernel_size", kernel_size, num_spatial)
    strides = per_dimension(function, "stride", stride, num_spatial)
    pads = per_dimension(function, "padding", padding, num_spatial)
    output_pads = per_dimension(function, "output_padding", output_padding, num_spatial)
    dilations = per_dimension(function, "dilation", dilation, num_spatial)
    if any(s < 1 for s in strides):
        raise ValueError(f"{function}: non-positive stride is not supported")
    if any(p < 0 for p in pads):
        raise ValueError(f"{function}: negative padding is not supported")
    if any(p < 0 for p in output_pads):
        raise ValueError(f"{function}: negative output_padding is not supported")
    if any(d < 0 for d in dilations):
        raise ValueError(f"{function}: dilation should be greater than zero")
    if any(k < 1 for k in kernel):
        raise ValueError(
            f"{function}: kernel size should be greater than zero, but got {dims('kernel', kernel)}"
        )
    if any(d < 1 for d in dilations):
        raise ValueError(
            f"{function}: dilation should be greater than zero, but got "
            f"{dims('dilation', dilations, ', ')}"
        )
    if any(op >= s and op >= d for op, s, d in zip(output_pads, strides, dilations, strict=True)):
        raise ValueError(
            f"{function}: output padding must be smaller than either stride or dilation, "
            f"but got {dims('output_padding', output_pads)} "
            f"{dims('stride', strides)} {dims('dilation', dilations)}"
        )
    return Window(kernel, strides, pads, output_pads, dilations)


def output_size(function: str, input_size: Sequence[int], window: Window) -> tuple[int, ...]:
    """PyTorch's output size (``output_padding`` included).

    Raises:
      ValueError: if a size is below 1, with PyTorch's message.
    """
    sizes = tuple(
        size + op
        for size, op in zip(
            window.smallest_output_sizes(input_size), window.output_padding, strict=True
        )
    )
    if any(size < 1 for size in sizes):
        raise ValueError(
            f"{function}: Given input size per channel: ({' x '.join(map(str, input_size))}). "
            f"Calculated output size per channel: ({' x '.join(map(str, sizes))}). "
            f"Output size is too small"
        )
    return sizes


def requested_output_size(
    function: str,
    output_size: Any,
    input_shape: Sequence[int],
    window: Window,
) -> tuple[int, ...]:
    """The spatial sizes of a module's ``output_size``, checked as PyTorch checks them.

    ``output_size`` holds the spatial sizes, or the full output shape; each
    size must lie in ``[smallest, smallest + stride - 1]``.

    Raises:
      ValueError: on a wrong length or a size out of range, with PyTorch's
        message.
    """
    num_spatial = len(window.strides)
    output_size = _checks.static(function, "output_size", output_size)
    sizes = [_checks.integer(function, "output_size", v) for v in output_size]
    non_spatial = len(input_shape) - num_spatial
    if len(sizes) == non_spatial + num_spatial:
        sizes = sizes[non_spatial:]
    if len(sizes) != num_spatial:
        raise ValueError(
            f"ConvTranspose{num_spatial}D: for {len(input_shape)}D input, output_size must "
            f"have {num_spatial} or {non_spatial + num_spatial} elements (got {len(sizes)})"
        )
    input_size = list(input_shape[-num_spatial:])
    smallest = list(window.smallest_output_sizes(input_size))
    largest = [low + s - 1 for low, s in zip(smallest, window.strides, strict=True)]
    if any(not low <= size <= high for size, low, high in zip(sizes, smallest, largest)):
        raise ValueError(
            f"{function}: requested an output size of {sizes}, but valid sizes range from "
            f"{smallest} to {largest} (for an input of {input_size})"
        )
    return tuple(sizes)


def check_shapes(
    function: str,
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    groups: int,
) -> None:
    """PyTorch's checks of the batched input's and the weight's shapes against ``groups``.

    Raises:
      ValueError: where PyTorch refuses them, with PyTorch's message.
    """
    num_spatial = len(weight_shape) - 2
    in_channels, out_per_group = weight_shape[0], weight_shape[1]
    weight = list(weight_shape)
    if groups < 1:
        raise ValueError(f"{function}: non-positive groups is not supported")
    if in_channels < groups:
        raise ValueError(
            f"{function}: Given groups={groups}, expected weight to be at least {groups} at "
            f"dimension 0, but got weight of size {weight} instead"
        )
    if in_channels % groups:
        raise ValueError(
            f"{function}: Given groups={groups}, expected weight to be divisible by {groups} "
            f"at dimension 0, but got weight of size [{weight}] instead"
        )
    if input_shape[1] != in_channels:
        raise ValueError(
            f"{function}: Given transposed=1, weight of size {weight}, expected "
            f"input{list(input_shape)} to have {in_channels} channels, but got "
            f"{input_shape[1]} channels instead"
        )
    if out_per_group < 1:
        expected = (
            "5D (n_output_plane x n_input_plane x kernel_depth x kernel_height x "
            "kernel_width) tensor expected for weight"
            if num_spatial == 3
            else "2D or 4D weight tensor expected"
        )
        raise ValueError(f"{function}: non-empty {expected}, but got: {weight}")
    if any(size < 1 for size in input_shape[2:]):
        raise ValueError(
            f"{function}: Only zero batch or zero channel inputs are supported, but got input "
            f"shape: {list(input_shape)}"
        )


def check_bias(
    function: str, weight_shape: Sequence[int], bias_shape: Sequence[int], groups: int
) -> None:
    """PyTorch's check of the bias: one entry per output channel.

    Raises:
      ValueError: otherwise, with PyTorch's message.
    """
    out_channels = weight_shape[1] * groups
    if tuple(bias_shape) != (out_channels,):
        raise ValueError(
            f"{function}: Given transposed=1, weight of size {list(weight_shape)}, expected "
            f"bias to be 1-dimensional with {out_channels} elements, but got bias of "
            f"size {list(bias_shape)} instead"
        )


def weight_shape(
    function: str, in_channels: int, out_channels: int, kernel_size: Sequence[int], groups: int
) -> tuple[int, ...]:
    """``(in_channels, out_channels // groups, *kernel_size)``, as ``ConvTranspose*d`` creates it.

    Raises:
      ValueError: on a negative entry, with PyTorch's message.
    """
    shape = (in_channels, out_channels // groups, *kernel_size)
    negative = [size for size in shape if size < 0]
    if negative:
        raise ValueError(
            f"{function}: Trying to create tensor with negative dimension {negative[0]}: "
            f"{list(shape)}"
        )
    return shape
