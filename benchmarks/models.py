"""Whole-model training steps: four decoders, each written three times.

Every architecture is written for jdeconv (Flax linen + optax, with
jdeconv's layers), for Keras (``tf_keras``) and for PyTorch, with the same
layers, shapes and trainable parameters, and timed as one optimizer step:
forward, the mean squared error against a fixed target, backward and an Adam
update. Each framework runs its usual way: the whole JAX step in one
``jax.jit`` with the parameters and optimizer state donated; Keras in
``tf.function`` (TensorFlow's own kernels; ``--tf-xla`` adds
``jit_compile=True``); PyTorch eagerly. The same Flax model built with
``flax.linen.ConvTranspose(transpose_kernel=True)``, that is
``jax.lax.conv_transpose``, is the ``jax.lax`` contender.

Dropout (pix2pix) draws a fresh mask per step in Keras and PyTorch; the JAX
step takes a key argument, fixed here, which costs the same.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from timing import Contender, TimingSettings, interleaved_medians

import jdeconv

LEARNING_RATE = 1e-4
#: ``tf_keras.layers.LeakyReLU()``'s default slope.
KERAS_LEAKY_RELU_SLOPE = 0.3
#: Keras' BatchNormalization defaults (PyTorch's momentum is one minus Keras').
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3

JDECONV, LAX, TF, TF_XLA, TORCH = "jdeconv", "jax.lax", "tensorflow", "tensorflow (XLA)", "pytorch"
PEERS = (TF, TORCH)

#: ``make(filters, kernel_size, stride, padding, rank=..., use_bias=...)``: a Flax layer.
DeconvFactory = Callable[..., nn.Module]


def jdeconv_deconv(method: str = "auto") -> DeconvFactory:
    """jdeconv's Keras-style linen layers, with the given lowering."""
    classes = (jdeconv.Conv1DTranspose, jdeconv.Conv2DTranspose, jdeconv.Conv3DTranspose)

    def make(filters, kernel_size, stride, padding, *, rank, use_bias=True):
        layer = classes[rank - 1]
        return layer(
            filters, kernel_size, strides=stride, padding=padding, use_bias=use_bias, method=method
        )

    return make


def lax_deconv(filters, kernel_size, stride, padding, *, rank, use_bias=True) -> nn.Module:
    """``flax.linen.ConvTranspose`` on TF's kernel layout: ``jax.lax.conv_transpose``."""
    return nn.ConvTranspose(
        filters,
        (kernel_size,) * rank,
        strides=(stride,) * rank,
        padding=padding.upper(),
        use_bias=use_bias,
        transpose_kernel=True,
    )


def flax_batch_norm(train: bool) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)


def torch_deconv(in_channels, out_channels, kernel_size, stride, *, rank, bias=True):
    """``ConvTranspose{1,2}d`` whose output is Keras' ``"same"`` size, ``I * stride``."""
    import torch

    # (I - 1) * s - 2 * p + k + extra = I * s.
    padding = math.ceil((kernel_size - stride) / 2)
    extra = 2 * padding - (kernel_size - stride)
    layer = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d)[rank - 1]
    return layer(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding=padding,
        output_padding=extra,
        bias=bias,
    )


def torch_batch_norm(channels: int, spatial_rank: int):
    """Keras' BatchNormalization over features (rank 0) or images (rank 2)."""
    import torch

    layer = {0: torch.nn.BatchNorm1d, 2: torch.nn.BatchNorm2d}[spatial_rank]
    return layer(channels, eps=BN_EPSILON, momentum=1 - BN_MOMENTUM)


class Architecture(Protocol):
    """One model, with its sizes; the same in every framework."""

    name: ClassVar[str]

    @property
    def description(self) -> str: ...

    @property
    def input_shapes(self) -> list[tuple[int, ...]]: ...  # channels-last

    @property
    def output_shape(self) -> tuple[int, ...]: ...  # channels-last

    def tiny(self) -> Architecture: ...

    def flax(self, deconv: DeconvFactory) -> nn.Module: ...

    def keras(self) -> Any: ...

    def torch(self) -> Any: ...


# ------------------------------------------------------------------- DCGAN


