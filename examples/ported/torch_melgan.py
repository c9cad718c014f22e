"""A MelGAN-style 1-D upsampler in PyTorch, ported to Flax.

MelGAN's generator (Kumar et al., 2019) turns an 80-band mel spectrogram into a
waveform: a 7-tap convolution, then per upsampling ratio a ``LeakyReLU(0.2)``, a
``ConvTranspose1d(kernel=2r, stride=r, padding=r // 2 + r % 2,
output_padding=r % 2)`` and a residual block of dilated convolutions, and a last
7-tap convolution with ``tanh``; every convolution wrapped in ``weight_norm``,
reflection padding before the 7-tap and dilated ones. This is that generator at a
small size (ratios 4, 4, 2, 2, one dilation per block).

``weight_norm`` has no counterpart in the port: it is folded into the weights
before saving, with ``torch.nn.utils.parametrize.remove_parametrizations``, which
writes ``g * v / |v|`` into ``weight``. The port then holds plain weights, as the
PyTorch model does after the folding, and the training step is that of the folded
model. The port is channels-last (Flax's ``nn.Conv``); ``jdeconv.io`` moves the
weights' axes, and ``"same"`` padding of jdeconv's ``Conv1DTranspose`` is PyTorch's
``padding=r // 2`` for the even ratios used here.

The script trains the model two steps (an L1 loss to a target waveform, Adam
lr=1e-4, betas=(0.5, 0.9) as MelGAN's training script), saves the folded state
dict as ``.pt`` and ``.safetensors``, loads each (and the state dict in memory)
into the port with no ``mapping``, checks the outputs, then checks one training
step.

    python examples/ported/torch_melgan.py
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

MEL_CHANNELS, NGF, RATIOS = 80, 32, (4, 4, 2, 2)
LEARNING_RATE, BETAS = 1e-4, (0.5, 0.9)

# --------------------------------------------------------------------------
# The original (MelGAN's generator, smaller)


def make_generator(ngf=NGF, ratios=RATIOS):
    """MelGAN's generator, with ``weight_norm`` on every convolution."""
    from torch import nn as tnn
    from torch.nn.utils.parametrizations import weight_norm

    class ResnetBlock(tnn.Module):
        def __init__(self, dim, dilation=1):
            super().__init__()
            self.block = tnn.Sequential(
                tnn.LeakyReLU(0.2),
                tnn.ReflectionPad1d(dilation),
                weight_norm(tnn.Conv1d(dim, dim, kernel_size=3, dilation=dilation)),
                tnn.LeakyReLU(0.2),
                weight_norm(tnn.Conv1d(dim, dim, kernel_size=1)),
            )
            self.shortcut = weight_norm(tnn.Conv1d(dim, dim, kernel_size=1))

        def forward(self, x):
            return self.shortcut(x) + self.block(x)

    mult = 2 ** len(ratios)
    model = [
        tnn.ReflectionPad1d(3),
        weight_norm(tnn.Conv1d(MEL_CHANNELS, mult * ngf, kernel_size=7, padding=0)),
    ]
    for r in ratios:
        model += [
            tnn.LeakyReLU(0.2),
            weight_norm(
                tnn.ConvTranspose1d(
                    mult * ngf,
                    mult * ngf // 2,
                    kernel_size=r * 2,
                    stride=r,
                    padding=r // 2 + r % 2,
                    output_padding=r % 2,
                )
            ),
            ResnetBlock(mult * ngf // 2),
        ]
        mult //= 2
    model += [
        tnn.LeakyReLU(0.2),
        tnn.ReflectionPad1d(3),
        weight_norm(tnn.Conv1d(ngf, 1, kernel_size=7, padding=0)),
        tnn.Tanh(),
    ]
    return tnn.Sequential(*model)


def fold_weight_norm(model):
    """Writes each ``weight_norm``'s ``g * v / |v|`` into a plain ``weight``."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def torch_train_step(model, optimizer, mel, audio):
    """One step on an L1 loss; returns the loss."""
    import torch

    optimizer.zero_grad()
    loss = (model(torch.from_numpy(mel)) - torch.from_numpy(audio)).abs().mean()
    loss.backward()
    optimizer.step()
    return loss.item()


# --------------------------------------------------------------------------
# The port (channels last)


def reflect(x, pad):
    """``ReflectionPad1d`` on ``(N, T, C)``."""
    return jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="reflect")


class Block(nn.Module):
    """``ResnetBlock.block``: its convolutions named by their places, ``2`` and ``4``."""

    dim: int
    dilation: int = 1

    @nn.compact
    def __call__(self, x):
        """The dilated branch."""
        y = reflect(nn.leaky_relu(x, 0.2), self.dilation)
        y = nn.Conv(self.dim, (3,), kernel_dilation=self.dilation, padding="VALID", name="2")(y)
        return nn.Conv(self.dim, (1,), name="4")(nn.leaky_relu(y, 0.2))


class ResnetBlock(nn.Module):
    """The residual block, its modules named as PyTorch's (``block``, ``shortcut``).

    A ``.safetensors`` file sorts its names, so it does not say whether ``block.4``
    or ``shortcut`` comes first, and both are 1x1 convolutions of one shape: only
    the names tell them apart, so the port uses PyTorch's.
    """

    dim: int
    dilation: int = 1

    @nn.compact
    def __call__(self, x):
        """``shortcut(x) + block(x)``."""
        return nn.Conv(self.dim, (1,), name="shortcut")(x) + Block(
            self.dim, self.dilation, name="block"
        )(x)


class Generator(nn.Module):
    """The generator on ``(N, T, 80)`` mel frames; ``(N, T * prod(ratios), 1)`` audio."""

    ngf: int = NGF
    ratios: tuple[int, ...] = RATIOS

    @nn.compact
    def __call__(self, mel):
        """Audio from mel frames."""
        mult = 2 ** len(self.ratios)
        x = nn.Conv(mult * self.ngf, (7,), padding="VALID")(reflect(mel, 3))
        for i, r in enumerate(self.ratios):
            x = nn.leaky_relu(x, 0.2)
            x = jdeconv.Conv1DTranspose(mult * self.ngf // 2, 2 * r, strides=r, padding="same")(x)
            x = ResnetBlock(mult * self.ngf // 2, name=str(4 + 3 * i))(x)  # PyTorch's index.
            mult //= 2
        x = nn.Conv(1, (7,), padding="VALID")(reflect(nn.leaky_relu(x, 0.2), 3))
        return jnp.tanh(x)


@functools.partial(jax.jit, static_argnums=(0, 2))
def flax_train_step(port, variables, optimizer, mel, audio):
    """The same step in JAX: PyTorch's Adam is optax.adam (eps=1e-8)."""
    state = optimizer.init(variables["params"])  # A fresh optimizer.

    def loss_fn(params):
        return jnp.mean(jnp.abs(port.apply({"params": params}, mel) - audio))

    loss, grads = jax.value_and_grad(loss_fn)(variables["params"])
    step, _ = optimizer.update(grads, state, variables["params"])
    return loss, grads, {"params": optax.apply_updates(variables["params"], step)}


# --------------------------------------------------------------------------
# The checks


def main(frames=16, batch=2, directory=None):
    """Saves, loads and checks every format, then one training step; returns what passed."""
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(2028)
    mel = rng.standard_normal((batch, MEL_CHANNELS, frames)).astype(np.float32)
    audio = rng.uniform(-1, 1, (batch, 1, frames * int(np.prod(RATIOS)))).astype(np.float32)
    model = make_generator()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=BETAS)
    for _ in range(2):
        torch_train_step(model, optimizer, mel, audio)
    model = fold_weight_norm(model)
    with torch.no_grad():
        expected = model(torch.from_numpy(mel)).numpy().transpose(0, 2, 1)
    mel_last = mel.transpose(0, 2, 1)  # The port's layout.
    with tempfile.TemporaryDirectory() as scratch:
        loaders = gallery.save_torch_formats(directory or scratch, model)
        formats = {name: {"generator": load} for name, load in loaders.items()}
        done = gallery.check_loads(
            formats, {"generator": (Generator(), mel_last)}, {"source": {"generator": expected}}
        )

    # One training step of the folded model, from the same weights.
    port = Generator()
    target = jdeconv.io.abstract_variables(port, mel_last)
    variables = jdeconv.io.load_torch_state_dict(model, target)
    adam = optax.adam(LEARNING_RATE, b1=BETAS[0], b2=BETAS[1], eps=1e-8)
    flax_loss, flax_grads, flax_after = flax_train_step(
        port, variables, adam, mel_last, audio.transpose(0, 2, 1)
    )
    fresh = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=BETAS)
    torch_loss = torch_train_step(model, fresh, mel, audio)
    grads = {name: p.grad for name, p in model.named_parameters()}
    gallery.assert_close(flax_loss, torch_loss, "loss")
    gallery.check_step(
        adam,
        LEARNING_RATE,
        variables,
        flax_grads,
        flax_after,
        gallery.torch_tree(grads, variables),
        jdeconv.io.load_torch_state_dict(model, target),
    )
    done.append("one training step: loss, gradients and weights after Adam match")
    return done


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    for line in main():
        print(line)
