"""jdeconv: TensorFlow's transposed convolution for JAX, exact and fast.

``import jdeconv`` loads the op only. The layers (and with them ``flax.linen``
and ``flax.nnx``), the Keras-style initializers, regularizers and constraints,
and the training helpers load on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jdeconv import autotune as autotune
from jdeconv._lowerings import METHODS as METHODS
from jdeconv._lowerings import get_default_method as get_default_method
from jdeconv._lowerings import set_default_method as set_default_method
from jdeconv._op import conv1d_transpose as conv1d_transpose
from jdeconv._op import conv2d_transpose as conv2d_transpose
from jdeconv._op import conv3d_transpose as conv3d_transpose
from jdeconv._op import conv_transpose as conv_transpose

if TYPE_CHECKING:
    from jdeconv import constraints as constraints
    from jdeconv import initializers as initializers
    from jdeconv import layers as layers
    from jdeconv import nnx as nnx
    from jdeconv import regularizers as regularizers
    from jdeconv._layers.linen import Conv1DTranspose as Conv1DTranspose
    from jdeconv._layers.linen import Conv2DTranspose as Conv2DTranspose
    from jdeconv._layers.linen import Conv3DTranspose as Conv3DTranspose
    from jdeconv._layers.training import apply_constraints as apply_constraints
    from jdeconv._layers.training import regularization_loss as regularization_loss

__version__ = "0.1.0"

# Public name -> the module that defines it (or, for a submodule, None).
_LAZY: dict[str, str | None] = {
    "constraints": None,
    "initializers": None,
    "layers": None,
    "nnx": None,
    "regularizers": None,
    "Conv1DTranspose": "jdeconv._layers.linen",
    "Conv2DTranspose": "jdeconv._layers.linen",
    "Conv3DTranspose": "jdeconv._layers.linen",
    "apply_constraints": "jdeconv._layers.training",
    "regularization_loss": "jdeconv._layers.training",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'jdeconv' has no attribute {name!r}")
    module = _LAZY[name]
    value = (
        importlib.import_module(f"jdeconv.{name}")
        if module is None
        else getattr(importlib.import_module(module), name)
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
