"""Keras' weight regularizers, for jdeconv's layers.

A regularizer is any callable ``penalty(x) -> scalar``. The layers take one
for ``kernel_regularizer``, ``bias_regularizer`` and ``activity_regularizer``,
or a Keras name: ``"l1"`` (``L1(0.01)``), ``"l2"`` (``L2(0.01)``) or
``"l1_l2"`` (``L1L2(0.01, 0.01)``), as ``tf_keras.regularizers.get`` resolves
them. The class name ``"L1L2"`` gives ``L1L2()``, whose factors are both 0, as
in Keras.

The layers sow the penalties into the ``"losses"`` collection (linen) or as
:class:`jdeconv.nnx.RegularizationLoss` variables (NNX), and
:func:`jdeconv.regularization_loss` sums them. The values equal what
``tf_keras`` reports in ``layer.losses`` for the same weights and input: the
activity penalty is divided by the batch size, as Keras does.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jdeconv import _keras_names

Regularizer = Callable[[jax.Array], jax.Array]

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "l1", "l1_l2", "l2"]


def _check_factor(cls: str, argument: str, value: object) -> float:
    number = float(value) if isinstance(value, numbers.Real) else float("nan")
    if isinstance(value, bool) or not 0 <= number < float("inf"):
        raise ValueError(f"{cls}: `{argument}` must be a finite number >= 0, got {value!r}.")
    return number


def _accumulation_dtype(x: jax.Array) -> jnp.dtype:
    # Sum in at least float32: a bfloat16 sum of a large kernel loses digits.
    return jnp.promote_types(x.dtype, jnp.float32)


@dataclasses.dataclass(frozen=True)
class L1L2:
    """``l1 * sum(|x|) + l2 * sum(x ** 2)``, Keras' ``L1L2`` (defaults 0 and 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import regularizers
      >>> float(regularizers.L1L2(l1=0.5, l2=0.25)(jnp.array([1.0, -2.0])))
      2.75
    """

    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", _check_factor(type(self).__name__, "l1", self.l1))
        object.__setattr__(self, "l2", _check_factor(type(self).__name__, "l2", self.l2))

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Returns the penalty of ``x``, a scalar of at least float32 precision."""
        x = jnp.asarray(x)
        x = x.astype(_accumulation_dtype(x))
        penalty = jnp.zeros((), x.dtype)
        if self.l1:
            penalty = penalty + self.l1 * jnp.sum(jnp.abs(x))
        if self.l2:
            penalty = penalty + self.l2 * jnp.sum(jnp.square(x))
        return penalty


@dataclasses.dataclass(frozen=True)
class L1(L1L2):
    """``l1 * sum(|x|)``, Keras' ``L1`` (default ``l1=0.01``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import regularizers
      >>> round(float(regularizers.L1()(jnp.array([1.0, -3.0]))), 6)
      0.04
    """

    l1: float = 0.01
    l2: float = dataclasses.field(default=0.0, init=False)


@dataclasses.dataclass(frozen=True)
class L2(L1L2):
    """``l2 * sum(x ** 2)``, Keras' ``L2`` (default ``l2=0.01``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv import regularizers
      >>> round(float(regularizers.L2()(jnp.array([1.0, -3.0]))), 6)
      0.1
    """

    l1: float = dataclasses.field(default=0.0, init=False)
    l2: float = 0.01


# Keras' lower-case aliases.
l1 = L1
l2 = L2


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Keras' ``l1_l2``: an :class:`L1L2` whose factors default to 0.01.

    Example:
      >>> from jdeconv import regularizers
      >>> regularizers.l1_l2()
      L1L2(l1=0.01, l2=0.01)
    """
    return L1L2(l1=l1, l2=l2)


_NAMES: dict[str, Callable[[], Regularizer]] = {
    "l1": L1,
    "l2": L2,
    "l1_l2": l1_l2,
    "L1": L1,
    "L2": L2,
    "L1L2": L1L2,
}


def get(
    identifier: str | Regularizer | None,
    *,
    function: str = "regularizers.get",
    argument: str = "identifier",
) -> Regularizer | None:
    """Resolves a Keras regularizer name, or passes a callable through.

    Args:
      identifier: ``None``, a callable ``penalty(x)``, or one of ``"l1"``,
        ``"l2"``, ``"l1_l2"`` (and Keras' class names ``"L1"``, ``"L2"``,
        ``"L1L2"``), built with the defaults Keras gives each name.
      function: the public function resolving the name, for error messages.
      argument: the argument holding the name, for error messages.

    Returns:
      The regularizer, or ``None``.

    Raises:
      TypeError: if ``identifier`` is neither ``None``, a string nor callable.
      ValueError: on an unknown name.

    Example:
      >>> from jdeconv import regularizers
      >>> regularizers.get("l2")
      L2(l1=0.0, l2=0.01)
    """
    return _keras_names.resolve_optional(
        identifier, _NAMES, function=function, argument=argument, signature="penalty(x)"
    )
