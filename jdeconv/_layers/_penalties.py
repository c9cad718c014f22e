"""The regularization penalties of a layer, as Keras computes them.

The front ends store them their own way (linen sows them into
:data:`LOSSES_COLLECTION`, NNX as ``jdeconv.nnx.RegularizationLoss``);
:func:`jdeconv.regularization_loss` sums them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jdeconv._layers._config import LayerConfig

#: The linen collection the layers sow their regularization penalties into.
LOSSES_COLLECTION = "losses"


def weight_penalties(
    config: LayerConfig, kernel: jax.Array, bias: jax.Array | None
) -> dict[str, jax.Array]:
    """The kernel and bias penalties, keyed ``kernel_regularizer`` / ``bias_regularizer``."""
    penalties = {}
    if config.kernel_regularizer is not None:
        penalties["kernel_regularizer"] = jnp.asarray(config.kernel_regularizer(kernel))
    if config.bias_regularizer is not None and bias is not None:
        penalties["bias_regularizer"] = jnp.asarray(config.bias_regularizer(bias))
    return penalties


def activity_penalty(config: LayerConfig, outputs: jax.Array) -> jax.Array | None:
    """The activity penalty divided by the batch size, as Keras' ``Layer`` does.

    A batch of size 0 gives 0 (Keras divides with ``divide_no_nan``).
    """
    if config.activity_regularizer is None:
        return None
    penalty = jnp.asarray(config.activity_regularizer(outputs))
    batch_size = outputs.shape[0]
    if batch_size == 0:
        return jnp.zeros_like(penalty)
    return penalty / jnp.asarray(batch_size, penalty.dtype)


def keep_latest(previous: Any, new: Any) -> Any:
    """The ``reduce_fn`` that sows a weight penalty once: a later value replaces it."""
    del previous
    return new


def no_penalty() -> jax.Array:
    """The ``init_fn`` paired with :func:`keep_latest`."""
    return jnp.zeros(())
