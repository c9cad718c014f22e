"""Weights from PyTorch, Keras and TensorFlow files into Flax variables.

Each ``load_*`` function reads a source's weights, converts each one to the
layout of the Flax module that receives it, checks its shape, and returns the
``target`` variables with the weights filled in:

* :func:`load_torch_state_dict`: a PyTorch ``state_dict``, as a ``.safetensors``
  file, a ``.pt`` / ``.pth`` / ``.bin`` file (read with
  ``torch.load(..., weights_only=True)``), or a mapping of arrays;
* :func:`load_keras_weights`: a Keras 3 ``.weights.h5`` or ``.keras`` file, or a
  Keras 2 (``tf_keras``) ``.h5`` file, read with ``h5py`` (TensorFlow is not
  needed);
* :func:`load_tf_checkpoint`: a TensorFlow checkpoint (needs TensorFlow).

The ``read_*`` functions return the source's arrays by name, to inspect them.

**Source layers and target modules.** A source layer is a group of variables
that share a name prefix: ``decoder.up1`` for ``decoder.up1.weight`` in
PyTorch, ``up1`` or ``inner/up1`` (the layer names) in Keras, the variable
scope in a TensorFlow checkpoint. A target module is a path in the Flax
variables, written with ``/``: ``up1`` or ``Decoder_0/Conv2DTranspose_0``.
``mapping`` maps source layers to target modules (or to ``None``, to skip
one). Whatever it leaves out is matched by order (the order of ``target``'s
entries: create ``target`` with ``model.init(...)`` or
:func:`abstract_variables`, which keep the modules' order of creation, not with
``jax.eval_shape``, which sorts them), where that is unambiguous:
PyTorch and Keras 2 files keep the layers' order; Keras 3 ``.weights.h5``
files and TensorFlow checkpoints keep it within each kind of layer (by their
numbered names), and shapes then decide between kinds.

**Layouts.** The conversion depends on the source and on the name of the
receiving parameter:

* PyTorch ``ConvTranspose*d.weight`` to a jdeconv layer's ``kernel``:
  ``(in, out/g, *k)`` to ``[*k, out/g, in]``;
* PyTorch ``Conv*d.weight`` to ``nn.Conv``'s ``kernel``: ``(out, in/g, *k)``
  to ``(*k, in/g, out)`` (the same move of axes);
* PyTorch ``Linear.weight`` to ``nn.Dense``'s ``kernel``: transposed;
* PyTorch ``weight`` to a :mod:`jdeconv.torch_compat` module's ``weight``:
  unchanged;
* PyTorch norm ``weight`` / ``bias`` to ``scale`` / ``bias``, and
  ``running_mean`` / ``running_var`` to ``batch_stats`` ``mean`` / ``var``;
* Keras ``kernel`` to a jdeconv layer's or Flax's ``kernel``: unchanged (to
  a torch_compat ``weight``: into PyTorch's layout);
* Keras ``gamma`` / ``beta`` to ``scale`` / ``bias``, and ``moving_mean`` /
  ``moving_variance`` to ``batch_stats`` ``mean`` / ``var``.

A ``flax.linen.ConvTranspose`` kernel has neither layout (see
:func:`jdeconv.convert.kernel_from_flax`): port such a layer to
:class:`jdeconv.Conv2DTranspose` and its siblings.

**Safety.** Nothing here unpickles: PyTorch files go through
``torch.load(..., weights_only=True)``, and Keras files are read as HDF5 and
JSON, never by deserialising a model.

Example, a PyTorch decoder's state dict into a Flax model:

  >>> import jax, jax.numpy as jnp, numpy as np
  >>> import flax.linen as nn
  >>> import jdeconv, jdeconv.io
  >>> class Decoder(nn.Module):
  ...     @nn.compact
  ...     def __call__(self, x):
  ...         x = jdeconv.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
  ...         return nn.Dense(2)(x)
  >>> target = Decoder().init(jax.random.key(0), jnp.ones((1, 5, 5, 8)))
  >>> state_dict = {  # as PyTorch stores it
  ...     "up.weight": np.ones((8, 4, 3, 3), np.float32),
  ...     "up.bias": np.zeros(4, np.float32),
  ...     "head.weight": np.ones((2, 4), np.float32),
  ...     "head.bias": np.zeros(2, np.float32)}
  >>> variables = jdeconv.io.load_torch_state_dict(state_dict, target)
  >>> variables["params"]["Conv2DTranspose_0"]["kernel"].shape
  (3, 3, 4, 8)
"""