@dataclasses.dataclass(frozen=True)
class DCGANGenerator:
    name: ClassVar[str] = "dcgan"
    batch: int = 256
    noise: int = 100
    channels: tuple[int, int, int] = (256, 128, 64)

    @property
    def description(self):
        c0, c1, c2 = self.channels
        return (
            f"the generator of TensorFlow's DCGAN tutorial: noise {self.noise} -> Dense 7*7*{c0}, "
            f"BN, LeakyReLU, Conv2DTranspose {c1} k5 s1, {c2} k5 s2, 1 k5 s2 (BN and LeakyReLU "
            "between, tanh at the end), no biases -> 28x28x1"
        )

    @property
    def input_shapes(self):
        return [(self.batch, self.noise)]

    @property
    def output_shape(self):
        return (self.batch, 28, 28, 1)

    def tiny(self):
        return DCGANGenerator(batch=8, channels=(32, 16, 8))

    def flax(self, deconv):
        return FlaxDCGANGenerator(self, deconv)

    def keras(self):
        import tf_keras as keras

        layers = keras.layers
        c0, c1, c2 = self.channels
        return keras.Sequential(
            [
                keras.Input((self.noise,)),
                layers.Dense(7 * 7 * c0, use_bias=False),
                layers.BatchNormalization(),
                layers.LeakyReLU(),
                layers.Reshape((7, 7, c0)),
                layers.Conv2DTranspose(c1, 5, strides=1, padding="same", use_bias=False),
                layers.BatchNormalization(),
                layers.LeakyReLU(),
                layers.Conv2DTranspose(c2, 5, strides=2, padding="same", use_bias=False),
                layers.BatchNormalization(),
                layers.LeakyReLU(),
                layers.Conv2DTranspose(
                    1, 5, strides=2, padding="same", use_bias=False, activation="tanh"
                ),
            ]
        )

    def torch(self):
        import torch.nn as tnn

        c0, c1, c2 = self.channels
        slope = KERAS_LEAKY_RELU_SLOPE
        return tnn.Sequential(
            tnn.Linear(self.noise, 7 * 7 * c0, bias=False),
            torch_batch_norm(7 * 7 * c0, 0),
            tnn.LeakyReLU(slope),
            tnn.Unflatten(1, (c0, 7, 7)),
            torch_deconv(c0, c1, 5, 1, rank=2, bias=False),
            torch_batch_norm(c1, 2),
            tnn.LeakyReLU(slope),
            torch_deconv(c1, c2, 5, 2, rank=2, bias=False),
            torch_batch_norm(c2, 2),
            tnn.LeakyReLU(slope),
            torch_deconv(c2, 1, 5, 2, rank=2, bias=False),
            tnn.Tanh(),
        )


class FlaxDCGANGenerator(nn.Module):
    spec: DCGANGenerator
    deconv: DeconvFactory

    @nn.compact
    def __call__(self, noise, train: bool):
        c0, c1, c2 = self.spec.channels
        x = nn.Dense(7 * 7 * c0, use_bias=False)(noise)
        x = nn.leaky_relu(flax_batch_norm(train)(x), KERAS_LEAKY_RELU_SLOPE)
        x = x.reshape(x.shape[0], 7, 7, c0)
        for filters, stride in ((c1, 1), (c2, 2)):
            x = self.deconv(filters, 5, stride, "same", rank=2, use_bias=False)(x)
            x = nn.leaky_relu(flax_batch_norm(train)(x), KERAS_LEAKY_RELU_SLOPE)
        return jnp.tanh(self.deconv(1, 5, 2, "same", rank=2, use_bias=False)(x))


# ----------------------------------------------------------------- pix2pix


