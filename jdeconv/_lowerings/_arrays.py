"""Array helpers every lowering shares: zero padding and the channels-last layout."""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
from jax import lax

from jdeconv._shapes import ConvTransposeGeometry


def pad_axes(
    a: jax.Array, axes: Iterable[int], pads: Iterable[tuple[int, int] | tuple[int, int, int]]
) -> jax.Array:
    """``a`` zero-padded along ``axes``, each by ``(low, high)`` or ``(low, high, interior)``.

    Entries may be negative (a crop), as in ``lax.pad``; other axes are left
    alone.

    Example:
      >>> import jax.numpy as jnp
      >>> pad_axes(jnp.ones((1, 2)), [1], [(1, 0, 1)]).tolist()
      [[0.0, 1.0, 0.0, 1.0]]
    """
    config = [(0, 0, 0)] * a.ndim
    for axis, pad in zip(axes, pads, strict=True):
        low, high, *interior = pad
        config[axis] = (low, high, interior[0] if interior else 0)
    return lax.pad(a, jnp.zeros((), a.dtype), config)


def channels_last(a: jax.Array, geometry: ConvTransposeGeometry) -> jax.Array:
    """An input or output of ``geometry`` with its feature axis last."""
    return a if geometry.channels_last else jnp.moveaxis(a, 1, -1)
