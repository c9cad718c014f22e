"""The DCGAN generator of PyTorch's examples, ported to Flax.

The original is ``dcgan/main.py`` of https://github.com/pytorch/examples: an
``nn.Sequential`` named ``main`` (so its weights are ``main.0.weight``,
``main.1.running_mean``, ...) of five ``ConvTranspose2d`` with ``BatchNorm2d`` and
``ReLU`` between them, from a ``(N, 100, 1, 1)`` code to ``(N, 3, 64, 64)`` images;
its weights initialized by ``weights_init``, trained with Adam(lr=0.0002,
betas=(0.5, 0.999)).

The port keeps PyTorch's channels-first layout: :mod:`jdeconv.torch_compat`
modules take PyTorch's arguments, and ``nn.BatchNorm(axis=1, momentum=0.9,
epsilon=1e-5)`` is ``BatchNorm2d`` (PyTorch's momentum 0.1 is the weight of the
new batch, Flax's that of the old average).

The script trains the generator two steps, saves its state dict as ``.pt`` and
``.safetensors``, loads each (and the state dict in memory) into the port with
no ``mapping``, checks the outputs, then checks one training step: a
mean-squared error to target images (the example's loss needs the
discriminator, which this port leaves out). PyTorch updates ``running_var``
with the unbiased batch variance and Flax with the biased one; the check
compares Flax's value with PyTorch's converted to the biased variance.

    python examples/ported/torch_dcgan.py            # the example's sizes
    python examples/ported/torch_dcgan.py --width 8  # an eighth of the channels
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
from jdeconv import torch_compat

NZ, NGF, NC = 100, 64, 3  # The example's defaults: --nz 100 --ngf 64, 3 channels.
LEARNING_RATE, BETAS = 0.0002, (0.5, 0.999)

# --------------------------------------------------------------------------
# The original, as the example writes it (`ngpu` left out).


def make_generator(width=1):
    """The example's ``Generator``, initialized by ``weights_init``."""
    import torch
    from torch import nn as tnn

    nz, ngf, nc = NZ, NGF // width, NC

    class Generator(tnn.Module):
        def __init__(self):
            super().__init__()
            self.main = tnn.Sequential(
                # input is Z, going into a convolution
                tnn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
                tnn.BatchNorm2d(ngf * 8),
                tnn.ReLU(True),
                # state size. (ngf*8) x 4 x 4
                tnn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
                tnn.BatchNorm2d(ngf * 4),
                tnn.ReLU(True),
                # state size. (ngf*4) x 8 x 8
                tnn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
                tnn.BatchNorm2d(ngf * 2),
                tnn.ReLU(True),
                # state size. (ngf*2) x 16 x 16
                tnn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
                tnn.BatchNorm2d(ngf),
                tnn.ReLU(True),
                # state size. (ngf) x 32 x 32
                tnn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                tnn.Tanh(),
                # state size. (nc) x 64 x 64
            )

        def forward(self, input):
            return self.main(input)

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
        elif classname.find("BatchNorm") != -1:
            torch.nn.init.normal_(m.weight, 1.0, 0.02)
            torch.nn.init.zeros_(m.bias)

    generator = Generator()
    generator.apply(weights_init)
    return generator


def torch_train_step(generator, optimizer, noise, images):
    """One step of the generator on a mean-squared error; returns the loss."""
    import torch

    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(
        generator(torch.from_numpy(noise)), torch.from_numpy(images)
    )
    loss.backward()
    optimizer.step()
    return loss.item()


# --------------------------------------------------------------------------
# The port


class Generator(nn.Module):
    """The generator, channels first as in PyTorch."""

    width: int = 1

    @nn.compact
    def __call__(self, z, train=False):
        """``(N, 3, 64, 64)`` images from ``(N, 100, 1, 1)`` codes."""
        ngf = NGF // self.width
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, axis=1, momentum=0.9, epsilon=1e-5
        )
        x = z
        for c_in, c_out, stride, padding in (
            (NZ, ngf * 8, 1, 0),
            (ngf * 8, ngf * 4, 2, 1),
            (ngf * 4, ngf * 2, 2, 1),
            (ngf * 2, ngf, 2, 1),
        ):
            x = torch_compat.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False)(x)
            x = nn.relu(norm()(x))
        return jnp.tanh(torch_compat.ConvTranspose2d(ngf, NC, 4, 2, 1, bias=False)(x))


