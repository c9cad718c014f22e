"""Kernels and padding from other frameworks' transposed convolutions.

Each framework stores the kernel of a transposed convolution in its own layout
and gives its padding its own meaning. The functions here translate both into
jdeconv's convention, which is TensorFlow's: filters ``[*k, C_out / groups,
C_in]``, and the padding of the *forward* convolution whose input gradient the
transposed convolution is, with a static output size.

===================  ==============================  ==========================
source               kernel                          padding and output size
===================  ==============================  ==========================
PyTorch              :func:`kernel_from_torch`       :func:`padding_from_torch`
``flax.linen``       :func:`kernel_from_flax`        :func:`padding_from_flax`
``jax.lax``          :func:`kernel_from_lax`         :func:`padding_from_lax`
Keras / TensorFlow   :func:`kernel_from_keras`       :func:`padding_from_keras`
===================  ==============================  ==========================

Each ``kernel_from_*`` has an inverse ``kernel_to_*``, and each
``padding_from_*`` an inverse ``padding_to_*``. Kernels may be NumPy arrays,
JAX arrays (also inside ``jit``) or PyTorch tensors; the result is a JAX array
for a JAX input and a NumPy array otherwise. No converter copies data it does
not have to: a layout change is a transpose, and a flip a reversed view.

The ``padding_from_*`` functions return a :class:`ConvTransposeArgs`: the
arguments of :func:`jdeconv.conv_transpose` that reproduce the source layer,
and a call that applies them.

Example, a PyTorch layer's weight and arguments in jdeconv's terms:

  >>> import numpy as np
  >>> from jdeconv import convert
  >>> weight = np.zeros((8, 3, 4, 4), np.float32)  # (in, out / groups, kh, kw)
  >>> convert.kernel_from_torch(weight).shape  # [kh, kw, out / groups, in]
  (4, 4, 3, 8)
  >>> args = convert.padding_from_torch(
  ...     input_size=(5, 5), kernel_size=4, stride=2, padding=1, output_padding=1)
  >>> args.output_size, args.padding
  ((11, 11), ((1, 1), (1, 1)))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jdeconv import _checks, _keras_rules, _op, _shapes, _torch_rules

__all__ = [
    "ConvTransposeArgs",
    "kernel_from_flax",
    "kernel_from_keras",
    "kernel_from_lax",
    "kernel_from_torch",
    "kernel_to_flax",
    "kernel_to_keras",
    "kernel_to_lax",
    "kernel_to_torch",
    "padding_from_flax",
    "padding_from_keras",
    "padding_from_lax",
    "padding_from_torch",
    "padding_to_flax",
    "padding_to_keras",
    "padding_to_lax",
    "padding_to_torch",
]

Pairs = tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True)
class ConvTransposeArgs:
    """The jdeconv arguments that reproduce another framework's layer.

    All tuples have one entry per spatial dimension, in the order of the
    input's spatial axes.

    Attributes:
      output_size: spatial sizes to pass as ``output_shape``.
      strides: the strides.
      padding: ``"SAME"``, ``"VALID"`` or the forward convolution's explicit
        ``(before, after)`` padding (never negative).
      dilations: the kernel dilation.
      output_zero_padding: ``(before, after)`` zeros to add around the op's
        result. They are ``(0, 0)`` except where the source framework pads the
        output beyond every position the kernel reaches (a PyTorch
        ``output_padding`` of at least the stride, possible when the dilation
        is larger; or a ``jax.lax`` padding larger than ``k_eff - 1``), which
        TensorFlow's output-size rule does not allow.
    """

    output_size: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str | Pairs
    dilations: tuple[int, ...]
    output_zero_padding: Pairs

    @property
    def num_spatial(self) -> int:
        """Number of spatial dimensions."""
        return len(self.strides)

    @property
    def full_output_size(self) -> tuple[int, ...]:
        """Spatial size of the result, zero padding included."""
        return tuple(
            o + lo + hi
            for o, (lo, hi) in zip(self.output_size, self.output_zero_padding, strict=True)
        )

    def op_padding(self, data_format: str | None = None) -> str | list[tuple[int, int]]:
        """``padding`` as :func:`jdeconv.conv_transpose` takes it.

        Explicit padding becomes ``N + 2`` pairs in ``data_format`` order.

        >>> args = padding_from_torch((4,), 3, stride=2, padding=1)
        >>> args.op_padding("NCW")
        [(0, 0), (0, 0), (1, 1)]
        """
        if isinstance(self.padding, str):
            return self.padding
        channels_last = _shapes.normalize_data_format(
            "ConvTransposeArgs.op_padding", data_format, self.num_spatial
        )
        return _shapes.full_pairs(self.padding, channels_last)

    def forward_padding(self, input_size: Sequence[int], kernel_size: Sequence[int]) -> Pairs:
        """The exact forward-convolution padding, zero padding included.

        Entries may be negative: a negative ``before`` is leading zeros of the
        output, a negative ``after`` trailing ones.

        >>> padding_from_torch((4,), 3, stride=2, padding=1, output_padding=1
        ...                    ).forward_padding((4,), (3,))
        ((1, 0),)
        """
        function = "ConvTransposeArgs.forward_padding"
        geometry = _shapes.make_geometry(
            function,
            input_size=_checks.sizes(function, "input_size", input_size),
            kernel_size=_checks.sizes(function, "kernel_size", kernel_size),
            output_size=self.output_size,
            strides=self.strides,
            dilations=self.dilations,
            padding=self.padding,
            channels_last=True,
        )
        return tuple(
            (before - lo, after - hi)
            for (before, after), (lo, hi) in zip(
                geometry.padding, self.output_zero_padding, strict=True
            )
        )

    def __call__(
        self,
        input: ArrayLike,
        filters: ArrayLike,
        *,
        data_format: str | None = None,
        groups: int = 1,
        **op_kwargs: Any,
    ) -> jax.Array:
        """Applies the transposed convolution with these arguments.

        The same as :func:`jdeconv.conv_transpose` with ``output_shape``,
        ``strides``, ``padding`` and ``dilations`` from here, followed by the
        ``output_zero_padding``.

        Args:
          input: ``(N, *spatial, C_in)``, or channels-first with a
            channels-first ``data_format``.
          filters: ``[*k, C_out / groups, C_in]``, e.g. from a ``kernel_from_*``
            converter.
          data_format: as in :func:`jdeconv.conv_transpose`.
          groups: number of feature groups.
          **op_kwargs: ``method``, ``precision``, ``preferred_element_type``.

        Returns:
          The transposed convolution, with ``output_zero_padding`` applied.

        Example:
          >>> import jax.numpy as jnp
          >>> args = padding_from_torch((4, 4), 3, stride=2, padding=1, output_padding=1)
          >>> args(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 5, 2))).shape
          (1, 8, 8, 5)
        """
        function = "ConvTransposeArgs"
        operands = _op.check_operands(
            function, input, filters, self.num_spatial, data_format, groups=groups, **op_kwargs
        )
        y = _op.transpose(
            function,
            operands,
            output_size=_checks.sizes(function, "output_size", self.output_size, minimum=0),
            strides=self.strides,
            dilations=self.dilations,
            padding=self.padding,
        )
        if any(pair != (0, 0) for pair in self.output_zero_padding):
            y = jnp.pad(y, _shapes.full_pairs(self.output_zero_padding, operands.channels_last))
        return y


def _kernel(function: str, argument: str, value: Any, layout: str) -> tuple[Any, int]:
    """A kernel as a NumPy or JAX array, and its number of spatial dimensions."""
    kernel = _checks.array_data(function, argument, value)
    if kernel.ndim < 3:
        raise ValueError(
            f"{function}: `{argument}` must have at least 3 dimensions {layout}, "
            f"got shape {tuple(kernel.shape)}."
        )
    return kernel, kernel.ndim - 2


def _flip_spatial(kernel: Any, num_spatial: int) -> Any:
    return kernel[(slice(None, None, -1),) * num_spatial]


def _resolve(
    function: str,
    input_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    exact: Pairs,
    nominal: Pairs | None = None,
) -> ConvTransposeArgs:
    """Arguments for exact forward padding ``exact`` (entries of any sign).

    See :func:`jdeconv._shapes.from_exact_padding`.
    """
    output_size, padding, zeros = _shapes.from_exact_padding(
        function, input_size, kernel_size, strides, dilations, exact, nominal
    )
    return ConvTransposeArgs(output_size, strides, padding, dilations, zeros)


# --------------------------------------------------------------------------
# PyTorch


def kernel_from_torch(weight: ArrayLike) -> Any:
    """Converts a PyTorch ``ConvTranspose*d`` weight to jdeconv filters.

    PyTorch's ``(C_in, C_out / groups, *k)`` becomes ``[*k, C_out / groups,
    C_in]``: a transpose, no flip. With groups, PyTorch's input-channel axis is
    group-major (group ``g`` owns channels ``g * C_in / groups`` onwards) and
    so is jdeconv's, so the same transpose holds for every ``groups``.

    Args:
      weight: ``(C_in, C_out / groups, *kernel_size)``.

    Returns:
      ``[*kernel_size, C_out / groups, C_in]``.

    Example:
      >>> import numpy as np
      >>> kernel_from_torch(np.zeros((6, 2, 3, 5))).shape
      (3, 5, 2, 6)
    """
    w, n = _kernel("kernel_from_torch", "weight", weight, "(in, out / groups, *kernel)")
    return w.transpose(*range(2, n + 2), 1, 0)


def kernel_to_torch(filters: ArrayLike) -> Any:
    """Converts jdeconv filters to a PyTorch ``ConvTranspose*d`` weight.

    The inverse of :func:`kernel_from_torch`.

    Example:
      >>> import numpy as np
      >>> kernel_to_torch(np.zeros((3, 5, 2, 6))).shape
      (6, 2, 3, 5)
    """
    w, n = _kernel("kernel_to_torch", "filters", filters, "[*kernel, out / groups, in]")
    return w.transpose(n + 1, n, *range(n))


def padding_from_torch(
    input_size: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> ConvTransposeArgs:
    """Converts PyTorch ``ConvTranspose*d`` arguments to jdeconv's.

    PyTorch's ``padding`` is the padding of the forward convolution, on both
    sides; its output size is ``(I - 1) * s - 2 * p + d * (k - 1) +
    output_padding + 1``. In jdeconv that is explicit padding ``(p, p)`` with
    that output size: ``output_padding`` selects one size from TensorFlow's
    accepted range. PyTorch also accepts ``output_padding`` up to the
    dilation minus one; where that exceeds the stride the extra rows lie
    beyond every kernel tap, and they become ``output_zero_padding``.

    Args:
      input_size: the input's spatial sizes.
      kernel_size: as in ``torch.nn.ConvTranspose*d``: an int or one int per
        spatial dimension, as are the next four.
      stride: PyTorch's ``stride``.
      padding: PyTorch's ``padding`` (forward padding on both sides).
      output_padding: PyTorch's ``output_padding``.
      dilation: PyTorch's ``dilation``.

    Returns:
      The jdeconv arguments.

    Raises:
      TypeError: on non-integer arguments.
      ValueError: where PyTorch refuses the arguments, with PyTorch's message
        (e.g. "output padding must be smaller than either stride or dilation").

    Example:
      >>> padding_from_torch((7,), kernel_size=4, stride=2, padding=1).output_size
      (14,)
    """
    function = "padding_from_torch"
    input_size = _checks.sizes(function, "input_size", input_size)
    window = _torch_rules.check_window(
        function, len(input_size), kernel_size, stride, padding, output_padding, dilation
    )
    sizes = _torch_rules.output_size(function, input_size, window)
    return _resolve(
        function,
        input_size,
        window.kernel_size,
        window.strides,
        window.dilations,
        exact=window.forward_padding(input_size, sizes),
        nominal=tuple((p, p) for p in window.padding),
    )


def padding_to_torch(
    args: ConvTransposeArgs, input_size: Sequence[int], kernel_size: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Converts jdeconv arguments to PyTorch's ``(padding, output_padding)``.

    The inverse of :func:`padding_from_torch`, where PyTorch can express the
    geometry: the forward padding's ``before`` is ``padding``, and ``before -
    after`` is ``output_padding``.

    Raises:
      ValueError: if the padding is asymmetric the other way (``after >
        before``), or ``output_padding`` would be too large for PyTorch.

    Example:
      >>> args = padding_from_torch((5,), 3, stride=2, padding=1, output_padding=1)
      >>> padding_to_torch(args, (5,), (3,))
      ((1,), (1,))
    """
    function = "padding_to_torch"
    kernel_size = _checks.sizes(function, "kernel_size", kernel_size)
    pairs = args.forward_padding(_checks.sizes(function, "input_size", input_size), kernel_size)
    pads = tuple(before for before, _ in pairs)
    output_pads = tuple(before - after for before, after in pairs)
    if any(p < 0 or op < 0 for p, op in zip(pads, output_pads, strict=True)):
        raise ValueError(
            f"{function}: PyTorch pads the forward convolution by `padding` on both "
            f"sides and adds `output_padding` at the end, so it needs before >= after "
            f">= -output_padding and before >= 0; got forward padding {pairs}."
        )
    _torch_rules.check_window(
        function, len(pairs), kernel_size, args.strides, pads, output_pads, args.dilations
    )
    return pads, output_pads


