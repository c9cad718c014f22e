"""TensorFlow's DCGAN tutorial: generator and discriminator, ported to Flax.

The original is https://www.tensorflow.org/tutorials/generative/dcgan: a generator
of 28x28 images from 100 numbers (``Dense``, ``BatchNormalization``, ``LeakyReLU``,
three ``Conv2DTranspose``) and a convolutional discriminator (``Conv2D``,
``LeakyReLU``, ``Dropout``, ``Dense``), trained together with Adam(1e-4).

This script builds both as the tutorial writes them (``tf.keras`` is Keras 3 in
TensorFlow 2.16 and later; tf_keras builds them again for the ``.h5`` format),
trains them two steps on random images, saves them every way TensorFlow saves a
model, loads each into the Flax port with ``jdeconv.io`` and no ``mapping``, and
checks the outputs. It then runs one training step of the tutorial's
``train_step`` in TensorFlow and in JAX from the same weights, noise and images,
and checks the losses, the gradients, the weights after Adam's update and the
generator's moving statistics. The discriminator's dropout is off for that step
(rate 0 on both sides): its masks come from two different random generators.

    python examples/ported/tf_dcgan.py            # the tutorial's sizes
    python examples/ported/tf_dcgan.py --width 4  # a quarter of the channels
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gallery

import jdeconv

NOISE_DIM = 100
LEARNING_RATE = 1e-4  # The tutorial's Adam(1e-4), for both networks.

# --------------------------------------------------------------------------
# The original, as the tutorial writes it (`tf.keras` as `keras`, and an Input
# layer in place of Keras 2's `input_shape` argument).


def make_generator_model(keras, width=1):
    """The tutorial's generator (``width`` divides the channel counts)."""
    model = keras.Sequential()
    model.add(keras.Input((NOISE_DIM,)))
    model.add(keras.layers.Dense(7 * 7 * 256 // width, use_bias=False))
    model.add(keras.layers.BatchNormalization())
    model.add(keras.layers.LeakyReLU())
    model.add(keras.layers.Reshape((7, 7, 256 // width)))
    model.add(
        keras.layers.Conv2DTranspose(
            128 // width, (5, 5), strides=(1, 1), padding="same", use_bias=False
        )
    )
    model.add(keras.layers.BatchNormalization())
    model.add(keras.layers.LeakyReLU())
    model.add(
        keras.layers.Conv2DTranspose(
            64 // width, (5, 5), strides=(2, 2), padding="same", use_bias=False
        )
    )
    model.add(keras.layers.BatchNormalization())
    model.add(keras.layers.LeakyReLU())
    model.add(
        keras.layers.Conv2DTranspose(
            1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"
        )
    )
    return model


def make_discriminator_model(keras, width=1):
    """The tutorial's discriminator."""
    model = keras.Sequential()
    model.add(keras.Input((28, 28, 1)))
    model.add(keras.layers.Conv2D(64 // width, (5, 5), strides=(2, 2), padding="same"))
    model.add(keras.layers.LeakyReLU())
    model.add(keras.layers.Dropout(0.3))
    model.add(keras.layers.Conv2D(128 // width, (5, 5), strides=(2, 2), padding="same"))
    model.add(keras.layers.LeakyReLU())
    model.add(keras.layers.Dropout(0.3))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(1))
    return model


def tf_train_step(keras, models, optimizers, images, noise):
    """The tutorial's ``train_step``; returns the losses and the gradients."""
    import tensorflow as tf

    generator, discriminator = models
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
        generated_images = generator(noise, training=True)
        real_output = discriminator(images, training=True)
        fake_output = discriminator(generated_images, training=True)
        gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
        disc_loss = cross_entropy(tf.ones_like(real_output), real_output) + cross_entropy(
            tf.zeros_like(fake_output), fake_output
        )
    gen_grads = gen_tape.gradient(gen_loss, generator.trainable_variables)
    disc_grads = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
    optimizers[0].apply_gradients(zip(gen_grads, generator.trainable_variables))
    optimizers[1].apply_gradients(zip(disc_grads, discriminator.trainable_variables))
    return (float(gen_loss), float(disc_loss)), (gen_grads, disc_grads)


# --------------------------------------------------------------------------
# The port


class Generator(nn.Module):
    """The generator: Keras's BatchNormalization is momentum 0.99, epsilon 1e-3."""

    width: int = 1

    @nn.compact
    def __call__(self, noise, train=False):
        """Images from noise; ``train`` normalizes with the batch's statistics."""
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.99, epsilon=1e-3
        )
        w = self.width
        x = nn.Dense(7 * 7 * 256 // w, use_bias=False)(noise)
        x = nn.leaky_relu(norm()(x), 0.3)  # Keras's LeakyReLU layer: slope 0.3.
        x = x.reshape(-1, 7, 7, 256 // w)
        x = jdeconv.Conv2DTranspose(128 // w, 5, strides=1, padding="same", use_bias=False)(x)
        x = nn.leaky_relu(norm()(x), 0.3)
        x = jdeconv.Conv2DTranspose(64 // w, 5, strides=2, padding="same", use_bias=False)(x)
        x = nn.leaky_relu(norm()(x), 0.3)
        return jdeconv.Conv2DTranspose(
            1, 5, strides=2, padding="same", use_bias=False, activation="tanh"
        )(x)


class Discriminator(nn.Module):
    """The discriminator: Flax's "SAME" pads a strided convolution as TensorFlow does."""

    width: int = 1
    dropout_rate: float = 0.3

    @nn.compact
    def __call__(self, images, train=False):
        """Logits; ``train`` turns dropout on."""
        dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
        x = nn.Conv(64 // self.width, (5, 5), strides=2, padding="SAME")(images)
        x = dropout(nn.leaky_relu(x, 0.3))
        x = nn.Conv(128 // self.width, (5, 5), strides=2, padding="SAME")(x)
        x = dropout(nn.leaky_relu(x, 0.3))
        return nn.Dense(1)(x.reshape(x.shape[0], -1))  # Flatten: NHWC order, as Keras.


@functools.partial(jax.jit, static_argnums=(0, 2))
def flax_train_step(ports, variables, optimizer, images, noise):
    """The tutorial's step in JAX: the same losses, gradients and Adam updates."""
    generator, discriminator = ports
    gen_vars, disc_vars = variables
    states = [optimizer.init(v["params"]) for v in variables]  # Fresh optimizers.

    def bce(logits, label):
        return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()

    def losses(gen_params, disc_params):
        fake, updates = generator.apply(
            {**gen_vars, "params": gen_params}, noise, train=True, mutable=["batch_stats"]
        )
        real_output = discriminator.apply({"params": disc_params}, images, train=True)
        fake_output = discriminator.apply({"params": disc_params}, fake, train=True)
        gen_loss = bce(fake_output, 1.0)
        disc_loss = bce(real_output, 1.0) + bce(fake_output, 0.0)
        return gen_loss, disc_loss, updates

    (gen_loss, updates), gen_grads = jax.value_and_grad(
        lambda p: (lambda g, _, u: (g, u))(*losses(p, disc_vars["params"])), has_aux=True
    )(gen_vars["params"])
    disc_loss, disc_grads = jax.value_and_grad(lambda p: losses(gen_vars["params"], p)[1])(
        disc_vars["params"]
    )
    after = []
    for params, grads, state in zip(
        (gen_vars["params"], disc_vars["params"]), (gen_grads, disc_grads), states, strict=True
    ):
        step, _ = optimizer.update(grads, state, params)
        after.append(optax.apply_updates(params, step))
    new_gen = {"params": after[0], "batch_stats": updates["batch_stats"]}
    return (gen_loss, disc_loss), (gen_grads, disc_grads), (new_gen, {"params": after[1]})


# --------------------------------------------------------------------------
# The checks


def build_and_train(keras, width, images, steps=2, seed=0):
    """Both networks built and trained ``steps`` steps, with their optimizers."""
    keras.utils.set_random_seed(seed)
    models = make_generator_model(keras, width), make_discriminator_model(keras, width)
    optimizers = keras.optimizers.Adam(LEARNING_RATE), keras.optimizers.Adam(LEARNING_RATE)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        noise = rng.standard_normal((len(images), NOISE_DIM)).astype(np.float32)
        tf_train_step(keras, models, optimizers, images, noise)
    return models, optimizers


def main(width=1, batch=4, directory=None):
    """Saves, loads and checks every format, then one training step; returns what passed."""
    import keras
    import tf_keras

    rng = np.random.default_rng(2024)
    images = rng.uniform(-1, 1, (batch, 28, 28, 1)).astype(np.float32)  # MNIST's range.
    noise = rng.standard_normal((batch, NOISE_DIM)).astype(np.float32)
    (generator, discriminator), optimizers = build_and_train(keras, width, images)
    (tf_keras_generator, tf_keras_discriminator), _ = build_and_train(tf_keras, width, images)

    ports = {"generator": Generator(width), "discriminator": Discriminator(width)}
    samples = {"generator": noise, "discriminator": images}
    targets = {
        name: jdeconv.io.abstract_variables(port, samples[name]) for name, port in ports.items()
    }
    expected = {
        "source": {
            "generator": generator(noise, training=False),
            "discriminator": discriminator(images, training=False),
        },
        "tf_keras": {
            "generator": tf_keras_generator(noise, training=False),
            "discriminator": tf_keras_discriminator(images, training=False),
        },
    }
    with tempfile.TemporaryDirectory() as scratch:
        formats = gallery.save_tf_formats(
            directory or scratch,
            {"generator": generator, "discriminator": discriminator},
            {"generator_optimizer": optimizers[0], "discriminator_optimizer": optimizers[1]},
            {"generator": tf_keras_generator, "discriminator": tf_keras_discriminator},
        )
        done = gallery.check_loads(
            formats, {name: (port, samples[name]) for name, port in ports.items()}, expected
        )

    # One training step from the same weights, with dropout off on both sides.
    variables = tuple(
        gallery.keras_variables(model, targets[name])
        for name, model in (("generator", generator), ("discriminator", discriminator))
    )
    for layer in discriminator.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    optimizer = gallery.keras_adam(LEARNING_RATE)
    flax_losses, flax_grads, flax_after = flax_train_step(
        (Generator(width), Discriminator(width, dropout_rate=0.0)),
        variables,
        optimizer,
        images,
        noise,
    )
    fresh = keras.optimizers.Adam(LEARNING_RATE), keras.optimizers.Adam(LEARNING_RATE)
    tf_losses, tf_grads = tf_train_step(keras, (generator, discriminator), fresh, images, noise)
    gallery.assert_close(flax_losses, tf_losses, "losses")
    for index, (name, model) in enumerate(
        (("generator", generator), ("discriminator", discriminator))
    ):
        gallery.check_step(
            optimizer,
            LEARNING_RATE,
            variables[index],
            flax_grads[index],
            flax_after[index],
            gallery.keras_tree(model, tf_grads[index], targets[name]),
            gallery.keras_variables(model, targets[name]),
        )
    done.append("one training step: losses, gradients, weights and statistics after Adam match")
    return done


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1, help="divide every channel count by it")
    for line in main(parser.parse_args().width):
        print(line)
