"""PyTorch's transposed convolutions, in JAX and Flax.

``conv_transpose1d``, ``conv_transpose2d`` and ``conv_transpose3d`` take the
arguments of ``torch.nn.functional.conv_transpose*d`` in PyTorch's layouts:
input ``(N, C_in, *spatial)`` (or unbatched ``(C_in, *spatial)``) and weight
``(C_in, C_out / groups, *kernel_size)``. They refuse what PyTorch refuses,
with PyTorch's messages, and otherwise give PyTorch's values and gradients.

:class:`ConvTranspose1d`, :class:`ConvTranspose2d` and :class:`ConvTranspose3d`
mirror ``torch.nn.ConvTranspose*d`` as ``flax.linen`` modules. Their
parameters ``weight`` and ``bias`` are stored in PyTorch's layout and
initialised as PyTorch does, so a PyTorch state dict loads as it is (see
:mod:`jdeconv.io`), and their call takes PyTorch's ``output_size``.

Both are thin: they check PyTorch's arguments by PyTorch's rules, build the
op's geometry from them (explicit padding ``(p, p)`` at PyTorch's output size,
as :func:`jdeconv.convert.padding_from_torch` computes it), and apply the op
to the weight in jdeconv's layout (:func:`jdeconv.convert.kernel_from_torch`).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jdeconv import torch_compat
  >>> layer = torch_compat.ConvTranspose2d(8, 4, kernel_size=3, stride=2, padding=1)
  >>> x = jnp.ones((1, 8, 5, 5))
  >>> params = layer.init(jax.random.key(0), x)
  >>> jax.tree_util.tree_map(jnp.shape, params)
  {'params': {'bias': (4,), 'weight': (8, 4, 3, 3)}}
  >>> layer.apply(params, x, output_size=(10, 10)).shape
  (1, 4, 10, 10)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jdeconv import _checks, _primitives, _shapes, _torch_rules, convert
from jdeconv._lowerings import check_method

__all__ = [
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]

IntOrSequence = int | Sequence[int]


def _conv_transpose(
    function: str,
    num_spatial: int,
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrSequence,
    padding: IntOrSequence,
    output_padding: IntOrSequence,
    groups: int,
    dilation: IntOrSequence,
    method: str | None,
    precision: jax.lax.PrecisionLike,
    *,
    output_size: Sequence[int] | None = None,
    module: str | None = None,
) -> jax.Array:
    """Checks a PyTorch-style call as PyTorch does, builds its geometry and applies it.

    ``output_size`` (a module's call) replaces ``output_padding``; its errors
    name ``module``.
    """
    x = _checks.array(function, "input", input)
    w = _checks.array(function, "weight", weight)
    if x.ndim not in (num_spatial + 1, num_spatial + 2):
        raise ValueError(
            f"{function}: Expected {num_spatial + 1}D (unbatched) or {num_spatial + 2}D "
            f"(batched) input to {function}, but got input of size: {list(x.shape)}"
        )
    unbatched = x.ndim == num_spatial + 1
    batched_shape = (1, *x.shape) if unbatched else x.shape
    if w.ndim != num_spatial + 2:
        raise ValueError(
            f"{function}: `weight` must have {num_spatial + 2} dimensions (in_channels, "
            f"out_channels / groups, *kernel_size), but got weight of size {list(w.shape)}"
        )
    groups = _checks.integer(function, "groups", groups)
    window = _torch_rules.check_window(
        function,
        num_spatial,
        w.shape[2:],
        stride,
        padding,
        0 if output_size is not None else output_padding,
        dilation,
    )
    _torch_rules.check_shapes(function, batched_shape, w.shape, groups)
    for argument, array in (("input", x), ("weight", w)):
        _checks.floating_array(function, argument, array)
    b = None
    if bias is not None:
        b = _checks.array(function, "bias", bias)
        _torch_rules.check_bias(function, w.shape, b.shape, groups)
    method = check_method(function, "method", method)
    precision = _checks.precision(function, "precision", precision)

    input_size = batched_shape[2:]
    if output_size is None:
        sizes = _torch_rules.output_size(function, input_size, window)
    else:
        sizes = _torch_rules.requested_output_size(module or function, output_size, x.shape, window)
    inner_size, forward_padding, zeros = _shapes.from_exact_padding(
        function,
        input_size,
        window.kernel_size,
        window.strides,
        window.dilations,
        window.forward_padding(input_size, sizes),
        nominal=tuple((p, p) for p in window.padding),
    )
    geometry = _shapes.make_geometry(
        function,
        input_size=input_size,
        kernel_size=window.kernel_size,
        output_size=inner_size,
        strides=window.strides,
        dilations=window.dilations,
        padding=forward_padding,
        channels_last=False,
        groups=groups,
    )
    dtype = jnp.result_type(x, w)
    y = _primitives.apply(
        (x[None] if unbatched else x).astype(dtype),
        convert.kernel_from_torch(w).astype(dtype),
        geometry,
        method=method,
        precision=precision,
        preferred_element_type=None,
    )
    if any(pair != (0, 0) for pair in zeros):
        y = jnp.pad(y, _shapes.full_pairs(zeros, channels_last=False))
    if b is not None:
        y = y + b.astype(y.dtype).reshape(-1, *(1,) * num_spatial)
    return y[0] if unbatched else y


def conv_transpose1d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrSequence = 1,
    padding: IntOrSequence = 0,
    output_padding: IntOrSequence = 0,
    groups: int = 1,
    dilation: IntOrSequence = 1,
    *,
    method: str | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> jax.Array:
    """1-d transposed convolution, as ``torch.nn.functional.conv_transpose1d``.

    See :func:`conv_transpose2d`; here ``input`` is ``(N, C_in, W)`` or
    ``(C_in, W)`` and ``weight`` is ``(C_in, C_out / groups, kW)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import torch_compat
      >>> x, w = jnp.ones((2, 4, 10)), jnp.ones((4, 3, 5))
      >>> torch_compat.conv_transpose1d(x, w, stride=2, padding=2, output_padding=1).shape
      (2, 3, 20)
    """
    return _conv_transpose(
        "conv_transpose1d",
        1,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        method,
        precision,
    )


def conv_transpose2d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrSequence = 1,
    padding: IntOrSequence = 0,
    output_padding: IntOrSequence = 0,
    groups: int = 1,
    dilation: IntOrSequence = 1,
    *,
    method: str | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> jax.Array:
    """2-d transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    The output size is ``(H_in - 1) * stride - 2 * padding + dilation *
    (kH - 1) + output_padding + 1`` (likewise for the width).

    Args:
      input: ``(N, C_in, H, W)``, or ``(C_in, H, W)`` unbatched.
      weight: ``(C_in, C_out / groups, kH, kW)``, PyTorch's layout.
      bias: ``None`` or ``(C_out,)``.
      stride: an int or a pair.
      padding: an int or a pair: ``dilation * (k - 1) - padding`` zeros pad
        both sides of the dilated input (the forward convolution's padding).
      output_padding: an int or a pair, added to one side of the output; it
        must be smaller than the stride or the dilation.
      groups: number of feature groups; ``C_in`` must be divisible by it.
      dilation: an int or a pair.
      method: the lowering, as in :func:`jdeconv.conv_transpose`.
      precision: passed to the convolution, as in :func:`jdeconv.conv_transpose`.

    Returns:
      ``(N, C_out, H_out, W_out)``, or ``(C_out, H_out, W_out)`` unbatched.

    Raises:
      TypeError: for non-array or non-floating-point arguments, non-integer
        sizes, or string padding (which PyTorch refuses too).
      ValueError: where PyTorch refuses the arguments, with PyTorch's
        message after the function's name, e.g. ``"conv_transpose2d: output
        padding must be smaller than either stride or dilation, ..."``.

    Example, next to PyTorch:

      >>> import numpy as np
      >>> from jdeconv import torch_compat
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(1, 4, 5, 5)).astype(np.float32)
      >>> w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)  # groups=2: C_out 6
      >>> # torch.nn.functional.conv_transpose2d(x, w, None, 2, 1, 1, 2)
      >>> torch_compat.conv_transpose2d(x, w, None, 2, 1, 1, 2).shape
      (1, 6, 10, 10)
    """
    return _conv_transpose(
        "conv_transpose2d",
        2,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        method,
        precision,
    )


def conv_transpose3d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrSequence = 1,
    padding: IntOrSequence = 0,
    output_padding: IntOrSequence = 0,
    groups: int = 1,
    dilation: IntOrSequence = 1,
    *,
    method: str | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> jax.Array:
    """3-d transposed convolution, as ``torch.nn.functional.conv_transpose3d``.

    See :func:`conv_transpose2d`; here ``input`` is ``(N, C_in, D, H, W)`` or
    ``(C_in, D, H, W)`` and ``weight`` is ``(C_in, C_out / groups, kD, kH,
    kW)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import torch_compat
      >>> x, w = jnp.ones((1, 2, 3, 4, 5)), jnp.ones((2, 4, 2, 2, 2))
      >>> torch_compat.conv_transpose3d(x, w, stride=2).shape
      (1, 4, 6, 8, 10)
    """
    return _conv_transpose(
        "conv_transpose3d",
        3,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        method,
        precision,
    )


_FUNCTION_NAMES = {1: "conv_transpose1d", 2: "conv_transpose2d", 3: "conv_transpose3d"}


def _uniform(bound: float) -> Any:
    """Initializer drawing from ``U(-bound, bound)``."""

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _weight_shape(module: _ConvTransposeNd) -> tuple[int, ...]:
    """``(in_channels, out_channels / groups, *kernel_size)`` of a module, checked.

    A function, not a method: Flax wraps module methods, and this one runs in
    ``__post_init__``, before the module is bound.
    """
    name = type(module).__name__
    return _torch_rules.weight_shape(
        name,
        _checks.integer(name, "in_channels", module.in_channels),
        _checks.integer(name, "out_channels", module.out_channels),
        _torch_rules.per_dimension(name, "kernel_size", module.kernel_size, module.num_spatial),
        module.groups,
    )


class _ConvTransposeNd(nn.Module):
    """Shared implementation of the ``ConvTranspose*d`` modules."""

    num_spatial: ClassVar[int] = 0

    in_channels: int
    out_channels: int
    kernel_size: IntOrSequence
    stride: IntOrSequence = 1
    padding: IntOrSequence = 0
    output_padding: IntOrSequence = 0
    groups: int = 1
    bias: bool = True
    dilation: IntOrSequence = 1
    padding_mode: str = "zeros"
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    precision: jax.lax.PrecisionLike = None
    method: str | None = None

    def __post_init__(self) -> None:
        # PyTorch's checks at construction, in its order and words.
        name = type(self).__name__
        groups = _checks.integer(name, "groups", self.groups)
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups}.")
        if self.in_channels % groups != 0:
            raise ValueError(
                f"{name}: in_channels must be divisible by groups, got in_channels="
                f"{self.in_channels} and groups={groups}."
            )
        if self.out_channels % groups != 0:
            raise ValueError(
                f"{name}: out_channels must be divisible by groups, got out_channels="
                f"{self.out_channels} and groups={groups}."
            )
        if isinstance(self.padding, str):
            raise ValueError(
                f"{name}: PyTorch's transposed convolutions take integer padding, got "
                f"{self.padding!r} (padding='same' and 'valid' exist only for Conv*d)."
            )
        if self.padding_mode != "zeros":
            raise ValueError(f'{name}: Only "zeros" padding mode is supported for {name}')
        _weight_shape(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, input: ArrayLike, output_size: Sequence[int] | None = None) -> jax.Array:
        """Applies the layer, as PyTorch's ``forward(input, output_size)``.

        Args:
          input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
          output_size: ``None`` (use ``output_padding``), or the requested
            output size: the spatial sizes, or the full shape. Each size must
            lie in ``[min, min + stride - 1]`` with ``min`` the size at
            ``output_padding=0``; it replaces ``output_padding``. Ints, a NumPy
            array or a concrete JAX array (also inside ``jit``), not a traced
            value.

        Returns:
          ``(N, C_out, *spatial_out)`` (unbatched: without ``N``).
        """
        weight_shape = _weight_shape(self)
        fan_in = math.prod(weight_shape[1:])
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        weight = self.param("weight", _uniform(bound), weight_shape, self.param_dtype)
        bias = (
            self.param("bias", _uniform(bound), (self.out_channels,), self.param_dtype)
            if self.bias
            else None
        )
        function = _FUNCTION_NAMES[self.num_spatial]
        x = _checks.array(function, "input", input)
        dtype = self.dtype or jnp.result_type(x, weight)
        return _conv_transpose(
            function,
            self.num_spatial,
            x.astype(dtype),
            weight.astype(dtype),
            None if bias is None else bias.astype(dtype),
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
            self.method,
            self.precision,
            output_size=output_size,
            module=type(self).__name__,
        )


class ConvTranspose1d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose1d`` as a ``flax.linen`` module.

    Attributes are PyTorch's, plus ``dtype`` (computation), ``param_dtype``,
    ``precision`` and ``method``. Parameters: ``weight`` ``(in_channels,
    out_channels / groups, kW)`` and, with ``bias=True``, ``bias``
    ``(out_channels,)``, both drawn from ``U(-b, b)`` with ``b =
    1 / sqrt(out_channels / groups * kW)`` as in PyTorch.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdeconv.torch_compat import ConvTranspose1d
      >>> layer = ConvTranspose1d(4, 2, 5, stride=2, padding=2, output_padding=1)
      >>> x = jnp.ones((3, 4, 10))
      >>> layer.init_with_output(jax.random.key(0), x)[0].shape
      (3, 2, 20)
    """

    num_spatial: ClassVar[int] = 1


