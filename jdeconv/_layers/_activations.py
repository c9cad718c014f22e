"""Keras' activation names, as JAX functions with Keras' definitions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jdeconv import _keras_names

#: A resolved activation: a function of the layer's output.
Activation = Callable[[jax.Array], jax.Array]


def _keras_hard_sigmoid(x: jax.Array) -> jax.Array:
    # tf_keras: clip(0.2 * x + 0.5, 0, 1), not jax.nn.hard_sigmoid.
    return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def _keras_gelu(x: jax.Array) -> jax.Array:
    # tf_keras' gelu is exact by default; jax.nn.gelu approximates by default.
    return jax.nn.gelu(x, approximate=False)


def _keras_leaky_relu(x: jax.Array) -> jax.Array:
    # tf.nn.leaky_relu's default slope is 0.2 (jax.nn.leaky_relu's is 0.01).
    return jax.nn.leaky_relu(x, negative_slope=0.2)


#: Keras activation names and their JAX equivalents (``"linear"``: none).
ACTIVATIONS: Mapping[str, Activation | None] = {
    "linear": None,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": _keras_leaky_relu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu": _keras_gelu,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": _keras_hard_sigmoid,
    "tanh": jnp.tanh,
    "softmax": jax.nn.softmax,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "swish": jax.nn.silu,
    "silu": jax.nn.silu,
    "mish": jax.nn.mish,
    "exponential": jnp.exp,
}


def get(identifier: Any, *, function: str, argument: str) -> Activation | None:
    """The activation a user's ``identifier`` names: ``None``, a name or a callable.

    >>> get("linear", function="f", argument="activation") is None
    True

    Raises:
      ValueError: on an unknown name.
      TypeError: on anything that is neither ``None``, a string nor callable.
    """
    return _keras_names.resolve_optional(
        identifier,
        _FACTORIES,
        function=function,
        argument=argument,
        signature="activation(x)",
    )


def _factory(activation: Activation | None) -> Callable[[], Any]:
    def build() -> Activation | None:
        return activation

    return build


_FACTORIES: Mapping[str, Callable[[], Any]] = {
    name: _factory(activation) for name, activation in ACTIVATIONS.items()
}
