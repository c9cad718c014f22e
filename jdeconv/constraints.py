"""Keras' weight constraints, for jdeconv's layers.

A constraint is any callable ``project(w) -> w'`` of the same shape. The layers
take one for ``kernel_constraint`` and ``bias_constraint``, or a Keras name:
``"max_norm"``, ``"non_neg"``, ``"unit_norm"`` or ``"min_max_norm"``, built
with Keras' defaults. As in Keras, a constraint is applied to the variable
after each optimizer update, not in the forward pass: chain
:func:`jdeconv.apply_constraints` after the optimizer.

The projections are Keras' own formulas, applied to the kernel in TensorFlow's
layout ``[*kernel_size, filters, in_channels]`` with Keras' default
``axis=0``: for a transposed-convolution kernel that normalises along the first
spatial axis, exactly as a ``tf_keras`` ``Conv2DTranspose`` does. Pass
``axis=(0, 1, 2)`` (2-D) to constrain each input channel's whole filter, as the
Keras documentation suggests for convolutions.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jdeconv import _keras_names

Constraint = Callable[[jax.Array], jax.Array]

__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "get",
    "max_norm",
    "min_max_norm",
    "non_neg",
    "unit_norm",
]

# Keras' backend.epsilon().
EPSILON = 1e-7

Axis = int | tuple[int, ...]


def _check_axis(cls: str, axis: int | Sequence[int]) -> Axis:
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return int(axis)
    if (
        isinstance(axis, Sequence)
        and not isinstance(axis, str)
        and all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis)
    ):
        return tuple(int(a) for a in axis)
    raise TypeError(f"{cls}: `axis` must be an int or a sequence of ints, got {axis!r}.")


def _check_number(cls: str, argument: str, value: object) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{cls}: `{argument}` must be a number, got {value!r}.")
    return float(value)


def _norms(w: jax.Array, axis: Axis) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(w), axis=axis, keepdims=True))


@dataclasses.dataclass(frozen=True)
class MaxNorm:
    """Keras' ``MaxNorm``: rescales slices whose L2 norm exceeds ``max_value``.

    ``w * clip(n, 0, max_value) / (epsilon + n)`` with ``n`` the L2 norms along
    ``axis`` (defaults ``max_value=2``, ``axis=0``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import constraints
      >>> w = constraints.MaxNorm(1.0)(jnp.array([[3.0], [4.0]]))
      >>> [round(float(v), 4) for v in w.ravel()]
      [0.6, 0.8]
    """

    max_value: float = 2.0
    axis: Axis = 0

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "max_value", _check_number(name, "max_value", self.max_value))
        object.__setattr__(self, "axis", _check_axis(name, self.axis))

    def __call__(self, w: ArrayLike) -> jax.Array:
        """Returns the projection of ``w``."""
        w = jnp.asarray(w)
        norms = _norms(w, self.axis)
        desired = jnp.clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms))


@dataclasses.dataclass(frozen=True)
class NonNeg:
    """Keras' ``NonNeg``: zeroes the negative weights.

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import constraints
      >>> constraints.NonNeg()(jnp.array([-1.0, 2.0])).tolist()
      [-0.0, 2.0]
    """

    def __call__(self, w: ArrayLike) -> jax.Array:
        """Returns the projection of ``w``."""
        w = jnp.asarray(w)
        return w * (w >= 0).astype(w.dtype)


@dataclasses.dataclass(frozen=True)
class UnitNorm:
    """Keras' ``UnitNorm``: ``w / (epsilon + n)``, ``n`` the L2 norms along ``axis``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import constraints
      >>> w = constraints.UnitNorm()(jnp.array([[3.0], [4.0]]))
      >>> [round(float(v), 4) for v in w.ravel()]
      [0.6, 0.8]
    """

    axis: Axis = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "axis", _check_axis(type(self).__name__, self.axis))

    def __call__(self, w: ArrayLike) -> jax.Array:
        """Returns the projection of ``w``."""
        w = jnp.asarray(w)
        return w / (EPSILON + _norms(w, self.axis))


@dataclasses.dataclass(frozen=True)
class MinMaxNorm:
    """Keras' ``MinMaxNorm``: moves the L2 norms along ``axis`` into a range.

    ``w * (rate * clip(n, min_value, max_value) + (1 - rate) * n) / (epsilon + n)``
    (defaults ``min_value=0``, ``max_value=1``, ``rate=1``, ``axis=0``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import constraints
      >>> w = constraints.MinMaxNorm(2.0, 3.0)(jnp.array([[0.3], [0.4]]))
      >>> [round(float(v), 4) for v in w.ravel()]
      [1.2, 1.6]
    """

    min_value: float = 0.0
    max_value: float = 1.0
    rate: float = 1.0
    axis: Axis = 0

    def __post_init__(self) -> None:
        name = type(self).__name__
        for argument in ("min_value", "max_value", "rate"):
            object.__setattr__(
                self, argument, _check_number(name, argument, getattr(self, argument))
            )
        object.__setattr__(self, "axis", _check_axis(name, self.axis))

    def __call__(self, w: ArrayLike) -> jax.Array:
        """Returns the projection of ``w``."""
        w = jnp.asarray(w)
        norms = _norms(w, self.axis)
        desired = (
            self.rate * jnp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        )
        return w * (desired / (EPSILON + norms))


# Keras' lower-case aliases.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_NAMES: dict[str, Callable[[], Constraint]] = {
    "max_norm": MaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
    "min_max_norm": MinMaxNorm,
    "maxnorm": MaxNorm,
    "nonneg": NonNeg,
    "unitnorm": UnitNorm,
    "MaxNorm": MaxNorm,
    "NonNeg": NonNeg,
    "UnitNorm": UnitNorm,
    "MinMaxNorm": MinMaxNorm,
}


def get(
    identifier: str | Constraint | None,
    *,
    function: str = "constraints.get",
    argument: str = "identifier",
) -> Constraint | None:
    """Resolves a Keras constraint name, or passes a callable through.

    Args:
      identifier: ``None``, a callable ``project(w)``, or one of
        ``"max_norm"``, ``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"``
        (Keras' aliases and class names are accepted too), built with Keras'
        defaults.
      function: the public function resolving the name, for error messages.
      argument: the argument holding the name, for error messages.

    Returns:
      The constraint, or ``None``.

    Raises:
      TypeError: if ``identifier`` is neither ``None``, a string nor callable.
      ValueError: on an unknown name.

    Example:
      >>> from jdeconv import constraints
      >>> constraints.get("max_norm")
      MaxNorm(max_value=2.0, axis=0)
    """
    return _keras_names.resolve_optional(
        identifier, _NAMES, function=function, argument=argument, signature="project(w)"
    )