@dataclasses.dataclass(frozen=True)
class Pix2PixDecoder:
    name: ClassVar[str] = "pix2pix"
    batch: int = 1
    channels: tuple[int, ...] = (512, 512, 512, 512, 256, 128, 64)
    bottleneck: int = 512
    dropout_layers: int = 3

    @property
    def description(self):
        size = self.output_shape[1]
        return (
            "the decoder of TensorFlow's pix2pix tutorial generator (a U-Net): Conv2DTranspose "
            f"{', '.join(map(str, self.channels))} k4 s2 (no bias) + BN (+ dropout 0.5 on the "
            f"first {self.dropout_layers}) + ReLU, each concatenated with its skip input, then "
            f"Conv2DTranspose 3 k4 s2 + tanh; 1x1x{self.bottleneck} and skips -> {size}x{size}x3"
        )

    @property
    def input_shapes(self):
        skips = [(self.batch, 2 ** (i + 1), 2 ** (i + 1), c) for i, c in enumerate(self.channels)]
        return [(self.batch, 1, 1, self.bottleneck), *skips]

    @property
    def output_shape(self):
        size = 2 ** (len(self.channels) + 1)
        return (self.batch, size, size, 3)

    def tiny(self):
        return Pix2PixDecoder(channels=(32, 32, 16, 8), bottleneck=32)

    def flax(self, deconv):
        return FlaxPix2PixDecoder(self, deconv)

    def keras(self):
        import tf_keras as keras

        layers = keras.layers
        inputs = [keras.Input(shape[1:]) for shape in self.input_shapes]
        x = inputs[0]
        for i, (filters, skip) in enumerate(zip(self.channels, inputs[1:])):
            x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            if i < self.dropout_layers:
                x = layers.Dropout(0.5)(x)
            x = layers.ReLU()(x)
            x = layers.Concatenate()([x, skip])
        y = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh")(x)
        return keras.Model(inputs, y)

    def torch(self):
        import torch
        import torch.nn as tnn

        spec = self

        class Decoder(tnn.Module):
            def __init__(self):
                super().__init__()
                blocks, in_channels = [], spec.bottleneck
                for i, filters in enumerate(spec.channels):
                    dropout = [tnn.Dropout(0.5)] if i < spec.dropout_layers else []
                    blocks.append(
                        tnn.Sequential(
                            torch_deconv(in_channels, filters, 4, 2, rank=2, bias=False),
                            torch_batch_norm(filters, 2),
                            *dropout,
                            tnn.ReLU(),
                        )
                    )
                    in_channels = 2 * filters
                self.blocks = tnn.ModuleList(blocks)
                self.last = torch_deconv(in_channels, 3, 4, 2, rank=2)

            def forward(self, x, *skips):
                for block, skip in zip(self.blocks, skips):
                    x = torch.cat([block(x), skip], dim=1)
                return torch.tanh(self.last(x))

        return Decoder()


class FlaxPix2PixDecoder(nn.Module):
    spec: Pix2PixDecoder
    deconv: DeconvFactory

    @nn.compact
    def __call__(self, x, *skips, train: bool):
        for i, (filters, skip) in enumerate(zip(self.spec.channels, skips)):
            x = self.deconv(filters, 4, 2, "same", rank=2, use_bias=False)(x)
            x = flax_batch_norm(train)(x)
            if i < self.spec.dropout_layers:
                x = nn.Dropout(0.5, deterministic=not train)(x)
            x = jnp.concatenate([nn.relu(x), skip], axis=-1)
        return jnp.tanh(self.deconv(3, 4, 2, "same", rank=2)(x))


# --------------------------------------------------------------------- VAE


@dataclasses.dataclass(frozen=True)
class VAEDecoder:
    name: ClassVar[str] = "vae"
    batch: int = 128
    latent: int = 2
    channels: tuple[int, int] = (64, 32)

    @property
    def description(self):
        c0, c1 = self.channels
        return (
            "the decoder of the Keras VAE example (keras.io/examples/generative/vae): latent "
            f"{self.latent} -> Dense 7*7*64 + ReLU, Conv2DTranspose {c0} k3 s2 + ReLU, {c1} k3 s2 "
            "+ ReLU, 1 k3 s1 + sigmoid -> 28x28x1"
        )

    @property
    def input_shapes(self):
        return [(self.batch, self.latent)]

    @property
    def output_shape(self):
        return (self.batch, 28, 28, 1)

    def tiny(self):
        return VAEDecoder(batch=8, channels=(16, 8))

    def flax(self, deconv):
        return FlaxVAEDecoder(self, deconv)

    def keras(self):
        import tf_keras as keras

        layers = keras.layers
        c0, c1 = self.channels
        return keras.Sequential(
            [
                keras.Input((self.latent,)),
                layers.Dense(7 * 7 * 64, activation="relu"),
                layers.Reshape((7, 7, 64)),
                layers.Conv2DTranspose(c0, 3, strides=2, padding="same", activation="relu"),
                layers.Conv2DTranspose(c1, 3, strides=2, padding="same", activation="relu"),
                layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid"),
            ]
        )

    def torch(self):
        import torch.nn as tnn

        c0, c1 = self.channels
        return tnn.Sequential(
            tnn.Linear(self.latent, 7 * 7 * 64),
            tnn.ReLU(),
            tnn.Unflatten(1, (64, 7, 7)),
            torch_deconv(64, c0, 3, 2, rank=2),
            tnn.ReLU(),
            torch_deconv(c0, c1, 3, 2, rank=2),
            tnn.ReLU(),
            torch_deconv(c1, 1, 3, 1, rank=2),
            tnn.Sigmoid(),
        )