# --------------------------------------------------------------------------
# flax.linen.ConvTranspose and jax.lax.conv_transpose


_LAX_DEFAULT_DIMENSION_NUMBERS = {
    3: ("NHC", "HIO", "NHC"),
    4: ("NHWC", "HWIO", "NHWC"),
    5: ("NHWDC", "HWDIO", "NHWDC"),
}


def _lax_dimension_numbers(
    function: str, ndim: int, dimension_numbers: Any
) -> jax.lax.ConvDimensionNumbers:
    if dimension_numbers is None:
        if ndim not in _LAX_DEFAULT_DIMENSION_NUMBERS:
            raise ValueError(
                f"{function}: jax.lax.conv_transpose has default dimension numbers only "
                f"for 1 to 3 spatial dimensions; pass `dimension_numbers` for rank {ndim}."
            )
        dimension_numbers = _LAX_DEFAULT_DIMENSION_NUMBERS[ndim]
    try:
        return jax.lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, dimension_numbers)
    except TypeError as error:
        raise ValueError(f"{function}: bad `dimension_numbers`: {error}") from None


def _lax_kernel_order(dn: jax.lax.ConvDimensionNumbers) -> tuple[list[int], list[int]]:
    """The kernel's spatial axes in the input's spatial order, and that order."""
    conv_order = list(range(len(dn.lhs_spec) - 2))
    in_input_order = sorted(conv_order, key=lambda i: dn.lhs_spec[2 + i])
    return [dn.rhs_spec[2 + i] for i in in_input_order], in_input_order


