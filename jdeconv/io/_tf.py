"""Reader of TensorFlow checkpoints (needs TensorFlow).

A checkpoint is a prefix: ``<prefix>.index`` (a table of entries) and the
``<prefix>.data-*`` shards. It holds tensors, never code. TensorFlow's reader
checks the CRC-32C of every table block of the index and of every tensor it
reads, so damage is caught. A directory names the checkpoint in its
``checkpoint`` file; jdeconv follows that file only to a checkpoint in the
same directory.

Which entries are model weights:

* Object-based checkpoints (``tf.train.Checkpoint``, ``CheckpointManager``,
  Keras ``save_weights`` in TensorFlow's format) hold their object graph.
  Variables are named by their path in that graph, from the root, without
  passing through an optimizer (an object with slot variables or an
  iteration counter). Optimizer state, ``save_counter``, integer scalars
  beside the model at the root (``step``, ``epoch``), non-variable state
  (dataset iterators) and the object graph itself are skipped.
* Name-based checkpoints (``tf.compat.v1.train.Saver``) are read by name:
  ``global_step``, Adam's ``beta1_power`` / ``beta2_power`` and the slots
  that optimizers add (``.../Adam``, ``.../Momentum``, ...) are skipped.
"""

from __future__ import annotations

import codecs
import collections
import glob
import os
import re
from typing import Any

import numpy as np

from jdeconv.io._contents import natural_key
from jdeconv.io._errors import SourceError, check_path, entry, require

_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VARIABLE = "VARIABLE_VALUE"
_ATTRIBUTES = "/.ATTRIBUTES/"
_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")

# A directory's `checkpoint` file (a CheckpointState proto in text format):
# the line that names the latest checkpoint, as a C-escaped string.
_LATEST = re.compile(rb'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\\n]|\\.)*)"\s*$', re.MULTILINE)
_STATE_LIMIT = 1 << 20

# Children that only optimizers have: an iteration counter.
_OPTIMIZER_CHILDREN = frozenset({"iter", "_iterations", "iterations"})

# Name-based checkpoints: bookkeeping and optimizer slots.
_V1_SKIPPED = re.compile(
    r"(^|/)(global_step|beta[12]_power)$"
    r"|^optimizer/"
    r"|/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|Adadelta|Adadelta_\d+|"
    r"Ftrl|Ftrl_\d+|ExponentialMovingAverage)$"
)


def resolve(function: str, path: str) -> str:
    """The prefix of the checkpoint at ``path``, with its ``.index`` file checked.

    ``path`` is a prefix, its ``.index`` or ``.data-*`` file, or a directory
    (its ``checkpoint`` file's latest checkpoint, or its only ``.index``).

    Raises:
      FileNotFoundError, IsADirectoryError, PermissionError, ValueError: from
        :func:`~jdeconv.io._errors.check_path`, for the path or the index.
      SourceError: for a directory without one checkpoint in it, or whose
        ``checkpoint`` file names a checkpoint elsewhere.
    """
    if os.path.lexists(path):
        check_path(function, path, directory=True)
        if os.path.isdir(path):
            prefix = _latest(function, path)
        elif path.endswith(".index") or _SHARD.search(path):
            prefix = _SHARD.sub("", path.removesuffix(".index"))
        elif os.path.lexists(path + ".index"):
            prefix = path
        else:
            raise SourceError(
                "not a TensorFlow checkpoint: pass its prefix (the path without "
                "'.index'), its .index file or its directory."
            )
    elif os.path.lexists(path + ".index"):
        prefix = path
    else:
        raise FileNotFoundError(
            f"{function}: no TensorFlow checkpoint at {path!r}: neither a directory nor "
            f"a prefix with a {os.path.basename(path) + '.index'!r} file."
        )
    check_path(function, prefix + ".index")
    for shard in glob.glob(glob.escape(prefix) + ".data-*"):
        if not os.path.isfile(shard):  # A pipe would make TensorFlow wait forever.
            raise SourceError(
                "not a regular file (a device, a pipe or a socket), so not a checkpoint shard.",
                os.path.basename(shard),
            )
    return prefix


