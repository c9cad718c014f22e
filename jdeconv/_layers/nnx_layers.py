"""The ``flax.nnx`` transposed-convolution layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from jdeconv._layers import _config
from jdeconv._layers.linen import Activation, Constraint, Initializer, Regularizer

IntOrSequence = int | Sequence[int]


class FrozenParam(nnx.Variable):
    """The type of a ``trainable=False`` layer's ``kernel`` and ``bias``.

    It is not an ``nnx.Param``, so ``nnx.Optimizer(model, tx, wrt=nnx.Param)``
    and ``nnx.grad`` (which differentiates ``nnx.Param`` by default) leave it
    alone. It plays the part of linen's ``"frozen_params"`` collection.

    Example:
      >>> import jdeconv
      >>> from flax import nnx
      >>> layer = jdeconv.nnx.Conv2DTranspose(3, 4, 3, trainable=False, rngs=nnx.Rngs(0))
      >>> type(layer.kernel).__name__, len(nnx.state(layer, nnx.Param))
      ('FrozenParam', 0)
    """


class RegularizationLoss(nnx.Variable):
    """The type the layers sow their regularization penalties as.

    Capture them with ``nnx.capture(model, jdeconv.nnx.RegularizationLoss)`` and
    sum them with :func:`jdeconv.regularization_loss`. Outside ``nnx.capture``
    nothing is stored.

    Example:
      >>> import jax.numpy as jnp, jdeconv
      >>> from flax import nnx
      >>> layer = jdeconv.nnx.Conv2DTranspose(1, 2, 3, activity_regularizer="l1", rngs=nnx.Rngs(0))
      >>> y, losses = nnx.capture(layer, jdeconv.nnx.RegularizationLoss)(jnp.ones((2, 4, 4, 1)))
      >>> bool(jnp.allclose(jdeconv.regularization_loss(losses), 0.01 * jnp.abs(y).sum() / 2))
      True
    """


def _sow(module: nnx.Module, name: str, value: jax.Array, replace: bool) -> None:
    # Flax >= 0.12 collects sown values only inside ``nnx.capture`` and
    # deprecates storing them on the module otherwise, so sow only there. The
    # attribute tested is the one ``nnx.Module.sow`` itself tests.
    if hasattr(nnx, "capture") and not hasattr(module, "__captures__"):
        return
    if replace:
        module.sow(
            RegularizationLoss, name, value, reduce_fn=_config.keep_latest, init_fn=_config.no_loss
        )
    else:
        module.sow(RegularizationLoss, name, value)


class _ConvTranspose(nnx.Module):
    """Shared constructor and body of the 1-, 2- and 3-d NNX layers."""

    num_spatial: ClassVar[int]

    def __init__(
        self,
        in_features: int,
        filters: int,
        kernel_size: IntOrSequence,
        strides: IntOrSequence = 1,
        padding: str = "valid",
        data_format: str | None = "channels_last",
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = None,
        bias_initializer: Initializer = "zeros",
        kernel_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        activity_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        trainable: bool = True,
        output_padding: IntOrSequence | None = None,
        dilation_rate: IntOrSequence = 1,
        groups: int = 1,
        method: str = "auto",
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        precision: jax.lax.PrecisionLike = None,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        arguments = dict(locals())
        config = _config.resolve(
            type(self).__name__,
            self.num_spatial,
            **{name: arguments[name] for name in _config.field_names()},
        )
        self.config = config
        self.in_features = _config.check_in_channels(config, in_features, "in_features")
        variable_type: type[nnx.Variable] = nnx.Param if config.trainable else FrozenParam
        self.bias: nnx.Variable | None
        self.kernel = variable_type(
            config.kernel_initializer(
                rngs.params(), config.kernel_shape(self.in_features), config.param_dtype
            )
        )
        if config.use_bias:
            self.bias = variable_type(
                config.bias_initializer(rngs.params(), config.bias_shape, config.param_dtype)
            )
        else:
            self.bias = nnx.data(None) if hasattr(nnx, "data") else None

    def __call__(self, inputs: ArrayLike) -> jax.Array:
        """Applies the layer.

        Args:
          inputs: ``(batch, *spatial, in_features)``, or
            ``(batch, in_features, *spatial)`` for ``channels_first``.

        Returns:
          ``activation(conv_transpose(inputs, kernel) + bias)``.
        """
        config = self.config
        x = _config.check_array(config.function, "inputs", inputs)
        in_channels = config.in_channels(x.shape)
        if in_channels != self.in_features:
            raise ValueError(
                f"{config.function}: `inputs` has {in_channels} channels, but the layer "
                f"was built with in_features={self.in_features}; input shape {x.shape}."
            )
        kernel = self.kernel[...]
        bias = self.bias[...] if self.bias is not None else None
        _config.check_variable(config, "kernel", kernel, config.kernel_shape(self.in_features))
        if bias is not None:
            _config.check_variable(config, "bias", bias, config.bias_shape)
        outputs = _config.forward(config, x, kernel, bias)
        for name, loss in _config.weight_losses(config, kernel, bias).items():
            _sow(self, name, loss, replace=True)
        activity = _config.activity_loss(config, outputs)
        if activity is not None:
            _sow(self, "activity_regularizer", activity, replace=False)
        return outputs


_ARGS_DOC = """
    The arguments are those of the linen :class:`jdeconv.{name}`, in flax.nnx
    style: the input channel count ``in_features`` comes first and the
    parameters are created at construction from ``rngs``. The arguments not
    listed below (``strides``, ``padding``, ``data_format``, ``activation``,
    ``use_bias``, ``kernel_initializer``, ``bias_initializer``,
    ``kernel_regularizer``, ``bias_regularizer``, ``activity_regularizer``,
    ``kernel_constraint``, ``bias_constraint``, ``trainable``,
    ``output_padding``, ``dilation_rate``, ``groups``, ``method``, ``dtype``,
    ``param_dtype`` and ``precision``) mean what they mean for the linen
    :class:`jdeconv.{name}`.

    Args:
      in_features: the input channel count.
      filters: the number of output channels.
      kernel_size: an int, or one int per spatial dimension.
      rngs: the ``nnx.Rngs`` the parameters are drawn from.

    Attributes:
      kernel: ``nnx.Param`` (``FrozenParam`` if ``trainable=False``) of shape
        ``[*kernel_size, filters // groups, in_features]``.
      bias: likewise, shape ``[filters]``, or ``None``.
      config: the checked arguments.

    Regularization penalties are sown as :class:`RegularizationLoss` inside
    ``nnx.capture``: ``y, losses = nnx.capture(model,
    jdeconv.nnx.RegularizationLoss)(x)``, then
    ``jdeconv.regularization_loss(losses)``.
"""


class Conv1DTranspose(_ConvTranspose):
    """1-d transposed convolution layer for flax.nnx.

    {args}

    Example:
      >>> import jax.numpy as jnp, jdeconv
      >>> from flax import nnx
      >>> layer = jdeconv.nnx.Conv1DTranspose(3, 4, 3, strides=2, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 10, 3))).shape
      (2, 21, 4)
    """

    num_spatial: ClassVar[int] = 1


class Conv2DTranspose(_ConvTranspose):
    """2-d transposed convolution layer for flax.nnx.

    {args}

    Example:
      >>> import jax.numpy as jnp, jdeconv
      >>> from flax import nnx
      >>> layer = jdeconv.nnx.Conv2DTranspose(3, 8, 4, strides=2, padding="same", rngs=nnx.Rngs(0))
      >>> layer.kernel.shape
      (4, 4, 8, 3)
      >>> layer(jnp.ones((1, 5, 5, 3))).shape
      (1, 10, 10, 8)
    """

    num_spatial: ClassVar[int] = 2


class Conv3DTranspose(_ConvTranspose):
    """3-d transposed convolution layer for flax.nnx.

    {args}

    Example:
      >>> import jax.numpy as jnp, jdeconv
      >>> from flax import nnx
      >>> layer = jdeconv.nnx.Conv3DTranspose(4, 2, 2, strides=2, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((1, 3, 3, 3, 4))).shape
      (1, 6, 6, 6, 2)
    """

    num_spatial: ClassVar[int] = 3


for _cls in (Conv1DTranspose, Conv2DTranspose, Conv3DTranspose):
    _cls.__doc__ = (_cls.__doc__ or "").replace("{args}", _ARGS_DOC.format(name=_cls.__name__))

NNX_LAYERS = (_ConvTranspose,)