from __future__ import annotations

import dataclasses
import io as _stdio
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from flax.core import unfreeze

from jdeconv import convert
from jdeconv._layers._config import FROZEN_COLLECTION

__all__ = [
    "abstract_variables",
    "load_keras_weights",
    "load_tf_checkpoint",
    "load_torch_state_dict",
    "read_keras_weights",
    "read_tf_checkpoint",
    "read_torch_state_dict",
]

PathLike = str | os.PathLike

# Source conventions: how variables are named and laid out.
_TORCH, _KERAS, _KERAS_UNNAMED = "torch", "keras", "keras_unnamed"

# Role of each named source variable; None: not a model weight, skipped.
_ROLES: dict[str, dict[str, str | None]] = {
    _TORCH: {
        "weight": "weight",
        "bias": "bias",
        "running_mean": "mean",
        "running_var": "var",
        "num_batches_tracked": None,
    },
    _KERAS: {
        "kernel": "weight",
        "embeddings": "weight",
        "gamma": "weight",
        "bias": "bias",
        "beta": "bias",
        "moving_mean": "mean",
        "moving_variance": "var",
    },
}

# Target parameters that take each role, in order of preference, and the
# order in which unnamed (Keras 3) variables fill a module's parameters.
# Parameters live in "params", or in the layers' frozen collection when
# `trainable=False`.
_PARAMS = ("params", FROZEN_COLLECTION)
_TARGETS: dict[str, tuple[tuple[str, str], ...]] = {
    "weight": tuple(
        (collection, name)
        for name in ("kernel", "weight", "scale", "embedding")
        for collection in _PARAMS
    ),
    "bias": tuple((collection, "bias") for collection in _PARAMS),
    "mean": (("batch_stats", "mean"),),
    "var": (("batch_stats", "var"),),
}
# Collections that hold weights; others (e.g. sown losses) pass through.
_WEIGHT_COLLECTIONS = (*_PARAMS, "batch_stats")
_UNNAMED_ORDER = (*_TARGETS["weight"], *_TARGETS["bias"], *_TARGETS["mean"], *_TARGETS["var"])


# --------------------------------------------------------------------------
# Sources