def _latest(function: str, directory: str) -> str:
    state_file = os.path.join(directory, "checkpoint")
    if os.path.lexists(state_file):
        check_path(function, state_file)
        with entry("checkpoint", "cannot read it"), open(state_file, "rb") as file:
            text = file.read(_STATE_LIMIT)
        found = _LATEST.search(text)
        if found is None:
            raise SourceError(
                'it names no checkpoint: TensorFlow writes a line model_checkpoint_path: "...".',
                "checkpoint",
            )
        with entry("checkpoint", "cannot decode its model_checkpoint_path"):
            named = codecs.escape_decode(found.group(1))[0].decode("utf8")
        prefix = named if os.path.isabs(named) else os.path.join(directory, named)
        if _inside(prefix, directory):
            return prefix
        # A moved directory keeps the absolute paths of tf.compat.v1's Saver.
        moved = os.path.join(directory, os.path.basename(named))
        if os.path.isabs(named) and os.path.isfile(moved + ".index"):
            return moved
        raise SourceError(
            f"it names the checkpoint {named!r}, outside the directory; jdeconv reads "
            f"only the directory's own files. Pass that checkpoint's prefix itself to "
            f"load it.",
            "checkpoint",
        )
    indexes = sorted(name for name in os.listdir(directory) if name.endswith(".index"))
    if len(indexes) != 1:
        raise SourceError(
            "a directory without a 'checkpoint' file and with "
            + (f"{len(indexes)} checkpoints {indexes[:8]}" if indexes else "no .index file")
            + "; pass the prefix of the checkpoint to load."
        )
    return os.path.join(directory, indexes[0].removesuffix(".index"))


def _inside(path: str, directory: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([real, base]) == base


def read_prefix(prefix: str) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The model variables of the checkpoint at ``prefix``, and the skipped entries.

    The variables are named as the module doc says, in natural order.

    Raises:
      SourceError: if TensorFlow cannot read the checkpoint or an entry.
      MissingPackageError: without TensorFlow.
    """
    tf = require("tensorflow", "reading TensorFlow checkpoints needs TensorFlow.")
    with entry(None, "TensorFlow cannot read it as a checkpoint"):
        reader = tf.train.load_checkpoint(prefix)
        dtypes = reader.get_variable_to_dtype_map()
        shapes = reader.get_variable_to_shape_map()
    if _GRAPH_KEY in dtypes:
        with entry(_GRAPH_KEY, "TensorFlow cannot read it"):
            graph = _object_graph(reader.get_tensor(_GRAPH_KEY))
        names = _graph_names(graph, dtypes, shapes)
    else:
        names = {key: key for key in dtypes if not _V1_SKIPPED.search(key)}
    arrays = {}
    for key, name in sorted(names.items(), key=lambda item: natural_key(item[1])):
        with entry(name, "TensorFlow cannot read it"):
            arrays[name] = np.asarray(reader.get_tensor(key))
    skipped = tuple(
        sorted(
            (key.removesuffix(_ATTRIBUTES + _VARIABLE) for key in dtypes if key not in names),
            key=natural_key,
        )
    )
    return arrays, skipped


def _object_graph(serialized: Any) -> Any:
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(serialized)
    return graph


def _graph_names(graph: Any, dtypes: dict[str, Any], shapes: dict[str, Any]) -> dict[str, str]:
    """Checkpoint keys of the model variables to their names (graph paths)."""
    nodes = graph.nodes
    if not nodes:
        raise SourceError("the object graph is empty.", _GRAPH_KEY)
    for node in nodes:
        for child in node.children:
            if not 0 <= child.node_id < len(nodes):
                raise SourceError(
                    f"the object graph refers to node {child.node_id}, of {len(nodes)}.",
                    _GRAPH_KEY,
                )
    optimizers = {
        node_id
        for node_id, node in enumerate(nodes)
        if node.slot_variables or any(c.local_name in _OPTIMIZER_CHILDREN for c in node.children)
    }
    names: dict[str, str] = {}
    seen = {0}
    queue: collections.deque[tuple[int, tuple[str, ...]]] = collections.deque([(0, ())])
    while queue:  # Breadth first: each variable gets its shortest path.
        node_id, path = queue.popleft()
        for attribute in nodes[node_id].attributes:
            key = attribute.checkpoint_key
            if attribute.name == _VARIABLE and key in dtypes and path:
                if len(path) == 1 and _bookkeeping(path[0], dtypes[key], shapes[key]):
                    continue
                names.setdefault(key, "/".join(path))
        for child in nodes[node_id].children:
            if child.node_id not in seen and child.node_id not in optimizers:
                seen.add(child.node_id)
                queue.append((child.node_id, (*path, child.local_name)))
    return names


def _bookkeeping(name: str, dtype: Any, shape: Any) -> bool:
    """Whether a variable at the root is a counter (``save_counter``, ``step``)."""
    return name == "save_counter" or (
        not list(shape) and not (dtype.is_floating or dtype.is_complex)
    )
