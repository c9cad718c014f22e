"""The ``flax.linen`` transposed-convolution layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jdeconv._layers import _config

IntOrSequence = int | Sequence[int]
Initializer = str | Callable[..., jax.Array] | None
Regularizer = str | Callable[[jax.Array], jax.Array] | None
Constraint = str | Callable[[jax.Array], jax.Array] | None
Activation = str | Callable[[jax.Array], jax.Array] | None


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
    _config.check_variable(config, name, value, shape)
    return value


def forward(
    module: nn.Module,
    inputs: ArrayLike,
    config: _config.LayerConfig,
    *,
    weight_losses: bool = True,
) -> jax.Array:
    """The body of every linen layer's ``__call__``: variables, op, losses.

    Weight penalties are sown once per ``apply`` (a second call of the same
    layer replaces them with the same value); the activity penalty is sown on
    every call, as Keras adds one per output. Nothing is sown during ``init``,
    so that the variables it returns can be passed to ``apply`` as they are.
    """
    x = _config.check_array(config.function, "inputs", inputs)
    in_channels = config.in_channels(x.shape)
    kernel = _variable(
        module, config, "kernel", config.kernel_initializer, config.kernel_shape(in_channels)
    )
    bias = (
        _variable(module, config, "bias", config.bias_initializer, config.bias_shape)
        if config.use_bias
        else None
    )
    outputs = _config.forward(config, x, kernel, bias)
    if module.is_initializing():
        return outputs  # keep the variables init returns free of losses
    if weight_losses:
        for name, loss in _config.weight_losses(config, kernel, bias).items():
            module.sow(
                _config.LOSSES_COLLECTION,
                name,
                loss,
                init_fn=_config.no_loss,
                reduce_fn=_config.keep_latest,
            )
    activity = _config.activity_loss(config, outputs)
    if activity is not None:
        module.sow(_config.LOSSES_COLLECTION, "activity_regularizer", activity)
    return outputs


class _ConvTranspose(nn.Module):
    """Shared fields and body of the 1-, 2- and 3-d linen layers."""

    num_spatial: ClassVar[int]

    filters: int
    kernel_size: IntOrSequence
    strides: IntOrSequence = 1
    padding: str = "valid"
    data_format: str | None = "channels_last"
    activation: Activation = None
    use_bias: bool = True
    kernel_initializer: Initializer = None
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer = None
    bias_regularizer: Regularizer = None
    activity_regularizer: Regularizer = None
    kernel_constraint: Constraint = None
    bias_constraint: Constraint = None
    trainable: bool = True
    output_padding: IntOrSequence | None = None
    dilation_rate: IntOrSequence = 1
    groups: int = 1
    method: str = "auto"
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    precision: jax.lax.PrecisionLike = None

    @property
    def config(self) -> _config.LayerConfig:
        """The checked, normalised arguments (raises on a bad one)."""
        return _config.resolve(
            type(self).__name__,
            self.num_spatial,
            **{name: getattr(self, name) for name in _config.field_names()},
        )

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
        return forward(self, inputs, self.config)


_FIELDS_DOC = """
    Fields keep the names and defaults of ``tf.keras.layers.{keras}``:

    Attributes:
      filters: the number of output channels.
      kernel_size: an int, or one int per spatial dimension.
      strides: an int, or one int per spatial dimension.
      padding: ``"valid"`` or ``"same"``, in any case.
      data_format: ``"channels_last"`` (default; ``None`` means it too) or
        ``"channels_first"``.
      activation: ``None``, a callable, or a Keras activation name such as
        ``"relu"`` (Keras' definitions: ``"gelu"`` is exact, ``"leaky_relu"``
        has slope 0.2, ``"softmax"`` acts on the last axis).
      use_bias: whether to add a bias.
      kernel_initializer: a Flax initializer or a Keras name (see
        :mod:`jdeconv.initializers`), or ``"icnr"`` for checkerboard-free
        upsampling; ``None`` means glorot uniform, as in
        ``tf.compat.v1.layers``.
      bias_initializer: likewise; ``None`` or ``"zeros"`` means zeros.
      kernel_regularizer: a callable penalty or a Keras name (``"l1"``,
        ``"l2"``, ``"l1_l2"``); sown into the ``"losses"`` collection.
      bias_regularizer: likewise, for the bias.
      activity_regularizer: likewise, for the output, divided by the batch
        size as in Keras.
      kernel_constraint: a callable projection or a Keras name
        (``"max_norm"``, ``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"``),
        applied after each optimizer step by :func:`jdeconv.apply_constraints`.
      bias_constraint: likewise, for the bias.
      trainable: ``False`` stores ``kernel`` and ``bias`` in the
        ``"frozen_params"`` collection instead of ``"params"``, so that an
        optimizer over ``params`` never changes them (see below).
      output_padding: ``None`` or an int (or one per spatial dimension)
        smaller than the stride: extra output size, as in Keras.
      dilation_rate: an int, or one int per spatial dimension. Unlike Keras,
        strides and dilations above 1 may be combined.
      groups: feature groups: ``kernel`` is
        ``[*kernel_size, filters // groups, in_channels]``.
      method: the op's lowering, ``"auto"`` or one of :data:`jdeconv.METHODS`.
      dtype: the computation dtype; ``None`` promotes the input's and the
        parameters'.
      param_dtype: the parameters' dtype.
      precision: passed to the op.

    Variables: ``kernel`` of shape ``[*kernel_size, filters // groups,
    in_channels]`` (TensorFlow's layout, so TensorFlow weights load unchanged)
    and ``bias`` of shape ``[filters]``, in ``"params"`` (or ``"frozen_params"``
    when ``trainable=False``). The output size is Keras'
    ``deconv_output_length``: ``I * s`` for ``"same"``,
    ``I * s + max(k_eff - s, 0)`` for ``"valid"``, or
    ``(I - 1) * s + k_eff - 2 * pad + output_padding`` with ``output_padding``.

    Regularization penalties are sown only when ``"losses"`` is mutable:
    ``y, state = model.apply(variables, x, mutable=["losses"])``, then add
    ``jdeconv.regularization_loss(state)`` to the training loss. ``init`` sows
    nothing, so its variables can be passed to ``apply`` as they are; do not
    pass a ``losses`` state back into ``apply``, or the activity penalties add up.
"""


class Conv1DTranspose(_ConvTranspose):
    """1-d transposed convolution layer, as ``tf.keras.layers.Conv1DTranspose``.

    {fields}

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

    {fields}

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

    {fields}

    Example:
      >>> import jax, jax.numpy as jnp, jdeconv
      >>> layer = jdeconv.Conv3DTranspose(2, 3, strides=(1, 2, 2), data_format="channels_first")
      >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 4, 3, 5, 5)))
      >>> layer.apply(variables, jnp.ones((1, 4, 3, 5, 5))).shape
      (1, 2, 5, 11, 11)
    """

    num_spatial: ClassVar[int] = 3


for _cls, _keras in (
    (Conv1DTranspose, "Conv1DTranspose"),
    (Conv2DTranspose, "Conv2DTranspose"),
    (Conv3DTranspose, "Conv3DTranspose"),
):
    _cls.__doc__ = (_cls.__doc__ or "").replace("{fields}", _FIELDS_DOC.format(keras=_keras))


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
        return forward(self, inputs, config, weight_losses=creates)


LINEN_LAYERS = (_ConvTranspose, FunctionalConvTranspose)