class FlaxVAEDecoder(nn.Module):
    spec: VAEDecoder
    deconv: DeconvFactory

    @nn.compact
    def __call__(self, z, train: bool):
        del train  # no batch norm or dropout
        x = nn.relu(nn.Dense(7 * 7 * 64)(z)).reshape(z.shape[0], 7, 7, 64)
        for filters in self.spec.channels:
            x = nn.relu(self.deconv(filters, 3, 2, "same", rank=2)(x))
        return nn.sigmoid(self.deconv(1, 3, 1, "same", rank=2)(x))


# ------------------------------------------------------------------- audio


@dataclasses.dataclass(frozen=True)
class AudioUpsampler:
    name: ClassVar[str] = "audio"
    batch: int = 16
    frames: int = 32
    mels: int = 80
    channels: tuple[int, ...] = (512, 256, 128, 64, 32)
    upsampling: tuple[tuple[int, int], ...] = ((16, 8), (16, 8), (4, 2), (4, 2))  # (k, s)

    @property
    def description(self):
        upsampling = ", ".join(
            f"{c} k{k} s{s}" for c, (k, s) in zip(self.channels[1:], self.upsampling)
        )
        return (
            "a MelGAN-style 1-D upsampler (without its residual stacks and weight norm): "
            f"Conv1D {self.channels[0]} k7, Conv1DTranspose {upsampling} (LeakyReLU 0.2 before "
            f"each), Conv1D 1 k7 + tanh; {self.frames} frames x {self.mels} mels -> "
            f"{self.output_shape[1]} samples"
        )

    @property
    def input_shapes(self):
        return [(self.batch, self.frames, self.mels)]

    @property
    def output_shape(self):
        return (self.batch, self.frames * math.prod(s for _, s in self.upsampling), 1)

    def tiny(self):
        return AudioUpsampler(batch=2, frames=8, channels=(32, 16, 8, 8, 4))

    def flax(self, deconv):
        return FlaxAudioUpsampler(self, deconv)

    def keras(self):
        import tf_keras as keras

        layers = keras.layers
        stack = [
            keras.Input((self.frames, self.mels)),
            layers.Conv1D(self.channels[0], 7, padding="same"),
        ]
        for filters, (kernel, stride) in zip(self.channels[1:], self.upsampling):
            stack += [
                layers.LeakyReLU(0.2),
                layers.Conv1DTranspose(filters, kernel, strides=stride, padding="same"),
            ]
        stack += [layers.LeakyReLU(0.2), layers.Conv1D(1, 7, padding="same", activation="tanh")]
        return keras.Sequential(stack)

    def torch(self):
        import torch.nn as tnn

        stack = [tnn.Conv1d(self.mels, self.channels[0], 7, padding=3)]
        for in_channels, out_channels, (kernel, stride) in zip(
            self.channels, self.channels[1:], self.upsampling
        ):
            stack += [
                tnn.LeakyReLU(0.2),
                torch_deconv(in_channels, out_channels, kernel, stride, rank=1),
            ]
        stack += [tnn.LeakyReLU(0.2), tnn.Conv1d(self.channels[-1], 1, 7, padding=3), tnn.Tanh()]
        return tnn.Sequential(*stack)


class FlaxAudioUpsampler(nn.Module):
    spec: AudioUpsampler
    deconv: DeconvFactory

    @nn.compact
    def __call__(self, mel, train: bool):
        del train
        x = nn.Conv(self.spec.channels[0], (7,), padding="SAME")(mel)
        for filters, (kernel, stride) in zip(self.spec.channels[1:], self.spec.upsampling):
            x = self.deconv(filters, kernel, stride, "same", rank=1)(nn.leaky_relu(x, 0.2))
        return jnp.tanh(nn.Conv(1, (7,), padding="SAME")(nn.leaky_relu(x, 0.2)))


