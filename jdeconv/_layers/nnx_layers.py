"""The ``flax.nnx`` transposed-convolution layers."""

from __future__ import annotations

import inspect
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from jdeconv import _checks, _docstrings
from jdeconv._layers import _compute, _config, _flax_internals, _penalties
from jdeconv._types import (
    ActivationLike,
    ConstraintLike,
    InitializerLike,
    IntOrSequence,
    RegularizerLike,
)


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
    # Flax collects sown values only inside ``nnx.capture``, and deprecates
    # storing them on the module otherwise, so sow only there.
    if not _flax_internals.capturing(module):
        return
    if replace:
        module.sow(
            RegularizationLoss,
            name,
            value,
            reduce_fn=_penalties.keep_latest,
            init_fn=_penalties.no_penalty,
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
        activation: ActivationLike = None,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = None,
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        activity_regularizer: RegularizerLike = None,
        kernel_constraint: ConstraintLike = None,
        bias_constraint: ConstraintLike = None,
        trainable: bool = True,
        output_padding: IntOrSequence | None = None,
        dilation_rate: IntOrSequence = 1,
        groups: int = 1,
        method: str | None = None,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        precision: jax.lax.PrecisionLike = None,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        function = type(self).__name__
        in_features = _checks.positive_integer(function, "in_features", in_features)
        config = _config.resolve(function, self.num_spatial, _config.arguments_of(locals()))
        self.config = config
        self.in_features = config.check_in_channels(in_features, "in_features")
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
            self.bias = nnx.data(None)

    def __call__(self, inputs: ArrayLike) -> jax.Array:
        """Applies the layer.

        Args:
          inputs: ``(batch, *spatial, in_features)``, or
            ``(batch, in_features, *spatial)`` for ``channels_first``.

        Returns:
          ``activation(conv_transpose(inputs, kernel) + bias)``.
        """
        config = self.config
        x, in_channels = _compute.check_inputs(config, inputs)
        if in_channels != self.in_features:
            raise ValueError(
                f"{config.function}: `inputs` has {in_channels} channels, but the layer "
                f"was built with in_features={self.in_features}; input shape {x.shape}."
            )
        kernel = self.kernel[...]
        bias = self.bias[...] if self.bias is not None else None
        _compute.check_variable(config, "kernel", kernel, config.kernel_shape(self.in_features))
        if bias is not None:
            _compute.check_variable(config, "bias", bias, config.bias_shape)
        outputs = _compute.layer_output(config, x, kernel, bias)
        for name, penalty in _penalties.weight_penalties(config, kernel, bias).items():
            _sow(self, name, penalty, replace=True)
        activity = _penalties.activity_penalty(config, outputs)
        if activity is not None:
            _sow(self, "activity_regularizer", activity, replace=False)
        return outputs


_ARGS_DOC = """
    The arguments are those of the linen :class:`jdeconv.{name}`, in flax.nnx
    style: the input channel count ``in_features`` comes first and the
    parameters are created at construction from ``rngs``.

    {{arguments}}

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

_OTHER_ARGS = {
    "in_features": "the input channel count.",
    "rngs": "the ``nnx.Rngs`` the parameters are drawn from.",
}


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
    _cls.__doc__ = _docstrings.fill(_cls.__doc__, "args", _ARGS_DOC.format(name=_cls.__name__))
    _config.document(
        _cls, "arguments", "Args", inspect.signature(_cls.__init__).parameters, _OTHER_ARGS
    )

NNX_LAYERS = (_ConvTranspose,)