def kernel_from_lax(
    kernel: ArrayLike,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
) -> Any:
    """Converts a ``jax.lax.conv_transpose`` kernel to jdeconv filters.

    ``lax.conv_transpose`` runs an ordinary convolution of the stride-dilated
    input with its kernel. With ``transpose_kernel=False`` (the default) the
    kernel's ``O`` axis is the output's channels and it is not flipped, so the
    jdeconv filters are the kernel flipped in space with ``O`` before ``I``.
    With ``transpose_kernel=True`` it is already the forward convolution's
    kernel (TensorFlow's), read with ``I`` as the output's channels: no flip.

    Args:
      kernel: the ``rhs`` of ``lax.conv_transpose``.
      dimension_numbers: as in ``lax.conv_transpose``; ``None`` means
        ``HIO`` / ``HWIO`` / ``HWDIO``.
      transpose_kernel: as in ``lax.conv_transpose``.

    Returns:
      ``[*kernel_size, C_out, C_in]``, spatial axes in the order of the
      input's (``lhs``) spatial axes.

    Example:
      >>> import numpy as np
      >>> k = np.arange(6.0).reshape(3, 1, 2)  # (w, in, out), HIO
      >>> kernel_from_lax(k)[:, 0, 0]  # flipped, (w, out, in)
      array([4., 2., 0.])
    """
    function = "kernel_from_lax"
    k, n = _kernel(function, "kernel", kernel, "(as given by `dimension_numbers`)")
    dn = _lax_dimension_numbers(function, k.ndim, dimension_numbers)
    spatial, _ = _lax_kernel_order(dn)
    out_axis, in_axis = dn.rhs_spec[0], dn.rhs_spec[1]
    if transpose_kernel:
        return k.transpose(*spatial, in_axis, out_axis)
    return _flip_spatial(k.transpose(*spatial, out_axis, in_axis), n)


