"""What a reader hands to the matching: arrays by name, grouped into layers."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

# Source conventions: how variables are named and laid out.
TORCH, KERAS, KERAS_UNNAMED = "torch", "keras", "keras_unnamed"


@dataclasses.dataclass
class Layer:
    """One source layer: its variables, by their name within the layer.

    Attributes:
      name: the layer's name (``decoder.up1``, ``decoder/up1``; ``""`` for the root).
      variables: variable name within the layer to array.
      full_names: variable name within the layer to the entry's name in the
        source, for messages.
      chain: the kind of layer whose members are ordered by ``index`` (see
        :func:`chain`); ``""`` when the source keeps all layers' order.
      index: the layer's place within its chain.
      aliases: other names that refer to the layer in ``mapping`` (a Keras 3
        HDF5 group path).
      declared: what the source says the layer is, where it says it: a class
        name (``Conv2DTranspose`` from a model config, a PyTorch module's
        type) or a name that Keras derives from the class
        (``conv2d_transpose_3``, a Keras 3 group); ``None`` otherwise (see
        :mod:`jdeconv.io._kinds`).
    """

    name: str
    variables: dict[str, np.ndarray]
    full_names: dict[str, str]
    chain: str = ""
    index: tuple[int, ...] = ()
    aliases: tuple[str, ...] = ()
    declared: str | None = None


@dataclasses.dataclass(frozen=True)
class Contents:
    """What a reader found in a source.

    Attributes:
      convention: how the source names and lays out its variables.
      layers: the source's layers, in the source's order.
      skipped: the entries that are not model weights (bookkeeping, optimizer
        state), left out of ``layers``.
    """

    convention: str
    layers: list[Layer]
    skipped: tuple[str, ...] = ()

    def arrays(self) -> dict[str, np.ndarray]:
        """The variables by their full names (``layer/variable``), in order."""
        separator = "." if self.convention == TORCH else "/"
        return {
            f"{layer.name}{separator}{leaf}" if layer.name else leaf: array
            for layer in self.layers
            for leaf, array in layer.variables.items()
        }


_NUMBERED = re.compile(r"^(.*?)[-_](\d+)$")
_OBJECT_GRAPH_LAYER = re.compile(r"^(layer_with_weights|layer)-(\d+)$")


def chain(name: str, separator: str = "/") -> tuple[str, tuple[int, ...]]:
    """The kind of a numbered layer name and its place within that kind.

    ``conv2d_transpose_2`` is the third ``conv2d_transpose``; the components
    ``layer_with_weights-3`` of TensorFlow's object graph, and the indices
    ``decoder.3`` of a PyTorch ``Sequential``, number all layers alike, so
    they make one kind.

    Example:
      >>> chain("decoder/conv2d_transpose_2")
      ('decoder/conv2d_transpose', (0, 2))
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


def group(
    convention: str,
    arrays: Mapping[str, np.ndarray],
    *,
    ordered: bool,
    skipped: tuple[str, ...] = (),
    classes: Mapping[str, str] | None = None,
) -> Contents:
    """Groups ``layer<sep>variable`` names into layers, keeping first-seen order.

    Args:
      convention: :data:`TORCH` (``.`` separates names) or :data:`KERAS` (``/``).
      arrays: full variable names to arrays.
      ordered: whether the source keeps its layers' order (else the order is
        only that of numbered names, see :func:`chain`).
      skipped: entries the reader left out.
      classes: layer names to the class names the source records.
    """
    separator = "." if convention == TORCH else "/"
    layers: dict[str, Layer] = {}
    for full_name, array in arrays.items():
        layer_name, _, leaf = full_name.rpartition(separator)
        layer = layers.get(layer_name)
        if layer is None:
            kind, index = ("", ()) if ordered else chain(layer_name, separator)
            declared = (classes or {}).get(layer_name)
            layer = layers[layer_name] = Layer(layer_name, {}, {}, kind, index, declared=declared)
        layer.variables[leaf] = array
        layer.full_names[leaf] = full_name
    return Contents(convention, list(layers.values()), skipped)


def natural_key(name: str) -> list[Any]:
    """Sorts ``layer_10`` after ``layer_9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
