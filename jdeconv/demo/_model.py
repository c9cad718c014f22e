"""The demo's model: a convolutional autoencoder with a transposed-convolution decoder."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jdeconv._layers.linen import Conv2DTranspose


def _leaky_relu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, negative_slope=0.2)


class Autoencoder(nn.Module):
    """A convolutional autoencoder whose decoder is made of :class:`jdeconv.Conv2DTranspose`.

    The encoder halves the images' height and width with each of its strided
    convolutions and maps the result to a code of ``latent_dim`` numbers. The
    decoder maps the code back to a small feature map and doubles its size
    with each ``Conv2DTranspose(kernel_size=4, strides=2, padding="same")``,
    the last one producing the images' channels through a sigmoid. The hidden
    activations are leaky ReLUs of slope 0.2.

    Attributes:
      image_size: height and width of the images, a multiple of
        ``2 ** len(features)``.
      channels: channels of the images (3 for RGB).
      features: channels of the encoder's convolutions, from the image
        inwards; the decoder uses them in reverse order.
      latent_dim: size of the code between encoder and decoder.
      method: the lowering of the transposed convolutions: ``"auto"``,
        ``"autotune"`` or one of :data:`jdeconv.METHODS`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdeconv.demo import Autoencoder, init_params
      >>> model = Autoencoder(image_size=16, features=(8, 16), latent_dim=4)
      >>> images = jnp.zeros((2, 16, 16, 3))
      >>> params = init_params(model, images)
      >>> jax.jit(model.apply)({"params": params}, images).shape
      (2, 16, 16, 3)
      >>> encode = jax.jit(lambda p, x: model.apply({"params": p}, x, method="encode"))
      >>> encode(params, images).shape
      (2, 4)
    """

    image_size: int = 32
    channels: int = 3
    features: Sequence[int] = (32, 64, 128)
    latent_dim: int = 128
    method: str = "auto"

    def setup(self) -> None:
        """Creates the layers."""
        side, rest = divmod(self.image_size, 2 ** len(self.features))
        if rest or side < 1 or not self.features:
            raise ValueError(
                f"Autoencoder: `image_size` must be a positive multiple of "
                f"2 ** len(features) = {2 ** len(self.features)}, got {self.image_size}."
            )
        self.encoder = [
            nn.Conv(width, (4, 4), strides=2, padding="SAME", name=f"conv{i}")
            for i, width in enumerate(self.features)
        ]
        self.to_code = nn.Dense(self.latent_dim)
        self.from_code = nn.Dense(self.features[-1] * side * side)
        widths = [*reversed(self.features[:-1]), self.channels]
        self.decoder = [
            Conv2DTranspose(
                width,
                kernel_size=4,
                strides=2,
                padding="same",
                activation="sigmoid" if i == len(widths) - 1 else "leaky_relu",
                method=self.method,
                name=f"deconv{i}",
            )
            for i, width in enumerate(widths)
        ]

    def encode(self, images: jax.Array) -> jax.Array:
        """Maps images ``(N, image_size, image_size, channels)`` to codes ``(N, latent_dim)``."""
        expected = (self.image_size, self.image_size, self.channels)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"Autoencoder: `images` must have shape (N, *{expected}), got {images.shape}."
            )
        x = images
        for conv in self.encoder:
            x = _leaky_relu(conv(x))
        return self.to_code(x.reshape(x.shape[0], -1))

    def decode(self, codes: jax.Array) -> jax.Array:
        """Maps codes ``(N, latent_dim)`` to images ``(N, image_size, image_size, channels)``."""
        side = self.image_size // 2 ** len(self.features)
        x = _leaky_relu(self.from_code(codes))
        x = x.reshape(codes.shape[0], side, side, self.features[-1])
        for deconv in self.decoder:
            x = deconv(x)
        return x

    def __call__(self, images: jax.Array) -> jax.Array:
        """Reconstructs ``images`` ``(N, image_size, image_size, channels)``."""
        return self.decode(self.encode(images))
