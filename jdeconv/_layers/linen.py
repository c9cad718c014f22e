"""The ``flax.linen`` transposed-convolution layers.

Their fields are those of :class:`jdeconv._layers._config.LayerArguments`,
inherited: the declaration is the modules' dataclass fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
from jax.typing import ArrayLike

from jdeconv import _docstrings
from jdeconv._layers import _compute, _config, _penalties


def _variable(
    module: nn.Module,
    config: _config.LayerConfig,
    name: str,
    init: Callable[..., jax.Array],
    shape: tuple[int, ...],
) -> jax.Array:
    """The layer's kernel or bias: a param, or a frozen variable if not trainable."""
    if config.trainable:
        value = module.param(name, init, shape, config.param_dtype)
    else:
        value = module.variable(
            _config.FROZEN_COLLECTION,
            name,
            lambda: init(module.make_rng("params"), shape, config.param_dtype),
        ).value
    _compute.check_variable(config, name, value, shape)
    return value


def call(
    module: nn.Module,
    inputs: ArrayLike,
    config: _config.LayerConfig,
    *,
    sow_weight_penalties: bool = True,
) -> jax.Array:
    """The body of every linen layer's ``__call__``: variables, output, penalties.

    Weight penalties are sown once per ``apply`` (a second call of the same
    layer replaces them with the same value); the activity penalty is sown on
    every call, as Keras adds one per output. Nothing is sown during ``init``,
    so that the variables it returns can be passed to ``apply`` as they are.
    """
    x, in_channels = _compute.check_inputs(config, inputs)
    kernel = _variable(
        module, config, "kernel", config.kernel_initializer, config.kernel_shape(in_channels)
    )
    bias = (
        _variable(module, config, "bias", config.bias_initializer, config.bias_shape)
        if config.use_bias
        else None
    )
    outputs = _compute.layer_output(config, x, kernel, bias)
    if module.is_initializing():
        return outputs  # keep the variables init returns free of penalties
    if sow_weight_penalties:
        for name, penalty in _penalties.weight_penalties(config, kernel, bias).items():
            module.sow(
                _penalties.LOSSES_COLLECTION,
                name,
                penalty,
                init_fn=_penalties.no_penalty,
                reduce_fn=_penalties.keep_latest,
            )
    activity = _penalties.activity_penalty(config, outputs)
    if activity is not None:
        module.sow(_penalties.LOSSES_COLLECTION, "activity_regularizer", activity)
    return outputs


class _ConvTranspose(nn.Module, _config.LayerArguments):
    """Shared fields and body of the 1-, 2- and 3-d linen layers."""

    num_spatial: ClassVar[int]

    @property
    def config(self) -> _config.LayerConfig:
        """The checked, canonical arguments (raises on a bad one)."""
        return _config.resolve(type(self).__name__, self.num_spatial, _config.values_of(self))

    @nn.compact
    def __call__(self, inputs: ArrayLike) -> jax.Array:
        """Applies the layer.

        Args:
          inputs: ``(batch, *spatial, in_channels)``, or
            ``(batch, in_channels, *spatial)`` for ``channels_first``.

        Returns:
          ``activation(conv_transpose(inputs, kernel) + bias)``, with ``filters``
          channels and Keras' spatial output size.
        """
        return call(self, inputs, self.config)


_NOTES = """
    Variables: ``kernel`` of shape ``[*kernel_size, filters // groups,
    in_channels]`` (TensorFlow's layout, so TensorFlow weights load unchanged)
    and ``bias`` of shape ``[filters]``, in ``"params"`` (or ``"frozen_params"``
    when ``trainable=False``). The output size is Keras'
    ``deconv_output_length``: ``I * s`` for ``"same"``,
    ``I * s + max(k_eff - s, 0)`` for ``"valid"``, or
    ``(I - 1) * s + k_eff - 2 * pad + output_padding`` with ``output_padding``.

    Regularization penalties are sown into the ``"losses"`` collection, and
    only when it is mutable: ``y, state = model.apply(variables, x,
    mutable=["losses"])``, then add ``jdeconv.regularization_loss(state)`` to
    the training loss. ``init`` sows nothing, so its variables can be passed to
    ``apply`` as they are; do not pass a ``losses`` state back into ``apply``,
    or the activity penalties add up.
"""


class Conv1DTranspose(_ConvTranspose):
    """1-d transposed convolution layer, as ``tf.keras.layers.Conv1DTranspose``.

    Fields keep the names and defaults of ``tf.keras.layers.Conv1DTranspose``:

    {fields}
    {notes}

    Example:
      >>> import jax, jax.numpy as jnp, jdeconv
      >>> layer = jdeconv.Conv1DTranspose(filters=4, kernel_size=3, strides=2, padding="same")
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 10, 3)))
      >>> variables["params"]["kernel"].shape
      (3, 4, 3)
      >>> layer.apply(variables, jnp.ones((2, 10, 3))).shape
      (2, 20, 4)
    """

    num_spatial: ClassVar[int] = 1


class Conv2DTranspose(_ConvTranspose):
    """2-d transposed convolution layer, as ``tf.compat.v1.layers.Conv2DTranspose``.

    Fields keep the names and defaults of ``tf.keras.layers.Conv2DTranspose``:

    {fields}
    {notes}

    Example:
      >>> import jax, jax.numpy as jnp, jdeconv
      >>> layer = jdeconv.Conv2DTranspose(8, (4, 4), strides=2, padding="same", activation="relu")
      >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 5, 5, 3)))
      >>> variables["params"]["kernel"].shape  # [kh, kw, filters, in_channels]
      (4, 4, 8, 3)
      >>> layer.apply(variables, jnp.ones((1, 5, 5, 3))).shape
      (1, 10, 10, 8)
    """

    num_spatial: ClassVar[int] = 2


class Conv3DTranspose(_ConvTranspose):
    """3-d transposed convolution layer, as ``tf.compat.v1.layers.Conv3DTranspose``.

    Fields keep the names and defaults of ``tf.keras.layers.Conv3DTranspose``:

    {fields}
    {notes}

    Example:
      >>> import jax, jax.numpy as jnp, jdeconv
      >>> layer = jdeconv.Conv3DTranspose(2, 3, strides=(1, 2, 2), data_format="channels_first")
      >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 4, 3, 5, 5)))
      >>> layer.apply(variables, jnp.ones((1, 4, 3, 5, 5))).shape
      (1, 2, 5, 11, 11)
    """

    num_spatial: ClassVar[int] = 3


for _cls in (Conv1DTranspose, Conv2DTranspose, Conv3DTranspose):
    _config.document(_cls, "fields", "Attributes", (f.name for f in _config.FIELDS), {})
    _cls.__doc__ = _docstrings.fill(_cls.__doc__, "notes", _NOTES)


class FunctionalConvTranspose(nn.Module):
    """The submodule :mod:`jdeconv.layers` creates: its arguments come per call.

    A reused layer (``reuse=True``) shares its variables while applying the
    arguments of the reusing call, as TensorFlow's layers do; only the call
    that creates the variables sows the weight penalties.
    """

    @nn.compact
    def __call__(
        self, inputs: ArrayLike, config: _config.LayerConfig, creates: bool = True
    ) -> jax.Array:
        return call(self, inputs, config, sow_weight_penalties=creates)


LINEN_LAYERS = (_ConvTranspose, FunctionalConvTranspose)
