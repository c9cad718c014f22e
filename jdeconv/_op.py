"""The TensorFlow-compatible transposed convolution ops.

``conv1d_transpose``, ``conv2d_transpose``, ``conv3d_transpose`` and the N-d
``conv_transpose`` take TensorFlow's arguments in TensorFlow's order and give
TensorFlow's result. Each one checks its arguments (see :mod:`jdeconv._shapes`),
builds the geometry and binds the primitive of :mod:`jdeconv._primitives`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jdeconv import _checks, _primitives, _shapes
from jdeconv._lowerings import check_method

IntOrSequence = int | Sequence[int]


def conv_transpose(
    input: ArrayLike,
    filters: ArrayLike,
    output_shape: Sequence[int] | ArrayLike,
    strides: IntOrSequence,
    padding: _shapes.Padding = "SAME",
    data_format: str | None = None,
    dilations: IntOrSequence | None = None,
    name: str | None = None,
    *,
    groups: int = 1,
    method: str | None = None,
    precision: jax.lax.PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """N-d transposed convolution, as ``tf.nn.conv_transpose``.

    This is the gradient of ``tf.nn.convolution`` with respect to its input,
    sometimes called deconvolution. The number of spatial dimensions ``N`` is
    ``input.ndim - 2``.

    Args:
      input: ``(batch, *spatial, C_in)``, or ``(batch, C_in, *spatial)`` for a
        channels-first ``data_format``.
      filters: ``[*kernel_size, C_out / groups, C_in]``. The kernel of the
        forward convolution whose gradient this is: it is not flipped by the
        caller, and the output-channel axis comes before the input-channel one.
      output_shape: the output's shape, static: a tuple, list, NumPy array or
        concrete JAX array holding ``N + 2`` sizes in ``data_format`` order, or
        only the ``N`` spatial sizes. Each spatial size must be one that a
        forward convolution maps back to the input's size (see Raises).
      strides: an int, or a sequence of length 1, ``N`` or ``N + 2`` (the last
        with batch and channel entries of 1).
      padding: ``"SAME"``, ``"VALID"``, or explicit padding of the forward
        convolution as ``N + 2`` ``(before, after)`` pairs in ``data_format``
        order, with ``(0, 0)`` for batch and channels.
      data_format: ``None`` or a channels-last string (``"NWC"``, ``"NHWC"``,
        ``"NDHWC"``) or a channels-first one (``"NCW"``, ``"NCHW"``,
        ``"NCDHW"``).
      dilations: kernel dilation, spelled like ``strides``; ``None`` means 1.
      name: a name scope for the operation in the compiled program's metadata.
      groups: number of feature groups; ``C_in`` must be divisible by it and
        ``groups == C_in`` is a depthwise transposed convolution.
      method: the lowering: ``"auto"`` (rules per platform and shape),
        ``"autotune"`` (measured on this machine, :mod:`jdeconv.autotune`) or
        one of :data:`jdeconv.METHODS`; ``None`` means the process-wide default
        (:func:`jdeconv.set_default_method`, initially ``"auto"``). All give
        the same result.
      precision: passed to ``jax.lax.conv_general_dilated``.
      preferred_element_type: passed to ``jax.lax.conv_general_dilated``.

    Returns:
      The result, of shape ``output_shape`` (batch and channels filled in).
      Its dtype is that of ``input`` and ``filters`` under JAX's type
      promotion, or ``preferred_element_type``.

    Raises:
      TypeError: if ``output_shape`` is traced, if an argument has the wrong
        kind, or if the promoted dtype is not floating point.
      ValueError: on a rank, channel, batch or format mismatch, a bad
        ``strides``, ``dilations`` or ``padding``, or an output size outside
        TensorFlow's accepted range: ``[(I-1)*s + 1, I*s]`` for ``SAME``,
        ``[(I-1)*s + k_eff, (I-1)*s + k_eff + s - 1]`` for ``VALID``, where
        ``k_eff = (k-1)*d + 1``.

    Example:
      >>> import jax.numpy as jnp, jdeconv
      >>> x = jnp.ones((1, 4, 4, 3))
      >>> w = jnp.ones((3, 3, 8, 3))  # [h, w, C_out, C_in]
      >>> jdeconv.conv_transpose(x, w, (1, 8, 8, 8), strides=2).shape
      (1, 8, 8, 8)
    """
    return _conv_transpose(
        "conv_transpose",
        None,
        input,
        filters,
        output_shape,
        strides,
        padding,
        data_format,
        dilations,
        name,
        groups=groups,
        method=method,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def conv1d_transpose(
    input: ArrayLike,
    filters: ArrayLike,
    output_shape: Sequence[int] | ArrayLike,
    strides: IntOrSequence,
    padding: _shapes.Padding = "SAME",
    data_format: str = "NWC",
    dilations: IntOrSequence | None = None,
    name: str | None = None,
    *,
    groups: int = 1,
    method: str | None = None,
    precision: jax.lax.PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """1-d transposed convolution, as ``tf.nn.conv1d_transpose``.

    See :func:`conv_transpose` for the arguments; here ``input`` is
    ``(batch, width, C_in)`` (``"NWC"``) or ``(batch, C_in, width)``
    (``"NCW"``) and ``filters`` is ``[width, C_out / groups, C_in]``.

    Example:
      >>> import jax.numpy as jnp, jdeconv
      >>> x = jnp.ones((2, 10, 4))
      >>> w = jnp.ones((5, 6, 4))
      >>> jdeconv.conv1d_transpose(x, w, (2, 23, 6), strides=2, padding="VALID").shape
      (2, 23, 6)
    """
    return _conv_transpose(
        "conv1d_transpose",
        1,
        input,
        filters,
        output_shape,
        strides,
        padding,
        data_format,
        dilations,
        name,
        groups=groups,
        method=method,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def conv2d_transpose(
    input: ArrayLike,
    filters: ArrayLike,
    output_shape: Sequence[int] | ArrayLike,
    strides: IntOrSequence,
    padding: _shapes.Padding = "SAME",
    data_format: str = "NHWC",
    dilations: IntOrSequence | None = None,
    name: str | None = None,
    *,
    groups: int = 1,
    method: str | None = None,
    precision: jax.lax.PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """2-d transposed convolution, as ``tf.nn.conv2d_transpose``.

    See :func:`conv_transpose` for the arguments; here ``input`` is
    ``(batch, height, width, C_in)`` (``"NHWC"``) or
    ``(batch, C_in, height, width)`` (``"NCHW"``) and ``filters`` is
    ``[height, width, C_out / groups, C_in]``.

    Example, next to TensorFlow:

      >>> import numpy as np, jdeconv
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
      >>> w = rng.normal(size=(3, 3, 8, 3)).astype(np.float32)
      >>> # tf.nn.conv2d_transpose(x, w, [1, 7, 7, 8], 2, "SAME")
      >>> y = jdeconv.conv2d_transpose(x, w, [1, 7, 7, 8], 2, "SAME")
      >>> y.shape
      (1, 7, 7, 8)
    """
    return _conv_transpose(
        "conv2d_transpose",
        2,
        input,
        filters,
        output_shape,
        strides,
        padding,
        data_format,
        dilations,
        name,
        groups=groups,
        method=method,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def conv3d_transpose(
    input: ArrayLike,
    filters: ArrayLike,
    output_shape: Sequence[int] | ArrayLike,
    strides: IntOrSequence,
    padding: _shapes.Padding = "SAME",
    data_format: str = "NDHWC",
    dilations: IntOrSequence | None = None,
    name: str | None = None,
    *,
    groups: int = 1,
    method: str | None = None,
    precision: jax.lax.PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """3-d transposed convolution, as ``tf.nn.conv3d_transpose``.

    See :func:`conv_transpose` for the arguments; here ``input`` is
    ``(batch, depth, height, width, C_in)`` (``"NDHWC"``) or
    ``(batch, C_in, depth, height, width)`` (``"NCDHW"``) and ``filters`` is
    ``[depth, height, width, C_out / groups, C_in]``.

    Example:
      >>> import jax.numpy as jnp, jdeconv
      >>> x = jnp.ones((1, 2, 3, 4, 5))
      >>> w = jnp.ones((2, 2, 2, 7, 5))
      >>> jdeconv.conv3d_transpose(x, w, (4, 6, 8), strides=2).shape
      (1, 4, 6, 8, 7)
    """
    return _conv_transpose(
        "conv3d_transpose",
        3,
        input,
        filters,
        output_shape,
        strides,
        padding,
        data_format,
        dilations,
        name,
        groups=groups,
        method=method,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


class Operands(NamedTuple):
    """The op's checked array arguments and options, ready for :func:`transpose`."""

    x: jax.Array
    w: jax.Array
    channels_last: bool
    groups: int
    method: str | None
    precision: Any
    preferred_element_type: Any

    @property
    def input_size(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:-1] if self.channels_last else self.x.shape[2:])

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.w.shape[:-2])

    @property
    def out_channels(self) -> int:
        return self.w.shape[-2] * self.groups