def kernel_to_lax(
    filters: ArrayLike,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
) -> Any:
    """Converts jdeconv filters to a ``jax.lax.conv_transpose`` kernel.

    The inverse of :func:`kernel_from_lax`.

    Example:
      >>> import numpy as np
      >>> w = np.zeros((3, 3, 5, 2))  # [kh, kw, out, in]
      >>> kernel_to_lax(w, ("NCHW", "OIHW", "NCHW")).shape
      (5, 2, 3, 3)
    """
    function = "kernel_to_lax"
    w, n = _kernel(function, "filters", filters, "[*kernel, out, in]")
    dn = _lax_dimension_numbers(function, w.ndim, dimension_numbers)
    spatial, _ = _lax_kernel_order(dn)
    out_axis, in_axis = dn.rhs_spec[0], dn.rhs_spec[1]
    if not transpose_kernel:
        w = _flip_spatial(w, n)
    # Axis j of `w` goes to kernel axis layout[j].
    layout = [*spatial, in_axis, out_axis] if transpose_kernel else [*spatial, out_axis, in_axis]
    return w.transpose(*np.argsort(layout))


def _lax_explicit(
    function: str, padding: Any, num_spatial: int, *, flax_style: bool
) -> str | Pairs:
    """``padding`` as ``"SAME"``, ``"VALID"`` or pairs, as lax or flax reads it."""
    if isinstance(padding, str):
        if padding in ("SAME", "VALID"):
            return padding
        if padding == "CIRCULAR" and flax_style:
            raise ValueError(
                f"{function}: padding 'CIRCULAR' is not supported: flax computes it as a "
                f"'VALID' transposed convolution whose output is then wrapped around "
                f"periodically (summed modulo input size * stride), which is not a "
                f"padding of a forward convolution. Port such a layer as "
                f"padding='VALID' followed by that periodic sum."
            )
        raise ValueError(
            f"{function}: `padding` must be 'SAME', 'VALID' or (low, high) pairs, got "
            f"{padding!r}"
            + (
                " (flax and jax.lax.conv_transpose refuse lower-case padding strings "
                "for transposed convolutions)."
                if padding.upper() in ("SAME", "VALID", "CIRCULAR")
                else "."
            )
        )
    if flax_style and isinstance(padding, int | np.integer) and not isinstance(padding, bool):
        return ((int(padding), int(padding)),) * num_spatial
    try:
        entries = list(padding)
    except TypeError:
        raise TypeError(
            f"{function}: `padding` must be a string or a sequence of (low, high) pairs, "
            f"got {type(padding).__name__} {padding!r}."
        ) from None
    pairs = []
    for entry in entries:
        if flax_style and isinstance(entry, int | np.integer) and not isinstance(entry, bool):
            entry = (entry, entry)
        try:
            low, high = entry
        except (TypeError, ValueError):
            raise ValueError(
                f"{function}: `padding` must be {num_spatial} (low, high) pairs, got {padding!r}."
            ) from None
        pairs.append(
            (_checks.integer(function, "padding", low), _checks.integer(function, "padding", high))
        )
    if len(pairs) != num_spatial:
        raise ValueError(
            f"{function}: `padding` must be {num_spatial} (low, high) pairs, one per "
            f"spatial dimension, got {padding!r}."
        )
    return tuple(pairs)


