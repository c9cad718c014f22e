"""The matching: which source layer fills which target module, in which layout.

:func:`load` takes a reader's :class:`~jdeconv.io._contents.Contents` and the
target variables. It plans every copy first (names, layouts, shapes, dtypes)
and builds the result only when the whole plan holds, so that a failed load
changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jdeconv import convert
from jdeconv.io import _kinds
from jdeconv.io._contents import KERAS, KERAS_UNNAMED, TORCH, Contents, Layer
from jdeconv.io._dtypes import DtypeError, cast
from jdeconv.io._errors import SourceError
from jdeconv.io._targets import PARAMS, Module, modules

# Role of each named source variable; None: not a model weight, skipped.
_ROLES: dict[str, dict[str, str | None]] = {
    TORCH: {
        "weight": "weight",
        "bias": "bias",
        "running_mean": "mean",
        "running_var": "var",
        "num_batches_tracked": None,
    },
    KERAS: {
        "kernel": "weight",
        "_kernel": "weight",  # Keras 3 layers in a TensorFlow checkpoint.
        "embeddings": "weight",
        "_embeddings": "weight",
        "gamma": "weight",
        "bias": "bias",
        "beta": "bias",
        "moving_mean": "mean",
        "moving_variance": "var",
    },
}

# Target parameters that take each role, in order of preference, and the
# order in which unnamed (Keras 3) variables fill a module's parameters.
_TARGETS: dict[str, tuple[tuple[str, str], ...]] = {
    "weight": tuple(
        (collection, name)
        for name in ("kernel", "weight", "scale", "embedding")
        for collection in PARAMS
    ),
    "bias": tuple((collection, "bias") for collection in PARAMS),
    "mean": (("batch_stats", "mean"),),
    "var": (("batch_stats", "var"),),
}
_UNNAMED_ORDER = (*_TARGETS["weight"], *_TARGETS["bias"], *_TARGETS["mean"], *_TARGETS["var"])

# How many names of each kind a report's text shows (its fields hold them all).
_SHOWN = 10


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a load did with the source's entries and the target's variables.

    Target variables are written ``collection/module/path/name``. Its text
    (``str(report)``) shows the first few names of each kind.

    Attributes:
      loaded: ``(source entry, target variable)`` pairs, one per weight loaded.
      skipped: source entries that are not model weights (step counters,
        optimizer state, the object graph of a TensorFlow checkpoint, PyTorch's
        ``num_batches_tracked``), and those of source layers that ``mapping``
        sends to ``None``.
      unused: source weights that no target variable took (only with
        ``strict=False``; ``strict=True`` refuses them).
      kept: target variables that no source weight filled, which keep their
        values from ``target`` (only with ``strict=False``).

    Example:
      >>> report = LoadReport(loaded=(("up.weight", "params/up/kernel"),),
      ...                     skipped=("up.num_batches_tracked",))
      >>> print(report)
      loaded 1 weight; skipped 1 entry: up.num_batches_tracked
    """

    loaded: tuple[tuple[str, str], ...] = ()
    skipped: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} weight{'s' * (len(self.loaded) != 1)}"]
        for label, names in (
            ("skipped", self.skipped),
            ("unused", self.unused),
            ("kept from target", self.kept),
        ):
            if names:
                noun = "entry" if len(names) == 1 else "entries"
                shown = ", ".join(names[:_SHOWN])
                more = f", and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
                parts.append(f"{label} {len(names)} {noun}: {shown}{more}")
        return "; ".join(parts)


