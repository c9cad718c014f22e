"""The public readers and loaders of :mod:`jdeconv.io`."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal, overload

import numpy as np

from jdeconv import _docstrings
from jdeconv.io import _keras, _kinds, _safetensors, _tf, _torch
from jdeconv.io._contents import KERAS, TORCH, Contents, group
from jdeconv.io._errors import SourceError, as_path, check_path, located
from jdeconv.io._match import LoadReport, load

PathLike = str | os.PathLike
LayerMapping = Mapping[str, str | tuple[str, ...] | None]

logger = logging.getLogger("jdeconv.io")


# --------------------------------------------------------------------------
# Sources


def _torch_source(function: str, source: Any) -> tuple[str, Any, dict[str, str]]:
    """Where ``source`` is (for messages), ``source`` as a path or a mapping, and classes.

    The classes are those of a module's submodules, by name (none for a state dict).
    """
    classes = {}
    if hasattr(source, "state_dict") and callable(source.state_dict):
        if callable(getattr(source, "named_modules", None)):
            classes = {name: type(module).__name__ for name, module in source.named_modules()}
        source = source.state_dict()
    if isinstance(source, Mapping):
        return "`source`", source, classes
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            f"{function}: `source` must be a path, a mapping of arrays or a torch "
            f"module, got {type(source).__name__}."
        )
    path = check_path(function, source)
    return repr(path), path, classes


def _torch_contents(source: Any, prefix: str, classes: Mapping[str, str]) -> Contents:
    if isinstance(source, Mapping):
        arrays, skipped = _torch.from_object(source)
        ordered = True
    elif source.endswith(".safetensors"):
        # safetensors files sort their entries by name: the order is then only
        # that of numbered names (``decoder.0``, ``decoder.1``, ...).
        arrays, skipped, ordered = _safetensors.read_file(source), (), False
    else:
        arrays, skipped = _torch.read_file(source)
        ordered = True
    classes = {name[len(prefix) :]: c for name, c in classes.items() if name.startswith(prefix)}
    return group(
        TORCH, _apply_prefix(arrays, prefix), ordered=ordered, skipped=skipped, classes=classes
    )


def _keras_contents(path: str, prefix: str) -> Contents:
    contents = _keras.read_file(path)
    if not prefix:
        return contents
    layers = [
        dataclasses.replace(layer, name=layer.name[len(prefix) :], aliases=())
        for layer in contents.layers
        if layer.name.startswith(prefix)
    ]
    if not layers:
        raise SourceError(
            f"no layer name starts with prefix {prefix!r}; the layers are "
            f"{[layer.name for layer in contents.layers][:8]}."
        )
    return Contents(contents.convention, layers, contents.skipped)


def _tf_contents(prefix_path: str, prefix: str) -> Contents:
    arrays, skipped = _tf.read_prefix(prefix_path)
    return group(KERAS, _apply_prefix(arrays, prefix), ordered=False, skipped=skipped)


def _apply_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    if not prefix:
        return arrays
    selected = {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}
    if not selected:
        raise SourceError(
            f"no variable name starts with prefix {prefix!r}; the names start with "
            f"{sorted({name.split('.')[0].split('/')[0] for name in arrays})}."
        )
    return selected


def _finish(
    function: str,
    location: str,
    contents: Contents,
    target: Any,
    mapping: LayerMapping | None,
    strict: bool,
    allow_cast: bool,
    return_report: bool,
) -> Any:
    variables, report = load(
        function, contents, target, mapping, strict=strict, allow_cast=allow_cast
    )
    logger.info("%s: %s: %s", function, location, report)
    logger.debug("%s: %s: %r", function, location, report)
    return (variables, report) if return_report else variables


def _read(contents: Contents, return_kinds: bool) -> Any:
    """The arrays of ``contents``, and with ``return_kinds`` its layers' kinds."""
    arrays = contents.arrays()
    if not return_kinds:
        return arrays
    kinds = {
        layer.name: _kinds.describe(_kinds.of_source(contents.convention, layer))
        for layer in contents.layers
    }
    return arrays, kinds


# --------------------------------------------------------------------------
# Readers


