"""What a lowering is: three bilinear maps that share one geometry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from jdeconv._shapes import ConvTransposeGeometry


@dataclasses.dataclass(frozen=True)
class ConvConfig:
    """Everything static about one call of a map, besides its operands.

    Attributes:
      geometry: the checked geometry.
      precision: passed to XLA's convolutions and dot products.
      preferred_element_type: the result dtype, or ``None`` for the operands'.
      partitioned: whether the operands may be split over several devices,
        so that the lowerings emit forms XLA partitions along any axis (see
        :func:`jdeconv._primitives.partitioned`).
      platform: the platform being compiled for, ``"cpu"`` or ``"other"``.
    """

    geometry: ConvTransposeGeometry
    precision: Any = None
    preferred_element_type: Any = None
    partitioned: bool = False
    platform: str = "other"


BilinearMap = Callable[[jax.Array, jax.Array, ConvConfig], jax.Array]


@dataclasses.dataclass(frozen=True)
class Lowering:
    """One way to compute a transposed convolution and its two adjoints.

    With ``x`` the input ``(N, *I, C_in)``, ``w`` the filters
    ``[*k, C_out / G, C_in]`` and ``g`` an output-shaped array
    ``(N, *O, C_out)`` (channels-first likewise), each map is bilinear:

    Attributes:
      name: the ``method`` string that selects it.
      transpose_conv: ``(x, w) -> y``, the transposed convolution itself.
      forward_conv: ``(g, w) -> x``-shaped, the forward strided convolution,
        which is the adjoint of ``transpose_conv`` in ``x``.
      kernel_grad: ``(x, g) -> w``-shaped, the adjoint of ``transpose_conv`` in
        ``w``.
      supports: whether this lowering can compute a geometry; where it cannot,
        ``fallback`` names the method used instead.
      fallback: the method to use where ``supports`` is false.
    """

    name: str
    transpose_conv: BilinearMap
    forward_conv: BilinearMap
    kernel_grad: BilinearMap
    supports: Callable[[ConvTransposeGeometry], bool] = lambda geometry: True
    fallback: str | None = None