class _MismatchError(Exception):
    """Why a source layer cannot fill a target module."""

    def __init__(self, what: str, entry: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.entry = entry


@dataclasses.dataclass
class _Copy:
    key: tuple[str, ...]  # (collection, *path, name)
    source_name: str
    array: np.ndarray


@dataclasses.dataclass
class _Plan:
    """How one source layer fills one target module."""

    copies: list[_Copy]
    unused: list[str]  # Source entries with no place in the module.
    kept: list[tuple[str, ...]]  # (collection, *path, name) of leaves without a source.


def _target_key(module: Module, key: tuple[str, str]) -> tuple[str, ...]:
    return (key[0], *module.path, key[1])


def _to_target_layout(convention: str, target_name: str, array: np.ndarray) -> np.ndarray:
    """A source variable in the layout of the target parameter ``target_name``."""
    torch_source = convention == TORCH
    # PyTorch's weights and TensorFlow's kernels differ in layout; within one
    # convention (PyTorch into torch_compat, Keras into Flax) nothing changes.
    if target_name != ("kernel" if torch_source else "weight") or array.ndim < 2:
        return array
    if array.ndim == 2:  # Linear / Dense.
        return array.T
    # (out, in/g, *k) <-> (*k, in/g, out) for convolutions and
    # (in, out/g, *k) <-> (*k, out/g, in) for transposed ones: the same move.
    return convert.kernel_from_torch(array) if torch_source else convert.kernel_to_torch(array)


def _plan(convention: str, layer: Layer, module: Module, strict: bool) -> _Plan:
    """How ``layer`` fills ``module``, or a _MismatchError.

    With ``strict=False``, module variables without a source variable are kept
    and source variables without a place are unused; the layer must still fill
    at least one variable, and shapes must match.
    """
    pairs: list[tuple[str, tuple[str, str]]] = []
    unused: list[str] = []
    if convention == KERAS_UNNAMED:
        # Keras 3 does not name variables: only their count and order say which is which.
        order = [key for key in _UNNAMED_ORDER if key in module.leaves]
        order += [key for key in module.leaves if key not in order]
        if len(order) != len(layer.variables):
            raise _MismatchError(
                f"it has {len(layer.variables)} variables, the target has "
                f"{len(order)} ({_describe_leaves(module)}), and Keras 3 files do not "
                f"name variables to tell which one is missing"
            )
        pairs = list(zip(layer.variables, order, strict=True))
    else:
        roles = _ROLES[convention]
        for leaf in layer.variables:
            role = roles.get(leaf)
            key = (
                None
                if role is None
                else next((k for k in _TARGETS[role] if k in module.leaves), None)
            )
            if key is None:
                if strict:
                    reason = (
                        "no counterpart in Flax"
                        if role is None
                        else f"no place in the target ({_describe_leaves(module)})"
                    )
                    raise _MismatchError(f"its {leaf!r} has {reason}", layer.full_names[leaf])
                unused.append(layer.full_names[leaf])
                continue
            if key in (k for _, k in pairs):
                raise _MismatchError(f"two of its variables map to the target's {key[1]!r}")
            pairs.append((leaf, key))
    kept = [key for key in module.leaves if key not in {k for _, k in pairs}]
    if kept and strict:
        raise _MismatchError(
            f"it has no variable for the target's {sorted('/'.join(k) for k in kept)}"
        )
    kept_keys = [_target_key(module, key) for key in kept]
    if not pairs:
        raise _MismatchError(f"none of its variables fits the target ({_describe_leaves(module)})")
    copies = []
    for leaf, key in pairs:
        array = layer.variables[leaf]
        converted = _to_target_layout(convention, key[1], array)
        expected = tuple(module.leaves[key].shape)
        if tuple(converted.shape) != expected:
            raise _MismatchError(
                _shape_message(array, converted, "/".join(_target_key(module, key)), expected),
                layer.full_names[leaf],
            )
        copies.append(_Copy(_target_key(module, key), layer.full_names[leaf], converted))
    return _Plan(copies, unused, kept_keys)


def _describe_leaves(module: Module) -> str:
    return ", ".join(
        f"{collection}/{name} {tuple(leaf.shape)}"
        for (collection, name), leaf in module.leaves.items()
    )


def _shape_message(
    array: np.ndarray, converted: np.ndarray, target: str, expected: tuple[int, ...]
) -> str:
    message = f"shape mismatch: it has shape {tuple(array.shape)}"
    if converted is not array:
        message += f", {tuple(converted.shape)} in the target's layout"
    message += f", but target {target!r} has shape {expected}"
    if converted is not array and tuple(array.shape) == expected:
        message += (
            " (the source's own shape matches: is the source already in the target's "
            "layout, or is the target a module of another convention?)"
        )
    elif sorted(converted.shape) == sorted(expected):
        message += " (the same sizes in another order: a layout or channel-order mix-up?)"
    return message


def _names(layers: list[Layer]) -> list[str]:
    return [layer.name or "<root>" for layer in layers]


def _skip_non_weights(contents: Contents) -> tuple[list[Layer], list[str]]:
    """The layers without their non-weight variables (``num_batches_tracked``)."""
    roles = _ROLES.get(contents.convention, {})
    skipped = list(contents.skipped)
    layers = []
    for layer in contents.layers:
        drop = [leaf for leaf in layer.variables if leaf in roles and roles[leaf] is None]
        if drop:
            skipped += [layer.full_names[leaf] for leaf in drop]
            layer = dataclasses.replace(
                layer,
                variables={k: v for k, v in layer.variables.items() if k not in drop},
                full_names={k: v for k, v in layer.full_names.items() if k not in drop},
            )
        if layer.variables:
            layers.append(layer)
    return layers, skipped


def load(
    function: str,
    contents: Contents,
    target: Any,
    mapping: Mapping[str, str | tuple[str, ...] | None] | None,
    *,
    strict: bool,
    allow_cast: bool,
) -> tuple[dict[str, Any], LoadReport]:
    """Fills ``target`` from ``contents``; see :mod:`jdeconv.io`.

    Raises:
      SourceError: for anything that does not match.
      TypeError: for a ``target`` or ``mapping`` of the wrong kind.
    """
    flat, target_modules = modules(function, target)
    if mapping is not None and not isinstance(mapping, Mapping):
        raise TypeError(
            f"{function}: `mapping` must be a dict from source layer names to target "
            f"module paths, got {type(mapping).__name__}."
        )
    convention = contents.convention
    layers, skipped = _skip_non_weights(contents)
    by_path = {module.name: module for module in target_modules}
    by_name = {layer.name: layer for layer in layers}
    aliases = {alias: layer for layer in layers for alias in layer.aliases}
    used: set[str] = set()
    filled: dict[str, Module] = {}
    plans: list[_Plan] = []

    def fill(layer: Layer, module: Module) -> None:
        try:
            plans.append(_plan(convention, layer, module, strict))
        except _MismatchError as error:
            raise SourceError(
                f"source layer {layer.name or '<root>'!r} cannot fill target module "
                f"{module.name or '<root>'!r}: {error.what}.",
                error.entry,
            ) from None
        used.add(layer.name)
        filled[module.name] = module

    for source_name, target_path in (mapping or {}).items():
        layer = by_name.get(source_name) or aliases.get(source_name)
        if layer is None:
            raise SourceError(
                f"`mapping` names source layer {source_name!r}, which the source does not "
                f"have; its layers are {_names(layers)}."
            )
        if target_path is None:
            used.add(layer.name)
            skipped += layer.full_names.values()
            continue
        path = target_path if isinstance(target_path, str) else "/".join(target_path)
        module = by_path.get(path)
        if module is None:
            raise SourceError(
                f"`mapping` sends {source_name!r} to target module {path!r}, which the "
                f"target does not have; its modules are {[m.name for m in target_modules]}."
            )
        if path in filled:
            raise SourceError(f"`mapping` sends two source layers to {path!r}.")
        fill(layer, module)

    # Layers named like a target module (``decoder.up1`` and ``decoder/up1``).
    for layer in layers:
        path = layer.name.replace(".", "/")
        if layer.name not in used and path in by_path and path not in filled:
            fill(layer, by_path[path])

    remaining_layers = [layer for layer in layers if layer.name not in used]
    remaining_modules = [module for module in target_modules if module.name not in filled]
    for layer, module in _match_by_order(convention, remaining_layers, remaining_modules, strict):
        fill(layer, module)

    unused_layers = [layer for layer in layers if layer.name not in used]
    unfilled = [module for module in target_modules if module.name not in filled]
    if strict and (unused_layers or unfilled):
        raise SourceError(
            f"with strict=True every source layer and target module must be matched; "
            f"unmatched source layers: {_names(unused_layers)}; unmatched target modules: "
            f"{[m.name for m in unfilled]}. Map them with `mapping` (a source layer to "
            f"None skips it), or pass strict=False."
        )
    unused = [name for layer in unused_layers for name in layer.full_names.values()]
    unused += [name for plan in plans for name in plan.unused]
    kept = [_target_key(module, key) for module in unfilled for key in module.leaves]
    kept += [key for plan in plans for key in plan.kept]
    _check_kept_values(flat, kept)

    # Every check is done before anything is built: a failed load changes nothing.
    values = {}
    for plan in plans:
        for copy in plan.copies:
            collection, *key = copy.key
            template = flat[collection][tuple(key)]
            try:
                values[copy.key] = cast(copy.array, template.dtype, allow_cast=allow_cast)
            except DtypeError as error:
                raise SourceError(
                    f"cannot fill target {'/'.join(copy.key)!r}: {error}.", copy.source_name
                ) from None
    for (collection, *key), value in values.items():
        flat[collection][tuple(key)] = jnp.asarray(value)
    variables = {
        collection: traverse_util.unflatten_dict(leaves) for collection, leaves in flat.items()
    }
    report = LoadReport(
        loaded=tuple(
            (copy.source_name, "/".join(copy.key)) for plan in plans for copy in plan.copies
        ),
        skipped=tuple(skipped),
        unused=tuple(unused),
        kept=tuple("/".join(key) for key in kept),
    )
    return variables, report


def _check_kept_values(flat: dict[str, dict], kept: list[tuple[str, ...]]) -> None:
    """Refuses to keep a target variable that has no value (only a shape)."""
    abstract = [
        "/".join(key) for key in kept if isinstance(flat[key[0]][key[1:]], jax.ShapeDtypeStruct)
    ]
    if abstract:
        raise SourceError(
            f"with strict=False the target variables that the source does not fill keep "
            f"their values from `target`, but `target` holds only shapes for {abstract[:8]}"
            f"{' and more' if len(abstract) > 8 else ''}: pass variables from "
            f"`model.init(...)`, or fill them from the source."
        )


def _match_by_order(
    convention: str, layers: list[Layer], target_modules: list[Module], strict: bool
) -> list[tuple[Layer, Module]]:
    """Pairs layers with modules in order, chain by chain (see :mod:`jdeconv.io`)."""
    if not layers or not target_modules:
        return []
    chains: dict[str, list[Layer]] = {}
    for layer in layers:
        chains.setdefault(layer.chain, []).append(layer)
    for members in chains.values():
        members.sort(key=lambda layer: layer.index)
    heads = dict.fromkeys(chains, 0)
    matched = []
    for module in target_modules:
        candidates = []
        reasons = []
        module_kind = _kinds.of_target(module)
        for kind, position in heads.items():
            if position == len(chains[kind]):
                continue
            layer = chains[kind][position]
            layer_kind = _kinds.of_source(convention, layer)
            if not layer_kind & module_kind:
                reasons.append(
                    f"{layer.name or '<root>'!r}: it is a {_kinds.describe(layer_kind)} layer, "
                    f"the target a {_kinds.describe(module_kind)} module"
                )
                continue
            try:
                _plan(convention, layer, module, strict)
                candidates.append((kind, layer))
            except _MismatchError as error:
                entry = f"entry {error.entry!r}: " if error.entry else ""
                reasons.append(f"{layer.name or '<root>'!r}: {entry}{error.what}")
        if len(candidates) == 1:
            kind, layer = candidates[0]
            heads[kind] += 1
            matched.append((layer, module))
            continue
        if not strict:
            continue  # This module keeps its values in `target`.
        if not candidates:
            if not reasons:
                break  # Every source layer is used: reported as unmatched.
            raise SourceError(
                f"matching by order, target module {module.name or '<root>'!r} "
                f"({_describe_leaves(module)}) fits no next source layer: "
                + "; ".join(reasons)
                + ". Pass `mapping` to say which source layer fills which module. (Matching "
                "follows the order of `target`'s entries: `model.init(...)` and "
                "`jdeconv.io.abstract_variables` keep the order of creation, while "
                "`jax.eval_shape` and `jax.jit` sort them by name.)"
            )
        kinds = ", ".join(_kinds.describe(_kinds.of_source(convention, l)) for _, l in candidates)
        raise SourceError(
            f"matching by order is ambiguous for target module {module.name or '<root>'!r}: "
            f"source layers {[layer.name for _, layer in candidates]} all fit (their kinds: "
            f"{kinds}; the module's: {_kinds.describe(module_kind)}). Pass `mapping`, e.g. "
            f"mapping={{{candidates[0][1].name!r}: {module.name!r}}}."
        )
    return matched
