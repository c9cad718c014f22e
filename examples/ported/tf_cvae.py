"""TensorFlow's convolutional VAE tutorial: the decoder, ported to Flax.

The original is https://www.tensorflow.org/tutorials/generative/cvae: a decoder
from a 2-number latent code to 28x28 logits (``Dense``, ``Reshape``, three
``Conv2DTranspose``), trained with Adam(1e-4) on binarized MNIST.

The script builds the decoder as the tutorial writes it, trains it two steps on
the reconstruction loss, saves it every way TensorFlow saves a model, loads each
into the port with no ``mapping``, checks the outputs, then checks one training
step of the decoder's loss (the sigmoid cross-entropy summed over pixels,
averaged over the batch: the part of the tutorial's loss that depends on the
decoder, for given latent codes). The tutorial's sizes are small enough for
every run.

    python examples/ported/tf_cvae.py
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile

import flax.linen as nn
import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gallery

import jdeconv

LATENT_DIM = 2
LEARNING_RATE = 1e-4

# --------------------------------------------------------------------------
# The original, as the tutorial writes it (`tf.keras` as `keras`).


def make_decoder(keras, latent_dim=LATENT_DIM):
    """The tutorial's ``CVAE.decoder``."""
    return keras.Sequential(
        [
            keras.Input((latent_dim,)),
            keras.layers.Dense(units=7 * 7 * 32, activation="relu"),
            keras.layers.Reshape(target_shape=(7, 7, 32)),
            keras.layers.Conv2DTranspose(
                filters=64, kernel_size=3, strides=2, padding="same", activation="relu"
            ),
            keras.layers.Conv2DTranspose(
                filters=32, kernel_size=3, strides=2, padding="same", activation="relu"
            ),
            # No activation
            keras.layers.Conv2DTranspose(filters=1, kernel_size=3, strides=1, padding="same"),
        ]
    )


def tf_train_step(decoder, optimizer, z, x):
    """The decoder's part of ``compute_loss``: ``-mean(logpx_z)``."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        x_logit = decoder(z, training=True)
        cross_ent = tf.nn.sigmoid_cross_entropy_with_logits(logits=x_logit, labels=x)
        loss = tf.reduce_mean(tf.reduce_sum(cross_ent, axis=[1, 2, 3]))
    grads = tape.gradient(loss, decoder.trainable_variables)
    optimizer.apply_gradients(zip(grads, decoder.trainable_variables))
    return float(loss), grads


# --------------------------------------------------------------------------
# The port


class Decoder(nn.Module):
    """The decoder: jdeconv's Conv2DTranspose takes Keras's arguments."""

    @nn.compact
    def __call__(self, z):
        """Logits of 28x28 images from latent codes."""
        x = nn.relu(nn.Dense(7 * 7 * 32)(z)).reshape(-1, 7, 7, 32)
        x = jdeconv.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(x)
        x = jdeconv.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
        return jdeconv.Conv2DTranspose(1, 3, strides=1, padding="same")(x)


@functools.partial(jax.jit, static_argnums=(0, 2))
def flax_train_step(port, variables, optimizer, z, x):
    """The same step in JAX."""
    state = optimizer.init(variables["params"])  # A fresh optimizer.

    def loss_fn(params):
        logits = port.apply({"params": params}, z)
        return optax.sigmoid_binary_cross_entropy(logits, x).sum(axis=(1, 2, 3)).mean()

    loss, grads = jax.value_and_grad(loss_fn)(variables["params"])
    step, _ = optimizer.update(grads, state, variables["params"])
    return loss, grads, {"params": optax.apply_updates(variables["params"], step)}


# --------------------------------------------------------------------------
# The checks


def build_and_train(keras, z, x, steps=2, seed=0):
    """The decoder, built and trained ``steps`` steps, with its optimizer."""
    keras.utils.set_random_seed(seed)
    decoder = make_decoder(keras)
    optimizer = keras.optimizers.Adam(LEARNING_RATE)
    for _ in range(steps):
        tf_train_step(decoder, optimizer, z, x)
    return decoder, optimizer


def main(batch=8, directory=None):
    """Saves, loads and checks every format, then one training step; returns what passed."""
    import keras
    import tf_keras

    rng = np.random.default_rng(2026)
    z = rng.standard_normal((batch, LATENT_DIM)).astype(np.float32)
    x = (rng.random((batch, 28, 28, 1)) > 0.5).astype(np.float32)  # Binarized, as MNIST.
    decoder, optimizer = build_and_train(keras, z, x)
    tf_keras_decoder, _ = build_and_train(tf_keras, z, x)
    expected = {
        "source": {"decoder": decoder(z, training=False)},
        "tf_keras": {"decoder": tf_keras_decoder(z, training=False)},
    }
    with tempfile.TemporaryDirectory() as scratch:
        formats = gallery.save_tf_formats(
            directory or scratch,
            {"decoder": decoder},
            {"optimizer": optimizer},
            {"decoder": tf_keras_decoder},
        )
        done = gallery.check_loads(formats, {"decoder": (Decoder(), z)}, expected)

    target = jdeconv.io.abstract_variables(Decoder(), z)
    variables = gallery.keras_variables(decoder, target)
    adam = gallery.keras_adam(LEARNING_RATE)
    flax_loss, flax_grads, flax_after = flax_train_step(Decoder(), variables, adam, z, x)
    tf_loss, tf_grads = tf_train_step(decoder, keras.optimizers.Adam(LEARNING_RATE), z, x)
    gallery.assert_close(flax_loss, tf_loss, "loss")
    gallery.check_step(
        adam,
        LEARNING_RATE,
        variables,
        flax_grads,
        flax_after,
        gallery.keras_tree(decoder, tf_grads, target),
        gallery.keras_variables(decoder, target),
    )
    done.append("one training step: loss, gradients and weights after Adam match")
    return done


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    for line in main():
        print(line)