@overload
def read_torch_state_dict(
    source: PathLike | Mapping[str, Any], *, return_kinds: Literal[False] = ...
) -> dict[str, np.ndarray]: ...
@overload
def read_torch_state_dict(
    source: PathLike | Mapping[str, Any], *, return_kinds: Literal[True]
) -> tuple[dict[str, np.ndarray], dict[str, str]]: ...
def read_torch_state_dict(
    source: PathLike | Mapping[str, Any], *, return_kinds: bool = False
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, str]]:
    """Reads a PyTorch state dict as NumPy arrays, in the file's order.

    Args:
      source: a ``.safetensors`` file; a file saved with ``torch.save`` (read
        with ``torch.load(..., weights_only=True)``, which needs torch and
        refuses pickled code); a mapping of names to tensors or arrays; or a
        ``torch.nn.Module``. A checkpoint dict that holds the state dict under
        ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` is unwrapped
        (its other entries are left out). A module's submodules also give
        their classes (``ConvTranspose2d``) to the layers' kinds; a state dict
        holds none, so its kinds come from the weights' names and ranks.
      return_kinds: whether to return each layer's kind too, as matching by
        order sees it (see :mod:`jdeconv.io`).

    Returns:
      Variable names to arrays (``bfloat16`` as ``jnp.bfloat16``).
      With ``return_kinds=True``, the pair ``(arrays, kinds)``: ``kinds`` maps
      each layer's name to its kind (``"conv_transpose"``, ``"dense"``, ``"conv
      or conv_transpose"`` where the source cannot tell, ``"unknown"``, ...).

    Raises:
      FileNotFoundError, IsADirectoryError, PermissionError: if the path is not
        a readable file.
      ValueError: if the source cannot be read as a state dict (naming the
        path and, where there is one, the entry).
      ImportError: for a ``torch.save`` file without torch installed, or a
        ``.safetensors`` file without safetensors.

    Example:
      >>> import numpy as np
      >>> read_torch_state_dict({"0.weight": np.ones((2, 3))})["0.weight"].shape
      (2, 3)
      >>> read_torch_state_dict({"0.weight": np.ones((8, 4, 3, 3))}, return_kinds=True)[1]
      {'0': 'conv or conv_transpose'}
    """
    function = "read_torch_state_dict"
    location, source, classes = _torch_source(function, source)
    with located(function, location):
        return _read(_torch_contents(source, "", classes), return_kinds)


@overload
def read_keras_weights(
    path: PathLike, *, return_kinds: Literal[False] = ...
) -> dict[str, np.ndarray]: ...
@overload
def read_keras_weights(
    path: PathLike, *, return_kinds: Literal[True]
) -> tuple[dict[str, np.ndarray], dict[str, str]]: ...
def read_keras_weights(
    path: PathLike, *, return_kinds: bool = False
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, str]]:
    """Reads a Keras weights file as NumPy arrays.

    Args:
      path: a Keras 3 ``.weights.h5`` (``model.save_weights``) or ``.keras``
        (``model.save``) file, or a Keras 2 ``.h5`` file (either kind).
      return_kinds: whether to return each layer's kind too, as matching by
        order sees it (see :mod:`jdeconv.io`).

    Returns:
      Names to arrays. Keras 2 names are ``layer/variable`` (``up1/kernel``).
      Keras 3 does not store variable names: they are ``layer/<index>``
      (``up1/0`` for the kernel, ``up1/1`` for the bias), with ``layer`` the
      layer names from the model down (``decoder/up1``). Optimizer state is
      left out.
      With ``return_kinds=True``, the pair ``(arrays, kinds)``: ``kinds`` maps
      each layer's name to its kind (``"conv_transpose"``, ``"dense"``, ``"conv
      or conv_transpose"`` where the source cannot tell, ``"unknown"``, ...).

    Raises:
      FileNotFoundError, IsADirectoryError, PermissionError: if the path is not
        a readable file.
      ValueError: if it is not a Keras weights file, if it would read other
        files (see :mod:`jdeconv.io`), or if an entry cannot be read.
      ImportError: without h5py.

    Example:
      >>> import os, tempfile, h5py, numpy as np
      >>> path = os.path.join(tempfile.mkdtemp(), "head.weights.h5")
      >>> with h5py.File(path, "w") as file:  # What Keras 3 writes for a Dense layer.
      ...     layer = file.create_group("layers/dense/vars")
      ...     layer.attrs["name"] = "head"
      ...     layer["0"], layer["1"] = np.ones((4, 2)), np.zeros(2)
      >>> sorted(read_keras_weights(path))
      ['head/0', 'head/1']
      >>> read_keras_weights(path, return_kinds=True)[1]  # The group names the class.
      {'head': 'dense'}
    """
    function = "read_keras_weights"
    path = check_path(function, path)
    with located(function, repr(path)):
        return _read(_keras_contents(path, ""), return_kinds)