def transpose(
    function: str,
    operands: Operands,
    *,
    output_size: Sequence[int],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    padding: str | tuple[tuple[int, int], ...],
) -> jax.Array:
    """``T`` of checked operands with the given window: its geometry (checked), then the op."""
    geometry = _shapes.make_geometry(
        function,
        input_size=operands.input_size,
        kernel_size=operands.kernel_size,
        output_size=output_size,
        strides=strides,
        dilations=dilations,
        padding=padding,
        channels_last=operands.channels_last,
        groups=operands.groups,
    )
    return _primitives.apply(
        operands.x,
        operands.w,
        geometry,
        method=operands.method,
        precision=operands.precision,
        preferred_element_type=operands.preferred_element_type,
    )


def check_operands(
    function: str,
    input: Any,
    filters: Any,
    num_spatial: int | None,
    data_format: Any,
    *,
    groups: Any = 1,
    method: Any = None,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> Operands:
    """Checks the arrays, layout, groups and options of a TensorFlow-style call.

    ``input`` and ``filters`` are promoted to one floating-point dtype.
    ``num_spatial`` of ``None`` takes it from ``input`` (the N-d op).

    Raises:
      TypeError: on an argument of the wrong kind or a non-floating dtype.
      ValueError: on a rank, layout, channel or groups mismatch, or a bad option.
    """
    x = _checks.floating_array(function, "input", input)
    w = _checks.floating_array(function, "filters", filters)
    method = check_method(function, "method", method)
    precision = _checks.precision(function, "precision", precision)
    preferred_element_type = _checks.floating_dtype(
        function, "preferred_element_type", preferred_element_type, optional=True
    )
    if num_spatial is None:
        if x.ndim < 3:
            raise ValueError(
                f"{function}: `input` must have at least 3 dimensions (batch, "
                f"spatial, channels), got shape {x.shape}."
            )
        num_spatial = x.ndim - 2
    elif x.ndim != num_spatial + 2:
        raise ValueError(
            f"{function}: `input` must have {num_spatial + 2} dimensions, got shape {x.shape}."
        )
    if w.ndim != num_spatial + 2:
        raise ValueError(
            f"{function}: `filters` must have {num_spatial + 2} dimensions "
            f"[*kernel_size, out_channels, in_channels], got shape {w.shape}."
        )
    dtype = jnp.result_type(x, w)
    if preferred_element_type is not None and jnp.promote_types(
        dtype, preferred_element_type
    ) != jnp.dtype(preferred_element_type):
        raise TypeError(
            f"{function}: `preferred_element_type` must not be narrower than the dtype "
            f"of `input` and `filters` ({dtype}), got {jnp.dtype(preferred_element_type)}."
        )
    channels_last = _shapes.normalize_data_format(function, data_format, num_spatial)
    in_channels = x.shape[-1] if channels_last else x.shape[1]
    groups = _checks.positive_integer(function, "groups", groups)
    if in_channels % groups:
        raise ValueError(
            f"{function}: `groups` must divide the {in_channels} input channels, got {groups}."
        )
    if w.shape[-1] != in_channels:
        raise ValueError(
            f"{function}: `filters` have {w.shape[-1]} input channels "
            f"(last axis), but `input` has {in_channels} channels; input shape "
            f"{x.shape}, filters shape {w.shape}, data_format {data_format!r}."
        )
    if any(k < 1 for k in w.shape[:-2]):
        raise ValueError(f"{function}: `filters` spatial sizes must be >= 1, got shape {w.shape}.")
    return Operands(
        x.astype(dtype),
        w.astype(dtype),
        channels_last,
        groups,
        method,
        precision,
        preferred_element_type,
    )


def _conv_transpose(
    function: str,
    num_spatial: int | None,
    input: ArrayLike,
    filters: ArrayLike,
    output_shape: Any,
    strides: Any,
    padding: Any,
    data_format: Any,
    dilations: Any,
    name: Any,
    *,
    groups: Any,
    method: Any,
    precision: Any,
    preferred_element_type: Any,
) -> jax.Array:
    """Checks the arguments of a public op, builds its geometry and applies it."""
    operands = check_operands(
        function,
        input,
        filters,
        num_spatial,
        data_format,
        groups=groups,
        method=method,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    name = _checks.optional_name(function, "name", name)
    num_spatial = operands.x.ndim - 2
    channels_last = operands.channels_last
    output_size = _shapes.normalize_output_shape(
        function,
        _static_output_shape(function, output_shape),
        num_spatial,
        channels_last,
        batch_size=operands.x.shape[0],
        out_channels=operands.out_channels,
    )
    window_strides = _shapes.normalize_window_argument(
        function, "strides", strides, num_spatial, channels_last
    )
    window_dilations = _shapes.normalize_window_argument(
        function, "dilations", dilations, num_spatial, channels_last
    )
    forward_padding = _shapes.normalize_padding(function, padding, num_spatial, channels_last)
    scope = jax.named_scope(name) if name else contextlib.nullcontext()
    with scope:
        return transpose(
            function,
            operands,
            output_size=output_size,
            strides=window_strides,
            dilations=window_dilations,
            padding=forward_padding,
        )


def _static_output_shape(function: str, output_shape: Any) -> tuple[Any, ...]:
    """``output_shape`` as a tuple of concrete or symbolic sizes; a TypeError if traced."""
    if output_shape is None or isinstance(output_shape, str):
        raise TypeError(
            f"{function}: `output_shape` must be a sequence of sizes, got "
            f"{_checks.describe(output_shape)}."
        )
    output_shape = _checks.static(function, "output_shape", output_shape)
    shape = np.asarray(output_shape, dtype=object)
    if shape.ndim != 1:
        raise ValueError(
            f"{function}: `output_shape` must be a 1-d sequence of sizes, got {output_shape!r}."
        )
    return tuple(entry.item() if isinstance(entry, np.generic) else entry for entry in shape)
