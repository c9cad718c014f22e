"""Kinds of layers: what a source layer is, what a target module is, and which fit.

Matching by order pairs a source layer only with a target module of a compatible
kind, so that a transposed convolution never fills a plain convolution whose
kernel happens to have the same shape. A kind is a set of possibilities:

* a class name, where the source records one (a Keras 3 group path such as
  ``layers/conv2d_transpose_3``, the model config of a ``.keras`` or Keras 2
  ``.h5`` file, a PyTorch module's type) or where a name follows a framework's
  default naming (``conv2d_transpose_1`` in Keras and ``tf.compat.v1``,
  ``ConvTranspose_0`` in Flax), says which kind it is;
* otherwise the variables narrow it down: a kernel of rank 3 or more is a
  convolution of one kind or the other, one of rank 2 a dense layer, moving
  statistics a norm;
* the two are combined, and a class that the variables contradict is ignored.

Two kinds are compatible when they share a possibility; an unknown kind (a
module you named yourself, a custom layer) has every possibility.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jdeconv.io._contents import Layer
    from jdeconv.io._targets import Module

CONV = "conv"
CONV_TRANSPOSE = "conv_transpose"
DENSE = "dense"
EMBEDDING = "embedding"
NORM = "norm"
ALL = frozenset({CONV, CONV_TRANSPOSE, DENSE, EMBEDDING, NORM})
_CONVOLUTIONS = frozenset({CONV, CONV_TRANSPOSE})

# Class names of Keras (and jdeconv's Keras-style) layers, by kind.
_KERAS_CLASSES = {
    CONV: "Conv1D Conv2D Conv3D Convolution1D Convolution2D Convolution3D DepthwiseConv1D "
    "DepthwiseConv2D",
    CONV_TRANSPOSE: "Conv1DTranspose Conv2DTranspose Conv3DTranspose Convolution2DTranspose "
    "Convolution3DTranspose",
    DENSE: "Dense",
    EMBEDDING: "Embedding",
    NORM: "BatchNormalization LayerNormalization GroupNormalization",
}
# Class names of Flax, jdeconv and PyTorch modules, by kind.
_OTHER_CLASSES = {
    CONV: "Conv Conv1d Conv2d Conv3d LazyConv1d LazyConv2d LazyConv3d",
    CONV_TRANSPOSE: "ConvTranspose ConvTranspose1d ConvTranspose2d ConvTranspose3d "
    "LazyConvTranspose1d LazyConvTranspose2d LazyConvTranspose3d FunctionalConvTranspose",
    DENSE: "Linear LazyLinear",
    EMBEDDING: "Embed Embedding",
    NORM: "BatchNorm LayerNorm GroupNorm RMSNorm InstanceNorm BatchNorm1d BatchNorm2d "
    "BatchNorm3d SyncBatchNorm InstanceNorm1d InstanceNorm2d InstanceNorm3d",
}
_BY_CLASS = {
    name: kind
    for table in (_KERAS_CLASSES, _OTHER_CLASSES)
    for kind, names in table.items()
    for name in names.split()
}


def _snake_case(name: str) -> str:
    """Keras's default layer name for a class: ``Conv2DTranspose`` -> ``conv2d_transpose``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# Keras, tf.compat.v1 and jdeconv.layers name layers after their class (snake case).
_BY_DEFAULT_NAME = {
    _snake_case(name): kind for kind, names in _KERAS_CLASSES.items() for name in names.split()
}
# Flax names a module ClassName_N, Keras and TF a layer class_name_N.
_NUMBERED = re.compile(r"^(.+?)(?:_\d+)?$")


def of_class(name: str | None) -> frozenset[str]:
    """The kind a class name (``Conv2DTranspose``, ``nn.Conv``'s ``Conv``) says."""
    kind = _BY_CLASS.get(name or "")
    return frozenset({kind}) if kind else ALL


def of_name(name: str) -> frozenset[str]:
    """The kind a framework's default name (``conv2d_transpose_3``, ``Conv_0``) says.

    Only the last component counts; a name of any other form says nothing.

    Example:
      >>> sorted(of_name("sequential_2/conv2d_transpose_3")), sorted(of_name("Down_4/Conv_0"))
      (['conv_transpose'], ['conv'])
    """
    last = _NUMBERED.match(name.rsplit("/", 1)[-1])
    base = last.group(1) if last else ""
    kind = _BY_CLASS.get(base) or _BY_DEFAULT_NAME.get(base)
    return frozenset({kind}) if kind else ALL


def of_source_variables(convention: str, variables: Mapping[str, Any]) -> frozenset[str]:
    """What a source layer's variables say: its names and the weight's rank.

    ``convention`` is that of :mod:`jdeconv.io._contents`: PyTorch's names
    (``weight``, ``running_mean``), Keras's (``kernel``, ``gamma``), or Keras 3's
    unnamed variables (``0``, ``1``, ... in the layer's order: the kernel first).
    """
    names = set(variables)
    weight = next(
        (variables[n] for n in ("kernel", "_kernel", "weight", "0") if n in variables), None
    )
    rank = getattr(weight, "ndim", None)
    if rank is not None and rank >= 3:
        return _CONVOLUTIONS
    if names & {"embeddings", "_embeddings"}:
        return frozenset({EMBEDDING})
    if rank == 2:
        # A Keras Dense layer names its weight "kernel"; PyTorch's Linear and
        # Embedding, and Keras 3's unnamed variables, do not tell them apart.
        return frozenset({DENSE}) if "kernel" in names else frozenset({DENSE, EMBEDDING})
    if names & {"running_mean", "moving_mean", "gamma", "beta"}:
        return frozenset({NORM})
    return frozenset({NORM}) if rank == 1 and convention != "keras" else ALL


def of_target_leaves(leaves: Mapping[tuple[str, str], Any]) -> frozenset[str]:
    """What a target module's variables say (``kernel``, ``weight``, ``scale``, ...)."""
    names = {name for _, name in leaves}
    if "mean" in names or "scale" in names:
        return frozenset({NORM})
    if "embedding" in names:
        return frozenset({EMBEDDING})
    for name in ("kernel", "weight"):
        leaf = next((v for (_, n), v in leaves.items() if n == name), None)
        rank = len(getattr(leaf, "shape", ()))
        if leaf is None:
            continue
        if name == "weight" and rank >= 3:  # jdeconv.torch_compat's transposed convolutions.
            return frozenset({CONV_TRANSPOSE})
        if rank >= 3:
            return _CONVOLUTIONS
        if rank == 2:
            return frozenset({DENSE})
    return ALL


def combine(by_variables: frozenset[str], by_name: frozenset[str]) -> frozenset[str]:
    """The kind both say; the variables' alone where a name contradicts them."""
    return (by_variables & by_name) or by_variables


def of_source(convention: str, layer: Layer) -> frozenset[str]:
    """A source layer's kind: its variables', narrowed by its class or default name."""
    return combine(
        of_source_variables(convention, layer.variables), of_name(layer.declared or layer.name)
    )


def of_target(module: Module) -> frozenset[str]:
    """A target module's kind: its variables', narrowed by a Flax auto-name (``Conv_0``).

    A module that you name yourself has only its variables' kind.
    """
    return combine(of_target_leaves(module.leaves), of_name(module.name))


def describe(kind: frozenset[str]) -> str:
    """``conv``, ``conv or conv_transpose``, or ``unknown``."""
    if kind == ALL:
        return "unknown"
    return " or ".join(sorted(kind))