@overload
def read_tf_checkpoint(
    path: PathLike, *, return_kinds: Literal[False] = ...
) -> dict[str, np.ndarray]: ...
@overload
def read_tf_checkpoint(
    path: PathLike, *, return_kinds: Literal[True]
) -> tuple[dict[str, np.ndarray], dict[str, str]]: ...
def read_tf_checkpoint(
    path: PathLike, *, return_kinds: bool = False
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, str]]:
    """Reads a TensorFlow checkpoint's model variables as NumPy arrays.

    Step counters, optimizer state and the object graph are left out (see
    :mod:`jdeconv.io`), and object-based names lose their
    ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix. Needs TensorFlow.

    Args:
      path: the checkpoint prefix (``ckpt/model-1``), its ``.index`` file, or
        its directory (the latest checkpoint there, as its ``checkpoint``
        file says).
      return_kinds: whether to return each layer's kind too, as matching by
        order sees it (see :mod:`jdeconv.io`).

    Returns:
      Names (``decoder/conv2d_transpose/kernel``) to arrays, in natural order.
      With ``return_kinds=True``, the pair ``(arrays, kinds)``: ``kinds`` maps
      each layer's name to its kind (``"conv_transpose"``, ``"dense"``, ``"conv
      or conv_transpose"`` where the source cannot tell, ``"unknown"``, ...).

    Raises:
      FileNotFoundError, PermissionError: if no checkpoint is there.
      ValueError: if TensorFlow cannot read the checkpoint or one of its
        entries (naming the path and the entry).
      ImportError: without TensorFlow.

    Example:
      >>> import os, tempfile, numpy as np, tensorflow as tf
      >>> checkpoint = tf.train.Checkpoint(up=tf.Module())
      >>> checkpoint.up.kernel = tf.Variable(np.ones((3, 3, 2, 4), np.float32))
      >>> prefix = checkpoint.save(os.path.join(tempfile.mkdtemp(), "ckpt"))
      >>> {name: array.shape for name, array in read_tf_checkpoint(prefix).items()}
      {'up/kernel': (3, 3, 2, 4)}
    """
    function = "read_tf_checkpoint"
    path = as_path(function, path)
    with located(function, repr(path)):
        return _read(_tf_contents(_tf.resolve(function, path), ""), return_kinds)


# --------------------------------------------------------------------------
# Loaders

_ARGS_DOC = """
    Args:
      {first}
      target: the variables to fill, from ``model.init(...)`` or
        :func:`abstract_variables`; they fix the shapes and dtypes.
      mapping: source layer name to target module path (``"a/b"`` or a
        tuple), or to ``None`` to skip a layer. Names left out are matched by
        name, then in order.
      prefix: only variables whose names start with it are read, without it
        (``"decoder."`` loads the decoder of a whole autoencoder).
      strict: whether every source weight and every target variable must be
        matched. With ``False``, target variables without a source keep their
        values from ``target`` (which must then hold values, not only
        shapes), and source weights without a target are left unused; the
        report lists both.
      allow_cast: whether integer, bool and complex weights may be converted
        to the target's dtype (only when every value survives). Floating-point
        weights are always cast to the target's floating-point dtype, and a
        value that overflows it is an error either way.
      return_report: whether to return a :class:`LoadReport` too.
"""

_FIRST_ARG = {
    "load_torch_state_dict": (
        "source: as for :func:`read_torch_state_dict`: a ``.safetensors`` or\n"
        "        ``torch.save`` file, a mapping of arrays or a torch module."
    ),
    "load_keras_weights": (
        "path: a Keras 3 ``.weights.h5`` or ``.keras`` file, or a Keras 2 ``.h5``."
    ),
    "load_tf_checkpoint": (
        "path: the checkpoint prefix (what ``save()`` returns), its ``.index``\n"
        "        file, or its directory."
    ),
}


