"""The transposed-convolution layers for ``flax.nnx``.

Same arguments as the linen layers, in flax.nnx style (``in_features`` first,
``rngs`` keyword). Given the same weights they compute the same outputs.

Example:
  >>> import jax.numpy as jnp, jdeconv
  >>> from flax import nnx
  >>> layer = jdeconv.nnx.Conv2DTranspose(3, 8, 3, strides=2, rngs=nnx.Rngs(0))
  >>> layer(jnp.ones((1, 4, 4, 3))).shape
  (1, 9, 9, 8)
"""

from jdeconv._layers.nnx_layers import Conv1DTranspose as Conv1DTranspose
from jdeconv._layers.nnx_layers import Conv2DTranspose as Conv2DTranspose
from jdeconv._layers.nnx_layers import Conv3DTranspose as Conv3DTranspose
from jdeconv._layers.nnx_layers import FrozenParam as FrozenParam
from jdeconv._layers.nnx_layers import RegularizationLoss as RegularizationLoss

__all__ = [
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "FrozenParam",
    "RegularizationLoss",
]
