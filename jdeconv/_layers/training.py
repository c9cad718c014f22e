"""Training helpers: the regularization loss and the constraint projection.

Both take linen or NNX objects. ``flax.nnx`` (which itself imports optax) is
not imported here: an NNX object can only exist once ``flax.nnx`` is loaded,
so :func:`_loaded_nnx` tells whether to look for one. ``optax`` is imported
by :func:`apply_constraints` alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdeconv._layers import _config, _penalties
from jdeconv._layers.linen import LINEN_LAYERS, FunctionalConvTranspose

if TYPE_CHECKING:
    import optax

Path = tuple[Any, ...]


def _loaded_nnx() -> ModuleType | None:
    """``flax.nnx`` if it is loaded, else ``None`` (then no NNX object exists)."""
    return sys.modules.get("flax.nnx")


def regularization_loss(losses: Any) -> jax.Array:
    """Sums the regularization penalties that jdeconv's layers sowed.

    Args:
      losses: one of

        - linen: the variables or the mutable state returned by
          ``model.apply(variables, x, mutable=["losses"])``; the ``"losses"``
          collection in it is summed (a mapping without one sums to 0);
        - NNX: the ``nnx.State`` returned by
          ``nnx.capture(model, jdeconv.nnx.RegularizationLoss)(x)``, or a module
          holding :class:`jdeconv.nnx.RegularizationLoss` variables.

    Returns:
      The total penalty, a scalar: the sum of what ``tf_keras`` reports in
      ``layer.losses`` for the same weights and inputs.

    Raises:
      TypeError: if ``losses`` is none of the above.

    Example:
      >>> import jax, jax.numpy as jnp, jdeconv
      >>> layer = jdeconv.Conv2DTranspose(2, 3, kernel_regularizer="l2")
      >>> x = jnp.ones((1, 4, 4, 1))
      >>> variables = layer.init(jax.random.key(0), x)
      >>> y, state = layer.apply({"params": variables["params"]}, x, mutable=["losses"])
      >>> penalty = jdeconv.regularization_loss(state)
      >>> bool(jnp.allclose(penalty, 0.01 * jnp.sum(variables["params"]["kernel"] ** 2)))
      True
    """
    nnx = _loaded_nnx()
    if nnx is not None and isinstance(losses, nnx.Module):
        from jdeconv._layers.nnx_layers import RegularizationLoss

        tree: Any = nnx.state(losses, RegularizationLoss)
    elif nnx is not None and isinstance(losses, nnx.State):
        tree = losses
    elif isinstance(losses, Mapping):
        tree = losses.get(_penalties.LOSSES_COLLECTION, {})
    else:
        raise TypeError(
            "regularization_loss: `losses` must be the linen variables or state "
            "holding a 'losses' collection, an nnx.State of RegularizationLoss "
            f"or an nnx.Module, got {type(losses).__name__}."
        )
    leaves = jax.tree.leaves(tree)
    total = jnp.zeros((), jnp.result_type(*leaves) if leaves else jnp.float32)
    for leaf in leaves:
        total = total + jnp.sum(leaf)
    return total


def _path_key(entry: Any) -> Any:
    for attribute in ("key", "name", "idx"):
        if hasattr(entry, attribute):
            return getattr(entry, attribute)
    return entry


def _normalize(path: Path) -> Path:
    return tuple(_path_key(entry) for entry in path)


def _add(table: dict[Path, Callable], prefix: Path, config: _config.LayerConfig) -> None:
    if not config.trainable:
        return  # Frozen variables live outside the optimized params.
    for name, constraint in (
        ("kernel", config.kernel_constraint),
        ("bias", config.bias_constraint if config.use_bias else None),
    ):
        if constraint is not None:
            table.setdefault((*prefix, name), constraint)


def _linen_table(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[Path, Callable]:
    table: dict[Path, Callable] = {}

    def interceptor(next_fun, call_args, call_kwargs, context):
        layer = context.module
        if context.method_name == "__call__" and isinstance(layer, LINEN_LAYERS):
            if isinstance(layer, FunctionalConvTranspose):
                config = call_args[1] if len(call_args) > 1 else call_kwargs["config"]
            else:
                config = layer.config
            _add(table, tuple(layer.path), config)
        return next_fun(*call_args, **call_kwargs)

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda *a: module.init(jax.random.key(0), *a, **kwargs), *args)
    return table


def _nnx_table(module: Any) -> dict[Path, Callable]:
    from flax import nnx

    from jdeconv._layers.nnx_layers import NNX_LAYERS

    table: dict[Path, Callable] = {}
    for path, layer in nnx.iter_modules(module):
        if isinstance(layer, NNX_LAYERS):
            _add(table, tuple(path), layer.config)
    return table


def _tree_table(constraints: Any) -> dict[Path, Callable]:
    flat, _ = jax.tree_util.tree_flatten_with_path(
        constraints, is_leaf=lambda x: x is None or callable(x)
    )
    table = {}
    for path, leaf in flat:
        if leaf is None:
            continue
        if not callable(leaf):
            raise TypeError(
                f"apply_constraints: every leaf of the constraint tree must be None or "
                f"a callable, got {type(leaf).__name__} at {jax.tree_util.keystr(path)}."
            )
        table[_normalize(path)] = leaf
    return table


def apply_constraints(
    model_or_constraints: Any, *example_args: Any, **example_kwargs: Any
) -> optax.GradientTransformation:
    """An optax transformation that applies the layers' weight constraints.

    Keras applies a constraint to a variable after each optimizer update. This
    transformation does the same inside an optax chain: it replaces each
    constrained update ``u`` of a parameter ``p`` by ``project(p + u) - p``, so
    that ``optax.apply_updates`` yields the projected value. Put it last in the
    chain: ``optax.chain(optax.adam(1e-3), jdeconv.apply_constraints(model, x))``.
    Its ``update`` needs ``params``.

    Args:
      model_or_constraints: one of

        - a linen module, followed by example arguments for ``model.init``
          (arrays or ``jax.ShapeDtypeStruct``; keyword arguments are passed as
          they are). The model is traced abstractly once to find its layers,
          those of :mod:`jdeconv.layers` included;
        - an NNX module, whose layers are found by walking it; the optimizer's
          parameters are then ``nnx.state(model, nnx.Param)``, as in
          ``nnx.Optimizer(model, tx, wrt=nnx.Param)``;
        - a nested mapping holding constraint callables (or ``None``) at the
          paths of the parameters they constrain, e.g.
          ``{"decoder": {"kernel": jdeconv.constraints.NonNeg()}}``; parameters
          at other paths are left alone.
      *example_args: the linen model's example positional arguments.
      **example_kwargs: the linen model's other keyword arguments.

    Returns:
      An ``optax.GradientTransformation`` with an empty state. This function
      needs ``optax`` installed; the rest of jdeconv does not.

    Raises:
      TypeError: for a linen module without example arguments, or a tree
        leaf that is not callable.

    Example:
      >>> import jax, jax.numpy as jnp, optax, jdeconv
      >>> layer = jdeconv.Conv2DTranspose(2, 3, kernel_constraint="non_neg")
      >>> x = jnp.ones((1, 4, 4, 1))
      >>> params = layer.init(jax.random.key(0), x)["params"]
      >>> tx = optax.chain(optax.sgd(0.1), jdeconv.apply_constraints(layer, x))
      >>> grads = jax.grad(lambda p: layer.apply({"params": p}, x).sum())(params)
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> bool((optax.apply_updates(params, updates)["kernel"] >= 0).all())
      True
    """
    import optax

    if isinstance(model_or_constraints, nn.Module):
        if not example_args and not example_kwargs:
            raise TypeError(
                "apply_constraints: a linen module needs example arguments for "
                "`model.init`, e.g. apply_constraints(model, x)."
            )
        table = _linen_table(model_or_constraints, example_args, example_kwargs)
    elif (nnx := _loaded_nnx()) is not None and isinstance(model_or_constraints, nnx.Module):
        table = _nnx_table(model_or_constraints)
    else:
        table = _tree_table(model_or_constraints)

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError(
                "apply_constraints: `params` must be passed to update(updates, state, params)."
            )

        def project(path: Path, update: Any, param: Any) -> Any:
            key = _normalize(path)
            constraint = table.get(key)
            if constraint is None and key and isinstance(path[-1], jax.tree_util.GetAttrKey):
                constraint = table.get(key[:-1])  # an nnx.Variable's value
            if constraint is None or update is None:
                return update
            param = jnp.asarray(param)
            target = constraint((param + update).astype(param.dtype))
            return (target - param).astype(jnp.asarray(update).dtype)

        return jax.tree_util.tree_map_with_path(project, updates, params), state

    return optax.GradientTransformation(init_fn, update_fn)