def _from_lax(
    function: str,
    input_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    strides: tuple[int, ...],
    padding: str | Pairs,
    dilations: tuple[int, ...],
    consistent: bool,
) -> ConvTransposeArgs:
    if any(v < 1 for v in (*strides, *dilations)):
        raise ValueError(
            f"{function}: strides and dilations must be >= 1, got strides {strides} "
            f"and dilations {dilations}."
        )
    if isinstance(padding, str):
        # lax's defaults are Keras's output sizes.
        sizes = tuple(
            _keras_rules.output_length(i, k, s, d, padding)
            for i, k, s, d in zip(input_size, kernel_size, strides, dilations, strict=True)
        )
        zeros = ((0, 0),) * len(sizes)
        return ConvTransposeArgs(sizes, strides, padding, dilations, zeros)
    k_eff = tuple(map(_shapes.effective_kernel_size, kernel_size, dilations))
    if consistent:
        exact = padding
    else:
        exact = tuple(
            (k - 1 - low, k - 1 - high) for k, (low, high) in zip(k_eff, padding, strict=True)
        )
    return _resolve(function, input_size, kernel_size, strides, dilations, exact, exact)


def padding_from_lax(
    input_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    use_consistent_padding: bool = False,
) -> ConvTransposeArgs:
    """Converts ``jax.lax.conv_transpose`` arguments to jdeconv's.

    The arguments are those of ``lax.conv_transpose``, with the shapes of
    ``lhs`` and ``rhs`` in place of the arrays. Its ``"SAME"`` and ``"VALID"``
    are TensorFlow's at output sizes ``I * s`` and ``I * s + max(k_eff - s,
    0)``. Its explicit ``(low, high)`` pairs pad the stride-dilated input of
    the convolution it runs, so the forward padding is ``k_eff - 1 - low`` and
    ``k_eff - 1 - high``; with ``use_consistent_padding=True`` they are the
    forward padding itself, as in PyTorch.

    Args:
      input_shape: the shape of ``lhs``.
      kernel_shape: the shape of ``rhs``.
      strides: as in ``lax.conv_transpose``, one per spatial dimension.
      padding: ``"SAME"``, ``"VALID"`` or ``(low, high)`` pairs.
      rhs_dilation: ``None`` or one dilation per spatial dimension.
      dimension_numbers: as in ``lax.conv_transpose``.
      use_consistent_padding: as in ``lax.conv_transpose``.

    Returns:
      The jdeconv arguments, spatial entries in the input's axis order, for
      filters from :func:`kernel_from_lax`.

    Example:
      >>> args = padding_from_lax((1, 5, 3), (4, 3, 2), (2,), [(2, 2)])
      >>> args.padding, args.output_size
      (((1, 1),), (10,))
    """
    function = "padding_from_lax"
    input_shape = _checks.static(function, "input_shape", input_shape)
    kernel_shape = _checks.static(function, "kernel_shape", kernel_shape)
    input_shape = tuple(_checks.integer(function, "input_shape", v) for v in input_shape)
    kernel_shape = tuple(_checks.integer(function, "kernel_shape", v) for v in kernel_shape)
    if len(input_shape) != len(kernel_shape) or len(input_shape) < 3:
        raise ValueError(
            f"{function}: `input_shape` and `kernel_shape` must have the same rank, at "
            f"least 3, got {input_shape} and {kernel_shape}."
        )
    dn = _lax_dimension_numbers(function, len(input_shape), dimension_numbers)
    n = len(input_shape) - 2
    _, order = _lax_kernel_order(dn)  # conv dimension of each input spatial axis
    conv_strides = _checks.integer_tuple(function, "strides", strides, n)
    conv_dilations = _checks.integer_tuple(
        function, "rhs_dilation", 1 if rhs_dilation is None else rhs_dilation, n
    )
    conv_padding = _lax_explicit(function, padding, n, flax_style=False)
    return _from_lax(
        function,
        input_size=tuple(input_shape[dn.lhs_spec[2 + i]] for i in order),
        kernel_size=tuple(kernel_shape[dn.rhs_spec[2 + i]] for i in order),
        strides=tuple(conv_strides[i] for i in order),
        padding=conv_padding
        if isinstance(conv_padding, str)
        else tuple(conv_padding[i] for i in order),
        dilations=tuple(conv_dilations[i] for i in order),
        consistent=use_consistent_padding,
    )