@functools.partial(jax.jit, static_argnums=(0, 2))
def flax_train_step(port, variables, optimizer, noise, images):
    """The same step in JAX: PyTorch's Adam is optax.adam (eps=1e-8)."""
    state = optimizer.init(variables["params"])  # A fresh optimizer.

    def loss_fn(params):
        output, updates = port.apply(
            {**variables, "params": params}, noise, train=True, mutable=["batch_stats"]
        )
        return jnp.mean((output - images) ** 2), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
    step, _ = optimizer.update(grads, state, variables["params"])
    after = {"params": optax.apply_updates(variables["params"], step), **updates}
    return loss, grads, after


# --------------------------------------------------------------------------
# The checks


def batch_sizes(generator, noise):
    """The number of values per channel that each BatchNorm2d normalizes (``N*H*W``)."""
    import torch

    sizes = {}
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, name=name: sizes.__setitem__(name, args[0].numel() // out.shape[1])
        )
        for name, module in generator.named_modules()
        if isinstance(module, torch.nn.BatchNorm2d)
    ]
    with torch.no_grad():
        generator.train()(torch.from_numpy(noise))
    for hook in hooks:
        hook.remove()
    return sizes


def biased_running_var(before, after, sizes, momentum=0.1):
    """PyTorch's state dict after a step, with ``running_var`` updated as Flax updates it."""
    converted = dict(after)
    for name, n in sizes.items():
        key = f"{name}.running_var"
        unbiased = (after[key] - (1 - momentum) * before[key]) / momentum
        converted[key] = (1 - momentum) * before[key] + momentum * unbiased * (n - 1) / n
    return converted


def main(width=1, batch=4, directory=None):
    """Saves, loads and checks every format, then one training step; returns what passed."""
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(2027)
    noise = rng.standard_normal((batch, NZ, 1, 1)).astype(np.float32)
    images = rng.uniform(-1, 1, (batch, NC, 64, 64)).astype(np.float32)
    generator = make_generator(width)
    optimizer = torch.optim.Adam(generator.parameters(), lr=LEARNING_RATE, betas=BETAS)
    for _ in range(2):
        torch_train_step(generator, optimizer, noise, images)
    generator.eval()
    with torch.no_grad():
        expected = {"source": {"generator": generator(torch.from_numpy(noise)).numpy()}}
    with tempfile.TemporaryDirectory() as scratch:
        loaders = gallery.save_torch_formats(directory or scratch, generator)
        formats = {name: {"generator": load} for name, load in loaders.items()}
        done = gallery.check_loads(formats, {"generator": (Generator(width), noise)}, expected)

    # One training step from the same weights, batch statistics in training mode.
    port = Generator(width)
    target = jdeconv.io.abstract_variables(port, noise)
    variables = jdeconv.io.load_torch_state_dict(generator, target)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    sizes = batch_sizes(make_generator(width), noise)
    adam = optax.adam(LEARNING_RATE, b1=BETAS[0], b2=BETAS[1], eps=1e-8)
    flax_loss, flax_grads, flax_after = flax_train_step(port, variables, adam, noise, images)
    generator.train()
    fresh = torch.optim.Adam(generator.parameters(), lr=LEARNING_RATE, betas=BETAS)
    torch_loss = torch_train_step(generator, fresh, noise, images)
    grads = {name: p.grad for name, p in generator.named_parameters()}
    after = biased_running_var(before, generator.state_dict(), sizes)
    gallery.assert_close(flax_loss, torch_loss, "loss")
    gallery.check_step(
        adam,
        LEARNING_RATE,
        variables,
        flax_grads,
        flax_after,
        gallery.torch_tree(grads, variables),
        jdeconv.io.load_torch_state_dict(after, target),
    )
    done.append("one training step: loss, gradients, weights and statistics after Adam match")
    return done


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1, help="divide every channel count by it")
    for line in main(parser.parse_args().width):
        print(line)
