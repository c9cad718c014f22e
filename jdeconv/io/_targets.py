"""The receiving side: Flax variables, grouped into modules, in creation order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
from flax import traverse_util
from flax.core import unfreeze

from jdeconv._layers._config import FROZEN_COLLECTION

# Parameters live in "params", or in the layers' frozen collection when
# `trainable=False`; collections that hold weights, in that order. Others
# (e.g. sown losses) pass through.
PARAMS = ("params", FROZEN_COLLECTION)
WEIGHT_COLLECTIONS = (*PARAMS, "batch_stats")


@dataclasses.dataclass
class Module:
    """One target module: its variables, by ``(collection, name)``."""

    path: tuple[str, ...]
    leaves: dict[tuple[str, str], Any]  # (collection, name) -> template leaf

    @property
    def name(self) -> str:
        return "/".join(self.path)


def modules(function: str, target: Any) -> tuple[dict[str, dict], list[Module]]:
    """``target`` flattened per collection (new dicts), and its modules in order.

    Raises:
      TypeError: if ``target`` is not Flax variables.
    """
    if not isinstance(target, Mapping) or "params" not in target:
        raise TypeError(
            f"{function}: `target` must be Flax variables with a 'params' collection, "
            f"as returned by `model.init(...)` (or `jax.eval_shape` of it), got "
            f"{type(target).__name__}"
            + (f" with keys {list(target)[:8]}." if isinstance(target, Mapping) else ".")
        )
    flat = {
        collection: traverse_util.flatten_dict(unfreeze(variables))
        for collection, variables in target.items()
    }
    found: dict[tuple[str, ...], Module] = {}
    for collection in WEIGHT_COLLECTIONS:
        for key, leaf in flat.get(collection, {}).items():
            module = found.setdefault(key[:-1], Module(key[:-1], {}))
            module.leaves[(collection, key[-1])] = leaf
    return flat, list(found.values())


def abstract_variables(module: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The shapes and dtypes of ``module.init(key, *args, **kwargs)``, in creation order.

    Nothing is computed: this is ``jax.eval_shape`` of ``init``. Unlike the
    result of ``jax.eval_shape`` or ``jax.jit(module.init)``, whose entries
    are sorted by name, each collection here lists its modules in the order
    they are first called, which is what matching by order relies on. (An
    eager ``module.init(...)`` keeps that order too.)

    Args:
      module: a ``flax.linen`` module.
      *args: the arguments of ``module.init`` after the key (e.g. a sample
        input; arrays or ``jax.ShapeDtypeStruct``).
      **kwargs: its keyword arguments.

    Returns:
      Variables of ``jax.ShapeDtypeStruct`` leaves, to pass as ``target``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> class Head(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return nn.Dense(2, name="b")(nn.Dense(3, name="a")(x))
      >>> list(abstract_variables(Head(), jnp.ones((1, 4)))["params"])
      ['a', 'b']
    """
    order: dict[tuple[str, ...], None] = {}

    def record(call: Callable, call_args: Any, call_kwargs: Any, context: Any) -> Any:
        if context.module.scope is not None:  # Unbound modules (helpers) have no path.
            order.setdefault(tuple(context.module.path), None)
        return call(*call_args, **call_kwargs)

    with nn.intercept_methods(record):
        shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
    rank = {path: position for position, path in enumerate(order)}
    result = {}
    for collection, tree in unfreeze(shapes).items():
        flat = traverse_util.flatten_dict(tree)
        keys = sorted(flat, key=lambda key: rank.get(key[:-1], len(rank)))
        result[collection] = traverse_util.unflatten_dict({key: flat[key] for key in keys})
    return result
