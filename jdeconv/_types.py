"""The types of jdeconv's arguments as users spell them, declared once.

The checkers (:mod:`jdeconv._checks` and the framework rules) turn each into
its canonical form: a tuple of ints per spatial dimension, a callable, a NumPy
dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

import jax

#: An int for every spatial dimension, or one per dimension.
IntOrSequence: TypeAlias = int | Sequence[int]
#: ``(before, after)`` per spatial dimension.
Pairs: TypeAlias = Sequence[tuple[int, int]]
#: TensorFlow's ``padding``: ``"SAME"``, ``"VALID"`` or explicit pairs.
Padding: TypeAlias = str | Sequence[Sequence[int]]
#: A Keras activation: a name, a function or ``None``.
ActivationLike: TypeAlias = str | Callable[[jax.Array], jax.Array] | None
#: A Keras or Flax initializer: a name, an initializer or ``None``.
InitializerLike: TypeAlias = str | Callable[..., jax.Array] | None
#: A Keras regularizer: a name, a penalty function or ``None``.
RegularizerLike: TypeAlias = str | Callable[[jax.Array], jax.Array] | None
#: A Keras constraint: a name, a projection or ``None``.
ConstraintLike: TypeAlias = str | Callable[[jax.Array], jax.Array] | None