@dataclasses.dataclass
class _Layer:
    """One source layer: its variables, by their name within the layer."""

    name: str
    variables: dict[str, np.ndarray]
    full_names: dict[str, str]
    chain: str = ""
    index: tuple[int, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass
class _Source:
    function: str
    convention: str
    layers: list[_Layer]


def _split(name: str, separator: str) -> tuple[str, str]:
    head, _, leaf = name.rpartition(separator)
    return head, leaf


_NUMBERED = re.compile(r"^(.*?)[-_](\d+)$")
_OBJECT_GRAPH_LAYER = re.compile(r"^(layer_with_weights|layer)-(\d+)$")


def _chain(name: str, separator: str = "/") -> tuple[str, tuple[int, ...]]:
    """The kind of a numbered layer name and its place within that kind.

    ``conv2d_transpose_2`` is the third ``conv2d_transpose``; the components
    ``layer_with_weights-3`` of TensorFlow's object graph, and the indices
    ``decoder.3`` of a PyTorch ``Sequential``, number all layers alike, so
    they make one kind.
    """
    kind, index = [], []
    for component in name.split(separator):
        graph = _OBJECT_GRAPH_LAYER.match(component)
        numbered = _NUMBERED.match(component)
        if component.isdigit():
            kind.append("#")
            index.append(int(component))
        elif graph:
            index.append(int(graph.group(2)))
        elif numbered:
            kind.append(numbered.group(1))
            index.append(int(numbered.group(2)))
        else:
            kind.append(component)
            index.append(0)
    return "/".join(kind), tuple(index)


def _group(
    function: str,
    convention: str,
    arrays: Mapping[str, np.ndarray],
    separator: str,
    *,
    ordered: bool,
) -> _Source:
    """Groups ``layer<sep>variable`` names into layers, keeping first-seen order."""
    layers: dict[str, _Layer] = {}
    for full_name, array in arrays.items():
        layer_name, leaf = _split(full_name, separator)
        layer = layers.get(layer_name)
        if layer is None:
            chain, index = ("", ()) if ordered else _chain(layer_name, separator)
            layer = layers[layer_name] = _Layer(layer_name, {}, {}, chain, index)
        layer.variables[leaf] = array
        layer.full_names[leaf] = full_name
    return _Source(function, convention, list(layers.values()))


def _apply_prefix(
    function: str, arrays: dict[str, np.ndarray], prefix: str
) -> dict[str, np.ndarray]:
    if not prefix:
        return arrays
    selected = {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}
    if not selected:
        raise ValueError(
            f"{function}: no variable name starts with prefix {prefix!r}; the names "
            f"start with {sorted({name.split('.')[0].split('/')[0] for name in arrays})}."
        )
    return selected


def _check_file(function: str, path: PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{function}: no such file: {path!r}.")
    return path


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch"):
        return convert._torch_to_numpy(value)
    return np.asarray(value)


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def read_torch_state_dict(source: PathLike | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict as NumPy arrays, in the file's order.

    Args:
      source: a ``.safetensors`` file; a file saved with ``torch.save`` (read
        with ``torch.load(..., weights_only=True)``, which needs torch and
        refuses pickled code); a mapping of names to tensors or arrays; or a
        ``torch.nn.Module``. A checkpoint dict that holds the state dict under
        ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` is unwrapped.

    Returns:
      Variable names to arrays (``bfloat16`` as ``jnp.bfloat16``).

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: if the file cannot be read as a state dict.
      ImportError: for a ``torch.save`` file without torch installed.

    Example:
      >>> import numpy as np
      >>> read_torch_state_dict({"0.weight": np.ones((2, 3))})["0.weight"].shape
      (2, 3)
    """
    function = "read_torch_state_dict"
    if hasattr(source, "state_dict") and callable(source.state_dict):
        source = source.state_dict()
    if isinstance(source, Mapping):
        state = _unwrap_state_dict(function, source, "the mapping")
        return {str(name): _numpy(value) for name, value in state.items()}
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            f"{function}: `source` must be a path, a mapping of arrays or a torch "
            f"module, got {type(source).__name__}."
        )
    path = _check_file(function, source)
    if path.endswith(".safetensors"):
        return _read_safetensors(function, path)
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{function}: reading {path!r} needs PyTorch (torch.load). Install torch, "
            f"or save the state dict as .safetensors."
        ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file.
        raise ValueError(
            f"{function}: cannot read {path!r} as a PyTorch file with "
            f"torch.load(weights_only=True): {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}"
        ) from None
    if not isinstance(loaded, Mapping):
        raise ValueError(
            f"{function}: {path!r} holds a {type(loaded).__name__}, not a state dict "
            f"(a mapping of names to tensors)."
        )
    state = _unwrap_state_dict(function, loaded, repr(path))
    return {str(name): _numpy(value) for name, value in state.items()}


def _unwrap_state_dict(function: str, mapping: Mapping[str, Any], where: str) -> Mapping:
    if mapping and all(_is_array(v) for v in mapping.values()):
        return mapping
    for key in ("state_dict", "model_state_dict", "model"):
        inner = mapping.get(key)
        if isinstance(inner, Mapping) and inner and all(_is_array(v) for v in inner.values()):
            return inner
    raise ValueError(
        f"{function}: {where} is not a state dict: expected a mapping of names to "
        f"tensors (or a checkpoint holding one under 'state_dict', "
        f"'model_state_dict' or 'model'), got keys {list(mapping)[:8]}."
    )


def _read_safetensors(function: str, path: str) -> dict[str, np.ndarray]:
    try:
        import safetensors
    except ImportError:
        raise ImportError(
            f"{function}: reading {path!r} needs safetensors: pip install safetensors "
            f"(or jdeconv[io])."
        ) from None
    try:
        # The JAX flavour reads every dtype, bfloat16 included.
        with safetensors.safe_open(path, framework="flax") as file:
            return {name: np.asarray(file.get_tensor(name)) for name in file.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error type.
        raise ValueError(
            f"{function}: cannot read {path!r} as a safetensors file: {error}"
        ) from None


def _h5py(function: str) -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError(
            f"{function}: reading Keras files needs h5py: pip install h5py (or jdeconv[io])."
        ) from None
    return h5py


def _open_keras(function: str, path: PathLike) -> Any:
    """The HDF5 file of a ``.weights.h5``, ``.h5`` or ``.keras`` file."""
    h5py = _h5py(function)
    path = _check_file(function, path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "model.weights.h5" not in names:
                raise ValueError(
                    f"{function}: {path!r} is a zip archive without model.weights.h5, "
                    f"so not a .keras file; it holds {names[:8]}."
                )
            data = archive.read("model.weights.h5")
        return h5py.File(_stdio.BytesIO(data), "r")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(
            f"{function}: {path!r} is neither an HDF5 weights file nor a .keras archive: {error}"
        ) from None


def _decode(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _keras_layers(function: str, file: Any) -> tuple[str, list[_Layer]]:
    root = file.get("model_weights", file)
    if "layer_names" in root.attrs:
        return _KERAS, list(_keras2_layers(root))
    if "layers" in root or "vars" in root:
        return _KERAS_UNNAMED, list(_keras3_layers(root, "", ()))
    raise ValueError(
        f"{function}: the HDF5 file has neither Keras 3's layout (groups 'layers' and "
        f"'vars') nor Keras 2's (attribute 'layer_names'); its top-level entries are "
        f"{list(root)[:8]}."
    )


def _keras2_layers(root: Any) -> Iterator[_Layer]:
    """Keras 2 (``tf_keras``) HDF5: ordered layer and weight names."""
    position = 0
    for layer_name in map(_decode, root.attrs["layer_names"]):
        group = root[layer_name]
        layers: dict[str, _Layer] = {}
        for weight_name in map(_decode, group.attrs.get("weight_names", ())):
            variable = weight_name.split(":")[0]
            sub_layer, leaf = _split(variable, "/")
            name = layer_name if sub_layer in ("", layer_name) else f"{layer_name}/{sub_layer}"
            if name not in layers:
                layers[name] = _Layer(name, {}, {}, "", (position,))
                position += 1
            layers[name].variables[leaf] = np.asarray(group[weight_name])
            layers[name].full_names[leaf] = f"{layer_name}/{weight_name}"
        yield from layers.values()


def _keras3_layers(group: Any, path: str, names: tuple[str, ...]) -> Iterator[_Layer]:
    """Keras 3 HDF5: a ``vars`` group per layer, sub-layers in sub-groups."""
    variables = group.get("vars")
    if variables is not None and path:  # The root's own name is not part of names.
        names = (*names, _decode(variables.attrs.get("name", path.rsplit("/", 1)[-1])))
    if variables is not None and len(variables):
        name = "/".join(names)
        chain, index = _chain(path)
        yield _Layer(
            name,
            {key: np.asarray(variables[key]) for key in sorted(variables, key=int)},
            {key: f"{path}/vars/{key}" if path else f"vars/{key}" for key in variables},
            chain,
            index,
            aliases=(path,),
        )
    for key in group:
        if key == "vars" or (not path and key == "optimizer"):
            continue
        child = group[key]
        if hasattr(child, "keys"):
            yield from _keras3_layers(child, f"{path}/{key}" if path else key, names)


def read_keras_weights(path: PathLike) -> dict[str, np.ndarray]:
    """Reads a Keras weights file as NumPy arrays.

    Args:
      path: a Keras 3 ``.weights.h5`` (``model.save_weights``) or ``.keras``
        (``model.save``) file, or a Keras 2 ``.h5`` file (either kind).

    Returns:
      Names to arrays. Keras 2 names are ``layer/variable`` (``up1/kernel``).
      Keras 3 does not store variable names: they are ``layer/<index>``
      (``up1/0`` for the kernel, ``up1/1`` for the bias), with ``layer`` the
      layer names from the model down (``decoder/up1``).

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: if it is not a Keras weights file.
    """
    function = "read_keras_weights"
    with _open_keras(function, path) as file:
        _, layers = _keras_layers(function, file)
    return {
        f"{layer.name}/{leaf}" if layer.name else leaf: array
        for layer in layers
        for leaf, array in layer.variables.items()
    }


_TF_SKIPPED = re.compile(
    r"(^|/)(_CHECKPOINTABLE_OBJECT_GRAPH|save_counter|global_step|beta[12]_power)$"
    r"|\.OPTIMIZER_SLOT|^optimizer/"
    r"|/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|Ftrl|Ftrl_\d+|"
    r"ExponentialMovingAverage)$"
)
_TF_ATTRIBUTE = "/.ATTRIBUTES/VARIABLE_VALUE"


def read_tf_checkpoint(path: PathLike) -> dict[str, np.ndarray]:
    """Reads a TensorFlow checkpoint's model variables as NumPy arrays.

    Optimizer slots, step counters and the object graph are left out, and
    object-based names lose their ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix.
    Needs TensorFlow.

    Args:
      path: the checkpoint prefix (``ckpt/model-1``) or its directory (the
        latest checkpoint there).

    Returns:
      Names (``decoder/conv2d_transpose/kernel``) to arrays, sorted.

    Raises:
      ImportError: without TensorFlow.
      ValueError: if ``path`` is not a readable checkpoint.
    """
    function = "read_tf_checkpoint"
    try:
        import tensorflow as tf
    except ImportError:
        raise ImportError(f"{function}: reading TensorFlow checkpoints needs TensorFlow.") from None
    path = os.fspath(path)
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
    except Exception as error:  # TensorFlow raises several kinds.
        raise ValueError(
            f"{function}: cannot read a TensorFlow checkpoint at {path!r}: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from None
    arrays = {}
    for name in sorted(shapes, key=_natural_key):
        if _TF_SKIPPED.search(name) or ("/.ATTRIBUTES/" in name and _TF_ATTRIBUTE not in name):
            continue
        arrays[name.removesuffix(_TF_ATTRIBUTE)] = np.asarray(reader.get_tensor(name))
    return arrays


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------
# Targets


@dataclasses.dataclass
class _Module:
    path: tuple[str, ...]
    leaves: dict[tuple[str, str], Any]  # (collection, name) -> template leaf

    @property
    def name(self) -> str:
        return "/".join(self.path)


def _modules(function: str, target: Any) -> tuple[dict[str, dict], list[_Module]]:
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
    modules: dict[tuple[str, ...], _Module] = {}
    for collection in _WEIGHT_COLLECTIONS:
        for key, leaf in flat.get(collection, {}).items():
            module = modules.setdefault(key[:-1], _Module(key[:-1], {}))
            module.leaves[(collection, key[-1])] = leaf
    return flat, list(modules.values())


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


# --------------------------------------------------------------------------
# Matching


class _MismatchError(Exception):
    """Why a source layer cannot fill a target module."""


@dataclasses.dataclass
class _Copy:
    key: tuple[str, ...]  # (collection, *path, name)
    source_name: str
    array: np.ndarray


def _to_target_layout(convention: str, target_name: str, array: np.ndarray) -> np.ndarray:
    """A source variable in the layout of the target parameter ``target_name``."""
    torch_source = convention == _TORCH
    # PyTorch's weights and TensorFlow's kernels differ in layout; within one
    # convention (PyTorch into torch_compat, Keras into Flax) nothing changes.
    if target_name != ("kernel" if torch_source else "weight") or array.ndim < 2:
        return array
    if array.ndim == 2:  # Linear / Dense.
        return array.T
    # (out, in/g, *k) <-> (*k, in/g, out) for convolutions and
    # (in, out/g, *k) <-> (*k, out/g, in) for transposed ones: the same move.
    return convert.kernel_from_torch(array) if torch_source else convert.kernel_to_torch(array)


def _plan(source: _Source, layer: _Layer, module: _Module) -> list[_Copy]:
    """The copies that fill ``module`` from ``layer``, or a _MismatchError."""
    pairs: list[tuple[str, tuple[str, str]]] = []
    if source.convention == _KERAS_UNNAMED:
        order = [key for key in _UNNAMED_ORDER if key in module.leaves]
        order += [key for key in module.leaves if key not in order]
        if len(order) != len(layer.variables):
            raise _MismatchError(
                f"it has {len(layer.variables)} variables, the target has "
                f"{len(order)} ({_describe_leaves(module)})"
            )
        pairs = list(zip(layer.variables, order, strict=True))
    else:
        roles = _ROLES[source.convention]
        for leaf in layer.variables:
            if leaf not in roles:
                raise _MismatchError(f"its variable {leaf!r} has no counterpart in Flax")
            role = roles[leaf]
            if role is None:
                continue
            key = next((k for k in _TARGETS[role] if k in module.leaves), None)
            if key is None:
                raise _MismatchError(
                    f"its {leaf!r} has no place in the target ({_describe_leaves(module)})"
                )
            if key in (k for _, k in pairs):
                raise _MismatchError(f"two of its variables map to the target's {key[1]!r}")
            pairs.append((leaf, key))
        missing = set(module.leaves) - {k for _, k in pairs}
        if missing:
            raise _MismatchError(
                f"it has no variable for the target's {sorted('/'.join(k) for k in missing)}"
            )
    copies = []
    for leaf, key in pairs:
        array = layer.variables[leaf]
        converted = _to_target_layout(source.convention, key[1], array)
        expected = tuple(module.leaves[key].shape)
        if tuple(converted.shape) != expected:
            raise _MismatchError(
                _shape_message(layer.full_names[leaf], array, converted, module, key, expected)
            )
        copies.append(_Copy((key[0], *module.path, key[1]), layer.full_names[leaf], converted))
    return copies


def _describe_leaves(module: _Module) -> str:
    return ", ".join(
        f"{collection}/{name} {tuple(leaf.shape)}"
        for (collection, name), leaf in module.leaves.items()
    )


def _shape_message(
    name: str,
    array: np.ndarray,
    converted: np.ndarray,
    module: _Module,
    key: tuple[str, str],
    expected: tuple[int, ...],
) -> str:
    target = "/".join((key[0], *module.path, key[1]))
    message = f"shape mismatch: source variable {name!r} has shape {tuple(array.shape)}"
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


def _load(
    source: _Source,
    target: Any,
    mapping: Mapping[str, str | tuple[str, ...] | None] | None,
    strict: bool,
) -> dict[str, Any]:
    function = source.function
    flat, modules = _modules(function, target)
    by_path = {module.name: module for module in modules}
    layers = {layer.name: layer for layer in source.layers}
    aliases = {alias: layer for layer in source.layers for alias in layer.aliases}
    used_layers: set[str] = set()
    filled: dict[str, _Module] = {}
    copies: list[_Copy] = []

    if mapping is not None and not isinstance(mapping, Mapping):
        raise TypeError(
            f"{function}: `mapping` must be a dict from source layer names to target "
            f"module paths, got {type(mapping).__name__}."
        )
    for source_name, target_path in (mapping or {}).items():
        layer = layers.get(source_name) or aliases.get(source_name)
        if layer is None:
            raise ValueError(
                f"{function}: `mapping` names source layer {source_name!r}, which the "
                f"source does not have; its layers are {_names(source.layers)}."
            )
        used_layers.add(layer.name)
        if target_path is None:
            continue
        path = target_path if isinstance(target_path, str) else "/".join(target_path)
        module = by_path.get(path)
        if module is None:
            raise ValueError(
                f"{function}: `mapping` sends {source_name!r} to target module {path!r}, "
                f"which the target does not have; its modules are "
                f"{[m.name for m in modules]}."
            )
        if path in filled:
            raise ValueError(f"{function}: `mapping` sends two source layers to {path!r}.")
        copies += _fill(source, layer, module)
        filled[path] = module

    # Layers named like a target module (``decoder.up1`` and ``decoder/up1``).
    for layer in source.layers:
        path = layer.name.replace(".", "/")
        if layer.name not in used_layers and path in by_path and path not in filled:
            copies += _fill(source, layer, by_path[path])
            used_layers.add(layer.name)
            filled[path] = by_path[path]

    remaining_layers = [layer for layer in source.layers if layer.name not in used_layers]
    remaining_modules = [module for module in modules if module.name not in filled]
    matched = _match_by_order(source, remaining_layers, remaining_modules, strict)
    for layer, module, planned in matched:
        copies += planned
        used_layers.add(layer.name)
        filled[module.name] = module

    if strict:
        unused = [layer for layer in source.layers if layer.name not in used_layers]
        unfilled = [module for module in modules if module.name not in filled]
        if unused or unfilled:
            raise ValueError(
                f"{function}: with strict=True every source layer and target module must "
                f"be matched; unmatched source layers: {_names(unused)}; unmatched "
                f"target modules: {[m.name for m in unfilled]}. Map them with "
                f"`mapping` (a source layer to None skips it), or pass strict=False."
            )

    for copy in copies:
        collection, *key = copy.key
        template = flat[collection][tuple(key)]
        flat[collection][tuple(key)] = jnp.asarray(copy.array, dtype=template.dtype)
    return {collection: traverse_util.unflatten_dict(leaves) for collection, leaves in flat.items()}


def _fill(source: _Source, layer: _Layer, module: _Module) -> list[_Copy]:
    try:
        return _plan(source, layer, module)
    except _MismatchError as error:
        raise ValueError(
            f"{source.function}: source layer {layer.name or '<root>'!r} cannot fill "
            f"target module {module.name or '<root>'!r}: {error}."
        ) from None


def _names(layers: list[_Layer]) -> list[str]:
    return [layer.name or "<root>" for layer in layers]


def _match_by_order(
    source: _Source, layers: list[_Layer], modules: list[_Module], strict: bool
) -> list[tuple[_Layer, _Module, list[_Copy]]]:
    """Pairs layers with modules in order, chain by chain (see the module doc)."""
    function = source.function
    if not layers or not modules:
        return []
    chains: dict[str, list[_Layer]] = {}
    for layer in layers:
        chains.setdefault(layer.chain, []).append(layer)
    for members in chains.values():
        members.sort(key=lambda layer: layer.index)
    heads = dict.fromkeys(chains, 0)
    matched = []
    for module in modules:
        candidates = []
        reasons = []
        for chain, position in heads.items():
            if position == len(chains[chain]):
                continue
            layer = chains[chain][position]
            try:
                candidates.append((chain, layer, _plan(source, layer, module)))
            except _MismatchError as error:
                reasons.append(f"{layer.name or '<root>'!r}: {error}")
        if len(candidates) == 1:
            chain, layer, planned = candidates[0]
            heads[chain] += 1
            matched.append((layer, module, planned))
            continue
        if not strict:
            continue  # This module keeps its values in `target`.
        if not candidates:
            if not reasons:
                break  # Every source layer is used: reported as unmatched.
            raise ValueError(
                f"{function}: matching by order, target module {module.name or '<root>'!r} "
                f"({_describe_leaves(module)}) fits no next source layer: "
                + "; ".join(reasons)
                + ". Pass `mapping` to say which source layer fills which module. (Matching "
                "follows the order of `target`'s entries: `model.init(...)` and "
                "`jdeconv.io.abstract_variables` keep the order of creation, while "
                "`jax.eval_shape` and `jax.jit` sort them by name.)"
            )
        raise ValueError(
            f"{function}: matching by order is ambiguous for target module "
            f"{module.name or '<root>'!r}: source layers "
            f"{[layer.name for _, layer, _ in candidates]} all fit. Pass `mapping`, "
            f"e.g. mapping={{{candidates[0][1].name!r}: {module.name!r}}}."
        )
    return matched


# --------------------------------------------------------------------------
# Public loaders


def load_torch_state_dict(
    source: PathLike | Mapping[str, Any],
    target: Mapping[str, Any],
    mapping: Mapping[str, str | tuple[str, ...] | None] | None = None,
    *,
    prefix: str = "",
    strict: bool = True,
) -> dict[str, Any]:
    """Fills Flax variables from a PyTorch state dict.

    Source layers are the state dict's module prefixes (``decoder.0`` for
    ``decoder.0.weight``), in the state dict's order. Each fills one target
    module; the layouts are converted as the table in :mod:`jdeconv.io`
    says (e.g. a ``ConvTranspose2d`` weight to a :class:`jdeconv.Conv2DTranspose`
    kernel, or unchanged into :class:`jdeconv.torch_compat.ConvTranspose2d`).

    Args:
      source: as for :func:`read_torch_state_dict`: a ``.safetensors`` or
        ``torch.save`` file, a mapping of arrays or a torch module.
      target: the variables to fill, from ``model.init(...)`` or
        ``jax.eval_shape(model.init, ...)``; they fix the shapes and dtypes.
      mapping: source layer name to target module path (``"a/b"`` or a
        tuple), or to ``None`` to skip a layer. Names left out are matched in
        order.
      prefix: only variables whose names start with it are read, without it
        (``"decoder."`` loads the decoder of a whole autoencoder).
      strict: whether every source layer and every target module must be
        matched. With ``False``, target variables without a source keep their
        values in ``target``.

    Returns:
      Variables shaped like ``target`` (all its collections), holding the
      source's weights as JAX arrays of the target's dtypes.

    Raises:
      ValueError: on a shape mismatch (naming the source variable, the target
        parameter and both shapes), an unknown name in ``mapping``, an order
        that does not match, or an unreadable file.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jdeconv import io, torch_compat
      >>> layer = torch_compat.ConvTranspose2d(4, 2, kernel_size=3, stride=2)
      >>> target = layer.init(jax.random.key(0), jnp.ones((1, 4, 5, 5)))
      >>> state = {"weight": np.ones((4, 2, 3, 3)), "bias": np.ones(2)}
      >>> io.load_torch_state_dict(state, target)["params"]["weight"].shape
      (4, 2, 3, 3)
    """
    function = "load_torch_state_dict"
    arrays = _apply_prefix(function, _reader(function, read_torch_state_dict)(source), prefix)
    # safetensors files sort their entries by name: the order is then only
    # that of numbered names (``decoder.0``, ``decoder.1``, ...).
    ordered = not (
        isinstance(source, str | os.PathLike) and os.fspath(source).endswith(".safetensors")
    )
    return _load(_group(function, _TORCH, arrays, ".", ordered=ordered), target, mapping, strict)


def load_keras_weights(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: Mapping[str, str | tuple[str, ...] | None] | None = None,
    *,
    prefix: str = "",
    strict: bool = True,
) -> dict[str, Any]:
    """Fills Flax variables from a Keras weights file, without TensorFlow.

    Source layers are Keras layers, named by their names from the model down
    (``up1``, or ``decoder/up1`` inside a nested model); a Keras 3 group path
    such as ``layers/conv2d_transpose_1`` names one too. Keras 2 files keep
    the layers' order. Keras 3 files keep it only among layers of one class
    (``conv2d_transpose``, ``conv2d_transpose_1``, ...), so the order across
    classes is inferred from the shapes, and ``mapping`` settles any
    ambiguity. Kernels need no conversion for jdeconv's layers or Flax's
    ``Dense`` and ``Conv``.

    Args:
      path: a Keras 3 ``.weights.h5`` or ``.keras`` file, or a Keras 2 ``.h5``.
      target: the variables to fill (see :func:`load_torch_state_dict`).
      mapping: source layer name to target module path, or to ``None``.
      prefix: only layers whose names start with it are read, without it.
      strict: whether everything must be matched.

    Returns:
      Variables shaped like ``target``.

    Raises:
      ValueError: as :func:`load_torch_state_dict`.
    """
    function = "load_keras_weights"
    with _open_keras(function, path) as file:
        convention, layers = _keras_layers(function, file)
    if prefix:
        layers = [
            dataclasses.replace(layer, name=layer.name[len(prefix) :], aliases=())
            for layer in layers
            if layer.name.startswith(prefix)
        ]
        if not layers:
            raise ValueError(f"{function}: no layer name starts with prefix {prefix!r}.")
    return _load(_Source(function, convention, layers), target, mapping, strict)


def load_tf_checkpoint(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: Mapping[str, str | tuple[str, ...] | None] | None = None,
    *,
    prefix: str = "",
    strict: bool = True,
) -> dict[str, Any]:
    """Fills Flax variables from a TensorFlow checkpoint (needs TensorFlow).

    Source layers are the variables' scopes (``decoder/conv2d_transpose_1``
    for ``decoder/conv2d_transpose_1/kernel``, as ``tf.compat.v1.layers``
    name them, or ``model/layer_with_weights-2`` in an object-based
    checkpoint). Object-based checkpoints number all layers in order; scoped
    names number each class of layer, so shapes decide across classes, as in
    :func:`load_keras_weights`. Optimizer slots are ignored.

    Args:
      path: the checkpoint prefix or directory.
      target: the variables to fill (see :func:`load_torch_state_dict`).
      mapping: source layer name to target module path, or to ``None``.
      prefix: only variables whose names start with it are read, without it.
      strict: whether everything must be matched.

    Returns:
      Variables shaped like ``target``.

    Raises:
      ImportError: without TensorFlow.
      ValueError: as :func:`load_torch_state_dict`.
    """
    function = "load_tf_checkpoint"
    arrays = _apply_prefix(function, _reader(function, read_tf_checkpoint)(path), prefix)
    return _load(_group(function, _KERAS, arrays, "/", ordered=False), target, mapping, strict)


def _reader(function: str, read: Callable[[Any], dict[str, np.ndarray]]) -> Callable:
    """``read`` with its error messages naming ``function``."""

    def wrapped(source: Any) -> dict[str, np.ndarray]:
        try:
            return read(source)
        except (ValueError, FileNotFoundError, ImportError, TypeError) as error:
            message = str(error)
            if message.startswith(read.__name__ + ":"):
                message = function + message[len(read.__name__) :]
            raise type(error)(message) from None

    return wrapped