def _to_lax_padding(
    function: str,
    args: ConvTransposeArgs,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    consistent: bool,
) -> str | Pairs:
    input_size = _checks.sizes(function, "input_size", input_size)
    kernel_size = _checks.sizes(function, "kernel_size", kernel_size)
    if isinstance(args.padding, str) and not any(
        pair != (0, 0) for pair in args.output_zero_padding
    ):
        default = _from_lax(
            function,
            input_size,
            kernel_size,
            args.strides,
            args.padding,
            args.dilations,
            consistent=False,
        )
        if default.output_size == args.output_size:
            return args.padding
    pairs = args.forward_padding(input_size, kernel_size)
    if consistent:
        return pairs
    return tuple(
        (k - 1 - before, k - 1 - after)
        for k, (before, after) in zip(
            map(_shapes.effective_kernel_size, kernel_size, args.dilations), pairs, strict=True
        )
    )


def padding_to_lax(
    args: ConvTransposeArgs,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    use_consistent_padding: bool = False,
) -> str | Pairs:
    """Converts jdeconv arguments to ``jax.lax.conv_transpose`` padding.

    The inverse of :func:`padding_from_lax`: ``"SAME"`` / ``"VALID"`` where
    lax's default output size matches, explicit pairs otherwise (transposed
    padding, or forward padding with ``use_consistent_padding=True``).

    Example:
      >>> args = padding_from_torch((5,), 4, stride=2, padding=1)
      >>> padding_to_lax(args, (5,), (4,))
      ((2, 2),)
    """
    return _to_lax_padding("padding_to_lax", args, input_size, kernel_size, use_consistent_padding)


def kernel_from_flax(kernel: ArrayLike, transpose_kernel: bool = False) -> Any:
    """Converts a ``flax.linen.ConvTranspose`` kernel to jdeconv filters.

    With ``transpose_kernel=False`` (flax's default) the kernel is
    ``(*k, C_in, C_out)`` and is applied without a flip, so it is *not* the
    kernel TensorFlow or PyTorch would apply to the same numbers; jdeconv's
    filters are the kernel flipped in space, last two axes swapped. With
    ``transpose_kernel=True`` it is ``(*k, C_out, C_in)``, TensorFlow's
    layout, and this is the identity.

    Example:
      >>> import numpy as np
      >>> k = np.arange(6.0).reshape(3, 1, 2)  # (w, in, out)
      >>> kernel_from_flax(k)[:, :, 0]  # (w, out, in), flipped
      array([[4., 5.],
             [2., 3.],
             [0., 1.]])
    """
    function = "kernel_from_flax"
    k, n = _kernel(function, "kernel", kernel, "(*kernel, in, out)")
    if transpose_kernel:
        return k
    return _flip_spatial(k.swapaxes(n, n + 1), n)