class ConvTranspose2d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose2d`` as a ``flax.linen`` module.

    Attributes are PyTorch's (``in_channels``, ``out_channels``,
    ``kernel_size``, ``stride``, ``padding``, ``output_padding``, ``groups``,
    ``bias``, ``dilation``, ``padding_mode``, the last only ``"zeros"``), plus
    ``dtype`` (computation), ``param_dtype``, ``precision`` and ``method``.

    Parameters: ``weight`` ``(in_channels, out_channels / groups, kH, kW)`` and,
    with ``bias=True``, ``bias`` ``(out_channels,)``. Both are drawn from
    ``U(-b, b)`` with ``b = 1 / sqrt(fan_in)`` and ``fan_in = out_channels /
    groups * kH * kW``: PyTorch's ``kaiming_uniform_(a=sqrt(5))``, whose fan-in
    it computes from dimension 1 of the weight.

    Call: ``layer.apply(variables, input, output_size=None)``, as PyTorch's
    ``forward(input, output_size)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdeconv.torch_compat import ConvTranspose2d
      >>> layer = ConvTranspose2d(8, 6, 4, stride=2, padding=1, groups=2)
      >>> x = jnp.ones((1, 8, 7, 7))
      >>> variables = layer.init(jax.random.key(0), x)
      >>> variables["params"]["weight"].shape
      (8, 3, 4, 4)
      >>> layer.apply(variables, x).shape
      (1, 6, 14, 14)
    """

    num_spatial: ClassVar[int] = 2


class ConvTranspose3d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose3d`` as a ``flax.linen`` module.

    As :class:`ConvTranspose2d`, with ``weight`` ``(in_channels, out_channels /
    groups, kD, kH, kW)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdeconv.torch_compat import ConvTranspose3d
      >>> layer = ConvTranspose3d(2, 4, 3, stride=2, padding=1)
      >>> x = jnp.ones((1, 2, 3, 3, 3))
      >>> layer.init_with_output(jax.random.key(0), x, output_size=(6, 6, 6))[0].shape
      (1, 4, 6, 6, 6)
    """

    num_spatial: ClassVar[int] = 3