@overload
def load_torch_state_dict(
    source: PathLike | Mapping[str, Any],
    target: Mapping[str, Any],
    mapping: LayerMapping | None = ...,
    *,
    prefix: str = ...,
    strict: bool = ...,
    allow_cast: bool = ...,
    return_report: Literal[False] = ...,
) -> dict[str, Any]: ...
@overload
def load_torch_state_dict(
    source: PathLike | Mapping[str, Any],
    target: Mapping[str, Any],
    mapping: LayerMapping | None = ...,
    *,
    prefix: str = ...,
    strict: bool = ...,
    allow_cast: bool = ...,
    return_report: Literal[True],
) -> tuple[dict[str, Any], LoadReport]: ...
def load_torch_state_dict(
    source: PathLike | Mapping[str, Any],
    target: Mapping[str, Any],
    mapping: LayerMapping | None = None,
    *,
    prefix: str = "",
    strict: bool = True,
    allow_cast: bool = False,
    return_report: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], LoadReport]:
    """Fills Flax variables from a PyTorch state dict.

    Source layers are the state dict's module prefixes (``decoder.0`` for
    ``decoder.0.weight``), in the state dict's order. Each fills one target
    module; the layouts are converted as the table in :mod:`jdeconv.io`
    says (e.g. a ``ConvTranspose2d`` weight to a :class:`jdeconv.Conv2DTranspose`
    kernel, or unchanged into :class:`jdeconv.torch_compat.ConvTranspose2d`).
    ``num_batches_tracked`` and the other entries of a training checkpoint
    (an optimizer's state, the epoch) are skipped.

    {args}

    Returns:
      Variables shaped like ``target`` (all its collections), holding the
      source's weights as JAX arrays of the target's dtypes; with
      ``return_report=True``, the pair ``(variables, report)``. ``target`` is
      never modified.

    Raises:
      FileNotFoundError, IsADirectoryError, PermissionError: if the path is not
        a readable file.
      ValueError: if the file cannot be read, or for a shape mismatch, a dtype
        that the policy refuses, an unknown name in ``mapping`` or an order that
        does not match. The message names the function, the path, the entry
        and what was wrong.
      TypeError: if ``target`` is not Flax variables.
      ImportError: if the file's format needs a missing package.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from jdeconv import io, torch_compat
      >>> layer = torch_compat.ConvTranspose2d(4, 2, kernel_size=3, stride=2)
      >>> target = io.abstract_variables(layer, jnp.ones((1, 4, 5, 5)))
      >>> state = {"weight": np.ones((4, 2, 3, 3)), "bias": np.ones(2)}
      >>> io.load_torch_state_dict(state, target)["params"]["weight"].shape
      (4, 2, 3, 3)
    """
    function = "load_torch_state_dict"
    location, source, classes = _torch_source(function, source)
    with located(function, location):
        contents = _torch_contents(source, prefix, classes)
        return _finish(
            function, location, contents, target, mapping, strict, allow_cast, return_report
        )


@overload
def load_keras_weights(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: LayerMapping | None = ...,
    *,
    prefix: str = ...,
    strict: bool = ...,
    allow_cast: bool = ...,
    return_report: Literal[False] = ...,
) -> dict[str, Any]: ...
@overload
def load_keras_weights(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: LayerMapping | None = ...,
    *,
    prefix: str = ...,
    strict: bool = ...,
    allow_cast: bool = ...,
    return_report: Literal[True],
) -> tuple[dict[str, Any], LoadReport]: ...
def load_keras_weights(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: LayerMapping | None = None,
    *,
    prefix: str = "",
    strict: bool = True,
    allow_cast: bool = False,
    return_report: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], LoadReport]:
    """Fills Flax variables from a Keras weights file, without TensorFlow.

    Source layers are Keras layers, named by their names from the model down
    (``up1``, or ``decoder/up1`` inside a nested model); a Keras 3 group path
    such as ``layers/conv2d_transpose_1`` names one too. Keras 2 files keep
    the layers' order. Keras 3 files keep it only among layers of one class
    (``conv2d_transpose``, ``conv2d_transpose_1``, ...), so the order across
    classes is inferred from the shapes, and ``mapping`` settles any
    ambiguity. Kernels need no conversion for jdeconv's layers or Flax's
    ``Dense`` and ``Conv``. Optimizer state is skipped.

    {args}

    Returns:
      Variables shaped like ``target`` (with ``return_report=True``, the pair
      ``(variables, report)``).

    Raises:
      FileNotFoundError, IsADirectoryError, PermissionError: if the path is not
        a readable file.
      ValueError: as :func:`load_torch_state_dict`, and for a file that would
        read other files (external links or storage, virtual datasets, filter
        plugins).
      ImportError: without h5py.

    Example:
      >>> import os, tempfile, h5py, jax, numpy as np, flax.linen as nn
      >>> path = os.path.join(tempfile.mkdtemp(), "head.weights.h5")
      >>> with h5py.File(path, "w") as file:  # What Keras 3 writes for a Dense layer.
      ...     layer = file.create_group("layers/dense/vars")
      ...     layer["0"], layer["1"] = np.ones((4, 2)), np.zeros(2)
      >>> target = nn.Dense(2).init(jax.random.key(0), np.ones((1, 4)))
      >>> variables, report = load_keras_weights(path, target, return_report=True)
      >>> report.loaded
      (('layers/dense/vars/0', 'params/kernel'), ('layers/dense/vars/1', 'params/bias'))
    """
    function = "load_keras_weights"
    path = check_path(function, path)
    with located(function, repr(path)):
        contents = _keras_contents(path, prefix)
        return _finish(
            function, repr(path), contents, target, mapping, strict, allow_cast, return_report
        )