def kernel_to_flax(filters: ArrayLike, transpose_kernel: bool = False) -> Any:
    """Converts jdeconv filters to a ``flax.linen.ConvTranspose`` kernel.

    The inverse of :func:`kernel_from_flax`.

    Example:
      >>> import numpy as np
      >>> kernel_to_flax(np.zeros((3, 3, 5, 2))).shape  # (kh, kw, in, out)
      (3, 3, 2, 5)
    """
    function = "kernel_to_flax"
    w, n = _kernel(function, "filters", filters, "[*kernel, out, in]")
    if transpose_kernel:
        return w
    return _flip_spatial(w, n).swapaxes(n, n + 1)


def padding_from_flax(
    padding: Any,
    input_size: Sequence[int],
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    kernel_dilation: int | Sequence[int] | None = None,
) -> ConvTransposeArgs:
    """Converts ``flax.linen.ConvTranspose`` arguments to jdeconv's.

    Flax hands its padding to ``jax.lax.conv_transpose`` (see
    :func:`padding_from_lax`): ``"SAME"`` and ``"VALID"`` are TensorFlow's at
    output sizes ``I * s`` and ``I * s + max(k_eff - s, 0)``, the same as
    Keras's ``"same"`` and ``"valid"``. An int ``p`` or pairs ``(low, high)``
    pad the stride-dilated input, i.e. forward padding ``k_eff - 1 - low``
    and ``k_eff - 1 - high``. ``"CIRCULAR"`` wraps the output around and is
    refused.

    Args:
      padding: flax's ``padding`` attribute.
      input_size: the input's spatial sizes.
      kernel_size: flax's ``kernel_size``.
      strides: flax's ``strides``.
      kernel_dilation: flax's ``kernel_dilation``.

    Returns:
      The jdeconv arguments, for filters from :func:`kernel_from_flax`.

    Raises:
      ValueError: for ``"CIRCULAR"`` and lower-case strings (which flax
        refuses too), or a wrong number of pairs.

    Example:
      >>> padding_from_flax("SAME", (5, 5), (4, 4), strides=2).output_size
      (10, 10)
      >>> padding_from_flax(2, (5,), 4, strides=2).padding
      ((1, 1),)
    """
    function = "padding_from_flax"
    input_size = _checks.sizes(function, "input_size", input_size)
    n = len(input_size)
    kernel = _checks.integer_tuple(function, "kernel_size", kernel_size, n)
    strides_ = _checks.integer_tuple(function, "strides", 1 if strides is None else strides, n)
    dilations = _checks.integer_tuple(
        function, "kernel_dilation", 1 if kernel_dilation is None else kernel_dilation, n
    )
    return _from_lax(
        function,
        input_size,
        kernel,
        strides_,
        _lax_explicit(function, padding, n, flax_style=True),
        dilations,
        consistent=False,
    )


def padding_to_flax(
    args: ConvTransposeArgs, input_size: Sequence[int], kernel_size: Sequence[int]
) -> str | Pairs:
    """Converts jdeconv arguments to ``flax.linen.ConvTranspose`` padding.

    The inverse of :func:`padding_from_flax`.

    Example:
      >>> args = padding_from_keras("same", (5,), 3, strides=2)
      >>> padding_to_flax(args, (5,), (3,))
      'SAME'
    """
    return _to_lax_padding("padding_to_flax", args, input_size, kernel_size, False)


# --------------------------------------------------------------------------
# Keras / TensorFlow


def kernel_from_keras(kernel: ArrayLike) -> Any:
    """Converts a Keras ``Conv*DTranspose`` (or TensorFlow) kernel: the identity.

    The identity: Keras's ``[*k, filters / groups, C_in]`` kernel, applied as
    the gradient of a forward convolution, is jdeconv's convention. It exists
    so that a port can say so explicitly.

    Example:
      >>> import numpy as np
      >>> kernel_from_keras(np.zeros((3, 3, 8, 4))).shape
      (3, 3, 8, 4)
    """
    k, _ = _kernel("kernel_from_keras", "kernel", kernel, "[*kernel, filters, in]")
    return k


