"""Resolution of Keras names, shared by the initializers, regularizers and constraints.

Each of those modules maps Keras' names to factories that build the object with
Keras' defaults, passes callables through, and refuses anything else with an
error that names the public function, the argument, the rule and the value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


def resolve(
    identifier: str | T,
    factories: Mapping[str, Callable[[], T]],
    *,
    function: str,
    argument: str,
    name_rule: str,
    type_rule: str,
) -> T:
    """Builds the object a Keras name stands for, or passes a callable through.

    Args:
      identifier: a key of ``factories``, or a callable.
      factories: Keras' names (aliases included) and what builds each.
      function: the public function resolving the name, for error messages.
      argument: the argument holding the name, for error messages.
      name_rule: what ``argument`` must be, said when a string is unknown.
      type_rule: what ``argument`` must be, said when it is of another kind.

    Returns:
      ``factories[identifier]()``, or ``identifier`` itself if it is callable.

    Raises:
      ValueError: on a string that is not a key of ``factories``.
      TypeError: if ``identifier`` is neither a string nor callable.
    """
    if isinstance(identifier, str):
        factory = factories.get(identifier)
        if factory is None:
            raise ValueError(f"{function}: `{argument}` must be {name_rule}, got {identifier!r}.")
        return factory()
    if callable(identifier):
        return identifier
    raise TypeError(
        f"{function}: `{argument}` must be {type_rule}, "
        f"got {type(identifier).__name__} {identifier!r}."
    )


def resolve_optional(
    identifier: str | T | None,
    factories: Mapping[str, Callable[[], T]],
    *,
    function: str,
    argument: str,
    signature: str,
) -> T | None:
    """:func:`resolve` where ``None`` passes through too (regularizers, constraints).

    Args:
      identifier: ``None``, a key of ``factories``, or a callable.
      factories: Keras' names (aliases included) and what builds each.
      function: the public function resolving the name, for error messages.
      argument: the argument holding the name, for error messages.
      signature: how the callable is called, such as ``"penalty(x)"``.

    Returns:
      ``None``, ``factories[identifier]()``, or ``identifier`` itself.
    """
    if identifier is None:
        return None
    names = tuple(factories)
    return resolve(
        identifier,
        factories,
        function=function,
        argument=argument,
        name_rule=f"a callable or one of {names}",
        type_rule=f"None, a callable {signature} or one of {names}",
    )
