"""Registry of lowerings and the ``method="auto"`` policy.

A lowering is three bilinear maps (see :class:`Lowering`). Adding one is one
module that defines them plus one entry in ``_LOWERINGS``.
"""

from __future__ import annotations

from jdeconv._lowerings import _lhs_dilation
from jdeconv._lowerings._interface import ConvConfig, Lowering
from jdeconv._shapes import ConvTransposeGeometry

__all__ = ["METHODS", "ConvConfig", "Lowering", "select_lowering"]

_LOWERINGS: dict[str, Lowering] = {
    "lhs_dilation": Lowering(
        name="lhs_dilation",
        transpose_conv=_lhs_dilation.transpose_conv,
        forward_conv=_lhs_dilation.forward_conv,
        kernel_grad=_lhs_dilation.kernel_grad,
    ),
}

METHODS: tuple[str, ...] = ("auto", *_LOWERINGS)


def _auto(geometry: ConvTransposeGeometry) -> str:
    del geometry
    return "lhs_dilation"


def select_lowering(function: str, method: str, geometry: ConvTransposeGeometry) -> Lowering:
    """Returns the lowering for ``method``, falling back where it can't compute.

    Raises:
      ValueError: if ``method`` is not one of :data:`METHODS`.
    """
    if method == "auto":
        method = _auto(geometry)
    lowering = _LOWERINGS.get(method) if isinstance(method, str) else None
    if lowering is None:
        raise ValueError(f"{function}: `method` must be one of {METHODS}, got {method!r}.")
    while not lowering.supports(geometry) and lowering.fallback is not None:
        lowering = _LOWERINGS[lowering.fallback]
    return lowering