def kernel_to_keras(filters: ArrayLike) -> Any:
    """Converts jdeconv filters to a Keras ``Conv*DTranspose`` kernel: the identity.

    Example:
      >>> import numpy as np
      >>> kernel_to_keras(np.zeros((3, 3, 8, 4))).shape
      (3, 3, 8, 4)
    """
    w, _ = _kernel("kernel_to_keras", "filters", filters, "[*kernel, filters, in]")
    return w


def padding_from_keras(
    padding: str,
    input_size: Sequence[int],
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    dilation_rate: int | Sequence[int] = 1,
    output_padding: int | Sequence[int] | None = None,
) -> ConvTransposeArgs:
    """Converts Keras ``Conv*DTranspose`` arguments to jdeconv's.

    Keras calls TensorFlow's op with ``padding.upper()`` and an output size of
    ``I * s`` (``"same"``) or ``I * s + max(k_eff - s, 0)`` (``"valid"``);
    with ``output_padding`` it is ``(I - 1) * s + k_eff - 2 * pad +
    output_padding``, ``pad`` being ``k_eff // 2`` for ``"same"`` and 0 for
    ``"valid"``. So only the output size is computed here.

    Args:
      padding: ``"same"`` or ``"valid"`` (any case).
      input_size: the input's spatial sizes.
      kernel_size: Keras's ``kernel_size``.
      strides: Keras's ``strides``.
      dilation_rate: Keras's ``dilation_rate``.
      output_padding: Keras's ``output_padding``.

    Returns:
      The jdeconv arguments.

    Example:
      >>> padding_from_keras("valid", (4, 4), 3, strides=2, output_padding=1).output_size
      (10, 10)
    """
    function = "padding_from_keras"
    input_size = _checks.sizes(function, "input_size", input_size)
    n = len(input_size)
    mode = _keras_rules.padding(function, "padding", padding)
    kernel = _checks.integer_tuple(function, "kernel_size", kernel_size, n, broadcast_one=True)
    strides_ = _checks.integer_tuple(function, "strides", strides, n, broadcast_one=True)
    dilations = _checks.integer_tuple(
        function, "dilation_rate", dilation_rate, n, broadcast_one=True
    )
    if any(v < 1 for v in (*kernel, *strides_, *dilations)):
        raise ValueError(
            f"{function}: kernel_size, strides and dilation_rate must be >= 1, got "
            f"{kernel}, {strides_} and {dilations}."
        )
    output_pads = None
    if output_padding is not None:
        output_pads = _checks.integer_tuple(
            function, "output_padding", output_padding, n, broadcast_one=True
        )
    _keras_rules.check_output_padding(function, output_pads, strides_)
    sizes = _keras_rules.output_size(
        function, input_size, kernel, strides_, dilations, mode, output_pads
    )
    return ConvTransposeArgs(sizes, strides_, mode, dilations, ((0, 0),) * n)


def padding_to_keras(
    args: ConvTransposeArgs, input_size: Sequence[int], kernel_size: Sequence[int]
) -> tuple[str, tuple[int, ...] | None]:
    """Converts jdeconv arguments to Keras's ``(padding, output_padding)``.

    The inverse of :func:`padding_from_keras`. ``output_padding`` is ``None``
    where Keras's default output size matches.

    Raises:
      ValueError: for explicit padding, which Keras does not have.

    Example:
      >>> args = padding_from_keras("same", (4,), 3, strides=2, output_padding=0)
      >>> padding_to_keras(args, (4,), (3,))
      ('same', (0,))
    """
    function = "padding_to_keras"
    if not isinstance(args.padding, str) or any(
        pair != (0, 0) for pair in args.output_zero_padding
    ):
        raise ValueError(
            f"{function}: Keras's transposed convolutions only have 'same' and 'valid' "
            f"padding, got explicit padding {args.padding}."
        )
    mode = args.padding.lower()
    input_size = _checks.sizes(function, "input_size", input_size)
    kernel_size = _checks.sizes(function, "kernel_size", kernel_size)
    default = padding_from_keras(mode, input_size, kernel_size, args.strides, args.dilations)
    if default.output_size == args.output_size:
        return mode, None
    zero = tuple(
        _keras_rules.output_length(i, k, s, d, args.padding, 0)
        for i, k, s, d in zip(input_size, kernel_size, args.strides, args.dilations, strict=True)
    )
    output_pads = tuple(o - z for o, z in zip(args.output_size, zero, strict=True))
    if any(not 0 <= op < s for op, s in zip(output_pads, args.strides, strict=True)):
        raise ValueError(
            f"{function}: output size {args.output_size} needs output_padding "
            f"{output_pads}, which Keras refuses (it must lie in [0, stride))."
        )
    return mode, output_pads
