"""The reference lowering: one ``conv_general_dilated`` with ``lhs_dilation``.

The transposed convolution is a stride-1 convolution of the stride-dilated
input with the spatially flipped kernel, in and out channels swapped. XLA maps
this to cuDNN's backward-data kernels on GPU and to native code on TPU.

Its two adjoints are written out explicitly rather than left to autodiff (see
:mod:`jdeconv._primitives`):

* the input gradient is the forward strided, dilated convolution;
* the kernel gradient is a convolution that contracts over the batch, with
  window strides equal to the dilation and kernel dilation equal to the stride,
  the shape of TensorFlow's ``Conv2DBackpropFilter``.
"""

from __future__ import annotations

import jax
from jax import lax

from jdeconv._lowerings import _xla_workarounds
from jdeconv._lowerings._interface import ConvConfig
from jdeconv._shapes import ConvTransposeGeometry


def lhs_dilated_padding(geometry: ConvTransposeGeometry) -> tuple[tuple[int, int], ...]:
    """Padding of the stride-dilated input for the flipped-kernel convolution.

    ``(k_eff - 1 - before, k_eff - 1 - after)`` per dimension; negative
    entries crop.
    """
    return tuple(
        (k_eff - 1 - before, k_eff - 1 - after)
        for k_eff, (before, after) in zip(geometry.effective_kernel_size, geometry.padding)
    )


def transpose_conv(x: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    geometry = config.geometry
    n = geometry.num_spatial
    kernel = _flip_spatial(_transposed_kernel(w, geometry.groups), n)
    act = _activation_spec(geometry)
    return _xla_workarounds.conv_general_dilated(
        x,
        kernel,
        window_strides=(1,) * n,
        padding=lhs_dilated_padding(geometry),
        lhs_dilation=geometry.strides,
        rhs_dilation=geometry.dilations,
        dimension_numbers=_dimension_numbers(
            act, _kernel_spec(geometry, out_axis=n + 1, in_axis=n), act
        ),
        feature_group_count=geometry.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
        platform=config.platform,
    )


def forward_conv(g: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    geometry = config.geometry
    n = geometry.num_spatial
    act = _activation_spec(geometry)
    return _xla_workarounds.conv_general_dilated(
        g,
        w,
        window_strides=geometry.strides,
        padding=geometry.padding,
        rhs_dilation=geometry.dilations,
        dimension_numbers=_dimension_numbers(
            act, _kernel_spec(geometry, out_axis=n + 1, in_axis=n), act
        ),
        feature_group_count=geometry.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
        platform=config.platform,
    )


def kernel_grad(x: jax.Array, g: jax.Array, config: ConvConfig) -> jax.Array:
    geometry = config.geometry
    n = geometry.num_spatial
    swapped = _swapped_activation_spec(geometry)
    return _xla_workarounds.conv_general_dilated(
        g,
        x,
        window_strides=geometry.dilations,
        padding=geometry.padding,
        rhs_dilation=geometry.strides,
        dimension_numbers=_dimension_numbers(swapped, swapped, (n, n + 1, *range(n))),
        batch_group_count=geometry.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
        platform=config.platform,
    )


def _activation_spec(geometry: ConvTransposeGeometry) -> tuple[int, ...]:
    """(batch, feature, *spatial) axis positions of an input or output."""
    n = geometry.num_spatial
    if geometry.channels_last:
        return (0, n + 1, *range(1, n + 1))
    return (0, 1, *range(2, n + 2))


def _swapped_activation_spec(geometry: ConvTransposeGeometry) -> tuple[int, ...]:
    """Like :func:`_activation_spec` with the batch and feature roles swapped.

    Used where a convolution contracts over the batch axis (kernel gradients).
    """
    batch, feature, *spatial = _activation_spec(geometry)
    return (feature, batch, *spatial)


def _kernel_spec(
    geometry: ConvTransposeGeometry, *, out_axis: int, in_axis: int
) -> tuple[int, ...]:
    """(out-feature, in-feature, *spatial) positions of a ``[*k, A, B]`` kernel."""
    return (out_axis, in_axis, *range(geometry.num_spatial))


def _dimension_numbers(
    lhs: tuple[int, ...], rhs: tuple[int, ...], out: tuple[int, ...]
) -> lax.ConvDimensionNumbers:
    return lax.ConvDimensionNumbers(lhs_spec=lhs, rhs_spec=rhs, out_spec=out)


def _transposed_kernel(filters: jax.Array, groups: int) -> jax.Array:
    """``[*k, C_out / G, C_in]`` to the forward kernel ``[*k, C_in / G, C_out]``.

    The result is the kernel of a grouped convolution from ``C_in`` to
    ``C_out`` features, with both feature axes ordered group-major. The spatial
    axes are not flipped here.
    """
    *spatial, out_per_group, in_channels = filters.shape
    n = len(spatial)
    in_per_group = in_channels // groups
    grouped = filters.reshape(*spatial, out_per_group, groups, in_per_group)
    swapped = grouped.transpose(*range(n), n + 2, n + 1, n)
    return swapped.reshape(*spatial, in_per_group, groups * out_per_group)


def _flip_spatial(kernel: jax.Array, num_spatial: int) -> jax.Array:
    return lax.rev(kernel, tuple(range(num_spatial)))
