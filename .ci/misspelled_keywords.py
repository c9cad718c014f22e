"""User code with one misspelled keyword per front end, for the type checkers.

`.ci/check_signatures` runs pyright (and mypy) over this file and fails unless
each line marked `# misspelled` is flagged, and nothing else is: every public
front end has a signature that tools can see.
"""

import flax.linen as nn
import jax.numpy as jnp
from flax import nnx

import jdeconv
from jdeconv import torch_compat

x = jnp.ones((1, 4, 4, 3))
w = jnp.ones((3, 3, 8, 3))

jdeconv.conv2d_transpose(x, w, (1, 8, 8, 8), 2, paddin="SAME")  # misspelled
jdeconv.Conv2DTranspose(8, 3, strids=2)  # misspelled
jdeconv.nnx.Conv2DTranspose(3, 8, 3, strids=2, rngs=nnx.Rngs(0))  # misspelled
torch_compat.ConvTranspose2d(3, 8, 3, strid=2)  # misspelled


class Decoder(nn.Module):
    @nn.compact
    def __call__(self, x):
        return jdeconv.layers.conv2d_transpose(x, 8, 3, strids=2)  # misspelled


# Spelled right, the same calls are accepted.
jdeconv.conv2d_transpose(x, w, (1, 8, 8, 8), 2, padding="SAME")
jdeconv.Conv2DTranspose(8, 3, strides=2)
jdeconv.nnx.Conv2DTranspose(3, 8, 3, strides=2, rngs=nnx.Rngs(0))
torch_compat.ConvTranspose2d(3, 8, 3, stride=2)
