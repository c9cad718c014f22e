"""A small Keras 2 decoder and its Flax port, shared by the Keras and TF-checkpoint tests.

The port's modules are auto-named, so loading its weights matches them by order.
"""

from __future__ import annotations

import flax.linen as nn

import jdeconv


def keras2_decoder(keras):
    """Dense, a SAME transposed convolution, batch norm, and one with output padding."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Dense(5, name="proj")(inputs)
    x = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="up")(x)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2DTranspose(2, 4, strides=2, output_padding=1, name="rgb")(x)
    return keras.Model(inputs, x)


class Port(nn.Module):
    """The decoder in Flax, with auto-named modules: matched by order."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(5)(x)
        x = jdeconv.Conv2DTranspose(6, 3, strides=2, padding="same")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-3)(x))
        return jdeconv.Conv2DTranspose(2, 4, strides=2, output_padding=1)(x)
