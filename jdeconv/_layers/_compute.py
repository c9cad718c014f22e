"""What every layer front end computes once it holds the variables.

The linen modules, the NNX modules and the functional layers differ only in
where they keep ``kernel`` and ``bias``; given those, each checks its input
with :func:`check_inputs` and computes its output with :func:`layer_output`:
one geometry, then the primitive (:func:`jdeconv._primitives.apply`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jdeconv import _checks, _primitives
from jdeconv._layers._config import LayerConfig


def check_inputs(config: LayerConfig, inputs: Any) -> tuple[jax.Array, int]:
    """The input as an array, and its channel count (checked against ``groups``)."""
    x = _checks.array(config.function, "inputs", inputs)
    return x, config.in_channels(x.shape)


def check_variable(
    config: LayerConfig, name: str, value: jax.Array, shape: tuple[int, ...]
) -> None:
    """Checks the shape of a stored (e.g. loaded) ``kernel`` or ``bias``."""
    if tuple(value.shape) != shape:
        expected = (
            "[*kernel_size, filters // groups, in_channels]" if name == "kernel" else "[filters]"
        )
        raise ValueError(
            f"{config.function}: `{name}` has shape {tuple(value.shape)}, but this layer "
            f"and input need {shape} ({expected})."
        )


def layer_output(
    config: LayerConfig, x: jax.Array, kernel: jax.Array, bias: jax.Array | None
) -> jax.Array:
    """``activation(conv_transpose(x, kernel) + bias)``, at Keras' output size.

    ``x``, ``kernel`` and ``bias`` are cast to ``config.dtype``, or to their
    promoted dtype where it is ``None``.
    """
    arrays = (x, kernel) if bias is None else (x, kernel, bias)
    dtype = jnp.dtype(config.dtype) if config.dtype is not None else jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{config.function}: `inputs` and the layer's variables must promote to a "
            f"floating-point dtype, got {dtype} from "
            f"{', '.join(str(a.dtype) for a in arrays)}."
        )
    outputs = _primitives.apply(
        x.astype(dtype),
        kernel.astype(dtype),
        config.geometry(x.shape),
        method=config.method,
        precision=config.precision,
        preferred_element_type=None,
    )
    if bias is not None:
        bias = bias.astype(dtype)
        if not config.channels_last:
            bias = bias.reshape((config.filters,) + (1,) * config.num_spatial)
        outputs = outputs + bias
    if config.activation is not None:
        outputs = config.activation(outputs)
    return outputs