@overload
def load_tf_checkpoint(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: LayerMapping | None = ...,
    *,
    prefix: str = ...,
    strict: bool = ...,
    allow_cast: bool = ...,
    return_report: Literal[False] = ...,
) -> dict[str, Any]: ...
@overload
def load_tf_checkpoint(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: LayerMapping | None = ...,
    *,
    prefix: str = ...,
    strict: bool = ...,
    allow_cast: bool = ...,
    return_report: Literal[True],
) -> tuple[dict[str, Any], LoadReport]: ...
def load_tf_checkpoint(
    path: PathLike,
    target: Mapping[str, Any],
    mapping: LayerMapping | None = None,
    *,
    prefix: str = "",
    strict: bool = True,
    allow_cast: bool = False,
    return_report: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], LoadReport]:
    """Fills Flax variables from a TensorFlow checkpoint (needs TensorFlow).

    Reads what ``tf.train.Checkpoint.save()`` / ``.write()``, a
    ``tf.train.CheckpointManager``, Keras ``model.save_weights()`` in
    TensorFlow's format and ``tf.compat.v1.train.Saver`` write. Source layers
    are the variables' paths in the object graph (``model/layer_with_weights-2``)
    or their scopes (``decoder/conv2d_transpose_1`` for
    ``decoder/conv2d_transpose_1/kernel``, as ``tf.compat.v1.layers`` names
    them). Object-based checkpoints number all layers in order; scoped names
    number each class of layer, so shapes decide across classes, as in
    :func:`load_keras_weights`. Step counters (``save_counter``), optimizer
    state and the object graph are skipped: the report lists them.

    {args}

    Returns:
      Variables shaped like ``target`` (with ``return_report=True``, the pair
      ``(variables, report)``).

    Raises:
      FileNotFoundError, PermissionError: if no checkpoint is there.
      ValueError: as :func:`load_torch_state_dict`, and for a directory whose
        ``checkpoint`` file names a checkpoint outside it.
      ImportError: without TensorFlow.

    Example:
      >>> import os, tempfile, jax, numpy as np, tensorflow as tf, flax.linen as nn
      >>> checkpoint = tf.train.Checkpoint(head=tf.Module())
      >>> checkpoint.head.kernel = tf.Variable(np.ones((4, 2), np.float32))
      >>> checkpoint.head.bias = tf.Variable(np.zeros(2, np.float32))
      >>> prefix = checkpoint.save(os.path.join(tempfile.mkdtemp(), "ckpt"))
      >>> target = nn.Dense(2).init(jax.random.key(0), np.ones((1, 4)))
      >>> variables, report = load_tf_checkpoint(prefix, target, return_report=True)
      >>> report.skipped
      ('_CHECKPOINTABLE_OBJECT_GRAPH', 'save_counter')
    """
    function = "load_tf_checkpoint"
    path = as_path(function, path)
    with located(function, repr(path)):
        contents = _tf_contents(_tf.resolve(function, path), prefix)
        return _finish(
            function, repr(path), contents, target, mapping, strict, allow_cast, return_report
        )


for _loader in (load_torch_state_dict, load_keras_weights, load_tf_checkpoint):
    _loader.__doc__ = _docstrings.fill(
        _loader.__doc__, "args", _ARGS_DOC.format(first=_FIRST_ARG[_loader.__name__])
    )