ARCHITECTURES: tuple[Architecture, ...] = (
    DCGANGenerator(),
    Pix2PixDecoder(),
    VAEDecoder(),
    AudioUpsampler(),
)


# ------------------------------------------- a deep decoder, for compile time


@dataclasses.dataclass(frozen=True)
class StackedDecoder:
    """Transposed convolutions with ReLUs between (ten, 4x4 -> 128x128): compile time.

    Its kernels cover the suite's shape classes: ``k % s != 0`` (5/2, 3/2),
    ``k == s`` (2/2), ``k == 2 s`` (4/2) and stride 1 (3/1).
    """

    batch: int = 8
    in_channels: int = 256
    # (filters, kernel, stride)
    stack: tuple[tuple[int, int, int], ...] = (
        (256, 5, 2),
        (256, 3, 1),
        (128, 4, 2),
        (128, 3, 1),
        (64, 3, 2),
        (64, 3, 1),
        (32, 2, 2),
        (32, 3, 1),
        (16, 4, 2),
        (3, 3, 1),
    )

    def tiny(self):
        """Four layers, few channels."""
        stack = tuple((max(f // 16, 3), k, s) for f, k, s in self.stack[:4])
        return StackedDecoder(batch=2, in_channels=16, stack=stack)

    def describe(self) -> str:
        layers = ", ".join(f"{f} k{k} s{s}" for f, k, s in self.stack)
        return f"batch {self.batch}, 4x4x{self.in_channels} -> {layers}"


class FlaxStackedDecoder(nn.Module):
    spec: StackedDecoder
    deconv: DeconvFactory

    @nn.compact
    def __call__(self, x):
        for i, (filters, kernel, stride) in enumerate(self.spec.stack):
            x = self.deconv(filters, kernel, stride, "same", rank=2)(x)
            x = x if i == len(self.spec.stack) - 1 else nn.relu(x)
        return x


def decoder_loss_grad(spec: StackedDecoder, deconv: DeconvFactory) -> tuple[Callable, tuple]:
    """The parameter gradient of the decoder's squared error, and its (abstract) arguments."""
    module = FlaxStackedDecoder(spec, deconv)
    x = jax.ShapeDtypeStruct((spec.batch, 4, 4, spec.in_channels), jnp.float32)
    params = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    target = jax.eval_shape(module.apply, {"params": params}, x)

    def loss(params, x, target):
        return jnp.mean(jnp.square(module.apply({"params": params}, x) - target))

    return jax.grad(loss), (params, x, target)


# ---------------------------------------------------------- training steps


def model_arrays(spec: Architecture) -> tuple[list[np.ndarray], np.ndarray]:
    """Inputs and target, channels-last, float32."""
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape, np.float32) for shape in spec.input_shapes]
    return inputs, rng.uniform(-1, 1, spec.output_shape).astype(np.float32)


#: The arguments a JAX step donates: parameters, batch statistics, optimizer state.
DONATED = (0, 1, 2)


def jax_training_step(
    spec: Architecture, deconv: DeconvFactory, abstract: bool = False
) -> tuple[Callable, tuple]:
    """The (un-jitted) Flax + optax step, and its arguments.

    ``step(params, batch_stats, opt_state, inputs, target, key)`` returns the
    new ``params, batch_stats, opt_state`` and the loss. With ``abstract``,
    the parameters and optimizer state are shapes only (enough to compile).
    """
    module = spec.flax(deconv)
    inputs, target = model_arrays(spec)
    inputs = [jnp.asarray(a) for a in inputs]
    key = jax.random.key(0)
    optimizer = optax.adam(LEARNING_RATE)

    def initialize(function, *args):
        # Jitted: one compilation, instead of one per operation.
        return jax.eval_shape(function, *args) if abstract else jax.jit(function)(*args)

    init = functools.partial(module.init, train=False)
    variables = initialize(init, {"params": key, "dropout": key}, *inputs)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})

    def step(params, batch_stats, opt_state, inputs, target, key):
        def loss(params):
            y, updates = module.apply(
                {"params": params, "batch_stats": batch_stats},
                *inputs,
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": key},
            )
            return jnp.mean(jnp.square(y - target)), updates.get("batch_stats", {})

        (value, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, value

    opt_state = initialize(optimizer.init, params)
    arguments = (params, batch_stats, opt_state, inputs, jnp.asarray(target), key)
    return step, arguments


def jax_run(spec: Architecture, deconv: DeconvFactory) -> tuple[Callable[[], object], int, tuple]:
    """A call of the jitted step that carries its state over; parameter count; output shape."""
    step, (params, batch_stats, opt_state, *fixed) = jax_training_step(spec, deconv)
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    variables = {"params": params, "batch_stats": batch_stats}
    shape = jax.eval_shape(
        lambda v, x: spec.flax(deconv).apply(v, *x, train=False), variables, fixed[0]
    ).shape
    jitted = jax.jit(step, donate_argnums=DONATED)
    state = [params, batch_stats, opt_state]

    def run():
        params, batch_stats, opt_state, loss = jitted(*state, *fixed)
        state[:] = params, batch_stats, opt_state
        return jax.block_until_ready((state, loss))

    return run, count, tuple(shape)


def keras_run(spec: Architecture, jit_compile: bool) -> tuple[Callable[[], object], int, tuple]:
    import tensorflow as tf
    import tf_keras as keras

    model = spec.keras()
    optimizer = keras.optimizers.Adam(LEARNING_RATE)
    inputs, target = model_arrays(spec)
    xs = [tf.constant(a) for a in inputs]
    xs = xs if len(xs) > 1 else xs[0]
    target = tf.constant(target)

    @tf.function(jit_compile=jit_compile)
    def step(xs, target):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(xs, training=True) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    count = sum(math.prod(v.shape) for v in model.trainable_variables)
    shape = tuple(model(xs, training=False).shape)
    return (lambda: step(xs, target).numpy()), count, shape


def torch_run(spec: Architecture) -> tuple[Callable[[], object], int, tuple]:
    import torch

    model = spec.torch()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    inputs, target = model_arrays(spec)
    xs = [torch.from_numpy(channels_first(a)) for a in inputs]
    target = torch.from_numpy(channels_first(target))

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = ((model(*xs) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with torch.no_grad():
        y = model(*xs).numpy()
    return run, count, np.moveaxis(y, 1, -1).shape if y.ndim > 2 else y.shape


def channels_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


@dataclasses.dataclass
class ModelResult:
    """One architecture's step times (seconds), parameter count and output shape."""

    name: str
    description: str
    batch: int
    parameters: int
    output_shape: tuple[int, ...]
    step: dict[str, float]
    notes: list[str]


def contenders(spec: Architecture, tf_xla: bool) -> tuple[list[Contender], int, list[str]]:
    """The model's step in every framework, checked to be the same model."""
    runs = {JDECONV: jax_run(spec, jdeconv_deconv()), LAX: jax_run(spec, lax_deconv)}
    notes = []
    for name, make in ((TF, lambda: keras_run(spec, False)), (TORCH, lambda: torch_run(spec))):
        try:
            runs[name] = make()
        except ImportError as error:
            notes.append(f"{name}: not installed ({error.name})")
    if tf_xla and TF in runs:
        runs[TF_XLA] = keras_run(spec, True)
    _, parameters, _ = runs[JDECONV]
    for name, (_, count, shape) in runs.items():
        if shape != spec.output_shape or count != parameters:
            raise RuntimeError(
                f"{spec.name}: the {name} model has {count} parameters and output {shape}; "
                f"expected {parameters} and {spec.output_shape}"
            )
    return [Contender(n, run) for n, (run, _, _) in runs.items()], parameters, notes


def measure_models(
    specs: Sequence[Architecture],
    settings: TimingSettings,
    tf_xla: bool = False,
    on_progress: Callable[[], object] | None = None,
) -> list[ModelResult]:
    """Times each model's step in every framework, all models in this process."""
    built = [contenders(spec, tf_xla) for spec in specs]
    medians = interleaved_medians([group for group, _, _ in built], settings, on_progress)
    return [
        ModelResult(
            spec.name,
            spec.description,
            spec.input_shapes[0][0],
            count,
            spec.output_shape,
            times,
            notes,
        )
        for spec, (_, count, notes), times in zip(specs, built, medians)
    ]
