"""Pieces shared by the lowerings: dimension numbers and kernel regrouping."""

from __future__ import annotations

import jax
from jax import lax

from jdeconv._shapes import ConvTransposeGeometry


def activation_spec(geometry: ConvTransposeGeometry) -> tuple[int, ...]:
    """(batch, feature, *spatial) axis positions of an input or output."""
    n = geometry.num_spatial
    if geometry.channels_last:
        return (0, n + 1, *range(1, n + 1))
    return (0, 1, *range(2, n + 2))


def swapped_activation_spec(geometry: ConvTransposeGeometry) -> tuple[int, ...]:
    """Like :func:`activation_spec` with the batch and feature roles swapped.

    Used where a convolution contracts over the batch axis (kernel gradients).
    """
    batch, feature, *spatial = activation_spec(geometry)
    return (feature, batch, *spatial)


def kernel_spec(geometry: ConvTransposeGeometry, *, out_axis: int, in_axis: int) -> tuple[int, ...]:
    """(out-feature, in-feature, *spatial) positions of a ``[*k, A, B]`` kernel."""
    return (out_axis, in_axis, *range(geometry.num_spatial))


def dimension_numbers(
    lhs: tuple[int, ...], rhs: tuple[int, ...], out: tuple[int, ...]
) -> lax.ConvDimensionNumbers:
    return lax.ConvDimensionNumbers(lhs_spec=lhs, rhs_spec=rhs, out_spec=out)


def transposed_kernel(filters: jax.Array, groups: int) -> jax.Array:
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


def flip_spatial(kernel: jax.Array, num_spatial: int) -> jax.Array:
    return lax.rev(kernel, tuple(range(num_spatial)))
