"""Argument resolution and the forward computation shared by every layer API.

The linen modules, the NNX modules and the functional API all turn their
TF/Keras-style arguments into one :class:`LayerConfig` with :func:`resolve`,
and compute their output with :func:`forward`, their weight penalties with
:func:`weight_losses` and their activity penalty with :func:`activity_loss`.
Only the storage of variables and losses differs between them.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax.typing import ArrayLike, DTypeLike

from jdeconv import _shapes, constraints, initializers, regularizers
from jdeconv._lowerings import METHODS
from jdeconv._op import conv_transpose

#: The linen collection (and the meaning of the NNX variable type) that holds
#: the variables of a layer built with ``trainable=False``.
FROZEN_COLLECTION = "frozen_params"
#: The linen collection the layers sow their regularization penalties into.
LOSSES_COLLECTION = "losses"

Activation = Callable[[jax.Array], jax.Array]


def _keras_hard_sigmoid(x: jax.Array) -> jax.Array:
    # tf_keras: clip(0.2 * x + 0.5, 0, 1), not jax.nn.hard_sigmoid.
    return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def _keras_gelu(x: jax.Array) -> jax.Array:
    # tf_keras' gelu is exact by default; jax.nn.gelu approximates by default.
    return jax.nn.gelu(x, approximate=False)


def _keras_leaky_relu(x: jax.Array) -> jax.Array:
    # tf.nn.leaky_relu's default slope is 0.2 (jax.nn.leaky_relu's is 0.01).
    return jax.nn.leaky_relu(x, negative_slope=0.2)


#: Keras activation names and their JAX equivalents (``"linear"``: none).
ACTIVATIONS: Mapping[str, Activation | None] = {
    "linear": None,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": _keras_leaky_relu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu": _keras_gelu,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": _keras_hard_sigmoid,
    "tanh": jnp.tanh,
    "softmax": jax.nn.softmax,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "swish": jax.nn.silu,
    "silu": jax.nn.silu,
    "mish": jax.nn.mish,
    "exponential": jnp.exp,
}


@dataclasses.dataclass(frozen=True)
class LayerConfig:
    """A layer's arguments, checked and normalised.

    Tuples have one entry per spatial dimension. ``padding`` is ``"SAME"`` or
    ``"VALID"``; initializers, regularizers and constraints are callables.
    """

    function: str
    num_spatial: int
    filters: int
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str
    channels_last: bool
    activation: Activation | None
    use_bias: bool
    kernel_initializer: initializers.Initializer
    bias_initializer: initializers.Initializer
    kernel_regularizer: regularizers.Regularizer | None
    bias_regularizer: regularizers.Regularizer | None
    activity_regularizer: regularizers.Regularizer | None
    kernel_constraint: constraints.Constraint | None
    bias_constraint: constraints.Constraint | None
    trainable: bool
    output_padding: tuple[int, ...] | None
    dilation_rate: tuple[int, ...]
    groups: int
    method: str
    dtype: DTypeLike | None
    param_dtype: DTypeLike
    precision: Any

    @property
    def data_format(self) -> str:
        """TensorFlow's op-level layout string, e.g. ``"NHWC"``."""
        return _shapes.data_format_string(self.num_spatial, self.channels_last)

    def kernel_shape(self, in_channels: int) -> tuple[int, ...]:
        """``[*kernel_size, filters // groups, in_channels]`` (TensorFlow's layout)."""
        return (*self.kernel_size, self.filters // self.groups, in_channels)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.filters,)

    def in_channels(self, input_shape: Sequence[int]) -> int:
        """Checks the rank and groups of an input shape; returns its channel count."""
        if len(input_shape) != self.num_spatial + 2:
            layout = (
                "(batch, *spatial, channels)"
                if self.channels_last
                else "(batch, channels, *spatial)"
            )
            raise ValueError(
                f"{self.function}: `inputs` must have {self.num_spatial + 2} dimensions "
                f"{layout}, got shape {tuple(input_shape)}."
            )
        channels = input_shape[-1] if self.channels_last else input_shape[1]
        check_in_channels(self, channels, "inputs")
        return channels

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """The spatial output size, Keras' ``deconv_output_length`` per dimension."""
        sizes = []
        for dim, (i, k, s, d) in enumerate(
            zip(input_size, self.kernel_size, self.strides, self.dilation_rate, strict=True)
        ):
            output_padding = None if self.output_padding is None else self.output_padding[dim]
            size = _shapes.deconv_output_length(i, k, s, d, self.padding, output_padding)
            accepted = _shapes.accepted_output_sizes(i, k, s, d, self.padding)
            if size not in accepted:
                raise ValueError(
                    f"{self.function}: output_padding={self.output_padding} gives output "
                    f"size {size} in spatial dimension {dim}, which a "
                    f"{self.padding!r} transposed convolution cannot produce from input "
                    f"size {i} with kernel size {k}, stride {s} and dilation {d}: the "
                    f"accepted sizes are [{accepted.start}, {accepted.stop - 1}]."
                )
            sizes.append(size)
        return tuple(sizes)


def check_in_channels(config: LayerConfig, channels: Any, argument: str) -> int:
    """Checks an input channel count against ``groups``."""
    _check_positive_int(config.function, f"the channel count of `{argument}`", channels)
    if channels % config.groups:
        raise ValueError(
            f"{config.function}: the {channels} input channels of `{argument}` must be "
            f"divisible by groups={config.groups}."
        )
    return int(channels)


def _check_positive_int(function: str, what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{function}: {what} must be an int, got {type(value).__name__} {value!r}.")
    if value < 1:
        raise ValueError(f"{function}: {what} must be a positive int, got {value!r}.")


def _int_tuple(
    function: str, argument: str, value: Any, num_spatial: int, minimum: int
) -> tuple[int, ...]:
    """An int, or one int per spatial dimension (Keras' ``normalize_tuple``)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values: tuple[Any, ...] = (value,) * num_spatial
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
    else:
        raise TypeError(
            f"{function}: `{argument}` must be an int or a sequence of {num_spatial} "
            f"ints, got {type(value).__name__} {value!r}."
        )
    if len(values) != num_spatial or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(
            f"{function}: `{argument}` must be an int or a sequence of {num_spatial} "
            f"ints, got {value!r}."
        )
    if any(v < minimum for v in values):
        raise ValueError(
            f"{function}: every entry of `{argument}` must be >= {minimum}, got {value!r}."
        )
    return tuple(int(v) for v in values)


def _check_bool(function: str, argument: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{function}: `{argument}` must be True or False, got {value!r}.")
    return value


def _activation(function: str, activation: Any) -> Activation | None:
    if activation is None:
        return None
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"{function}: `activation` must be a callable or one of "
                f"{tuple(ACTIVATIONS)}, got {activation!r}."
            )
        return ACTIVATIONS[activation]
    if callable(activation):
        return activation
    raise TypeError(
        f"{function}: `activation` must be None, a callable or a Keras activation "
        f"name, got {type(activation).__name__} {activation!r}."
    )


def resolve(  # noqa: D417 - the keyword arguments are the layers' fields
    function: str,
    num_spatial: int,
    *,
    filters: Any,
    kernel_size: Any,
    strides: Any = 1,
    padding: Any = "valid",
    data_format: Any = "channels_last",
    activation: Any = None,
    use_bias: Any = True,
    kernel_initializer: Any = None,
    bias_initializer: Any = "zeros",
    kernel_regularizer: Any = None,
    bias_regularizer: Any = None,
    activity_regularizer: Any = None,
    kernel_constraint: Any = None,
    bias_constraint: Any = None,
    trainable: Any = True,
    output_padding: Any = None,
    dilation_rate: Any = 1,
    groups: Any = 1,
    method: Any = "auto",
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
    precision: Any = None,
) -> LayerConfig:
    """Checks a layer's TF/Keras arguments and returns its :class:`LayerConfig`.

    Args:
      function: the public name the arguments were given to, for errors.
      num_spatial: the number of spatial dimensions.
      filters, kernel_size, ...: the arguments of :class:`jdeconv.Conv2DTranspose`,
        documented there.

    Raises:
      TypeError: on an argument of the wrong kind.
      ValueError: on a bad value.
    """
    _check_positive_int(function, "`filters`", filters)
    kernel_size = _int_tuple(function, "kernel_size", kernel_size, num_spatial, 1)
    strides = _int_tuple(function, "strides", strides, num_spatial, 1)
    dilation_rate = _int_tuple(function, "dilation_rate", dilation_rate, num_spatial, 1)

    if not isinstance(padding, str) or padding.lower() not in ("same", "valid"):
        raise ValueError(f"{function}: `padding` must be 'same' or 'valid', got {padding!r}.")
    padding = padding.upper()

    if data_format is None:
        data_format = "channels_last"
    if not isinstance(data_format, str) or data_format.lower() not in (
        "channels_last",
        "channels_first",
    ):
        raise ValueError(
            f"{function}: `data_format` must be 'channels_last' or 'channels_first', "
            f"got {data_format!r}."
        )
    channels_last = data_format.lower() == "channels_last"

    if output_padding is not None:
        output_padding = _int_tuple(function, "output_padding", output_padding, num_spatial, 0)
        if any(p >= s for p, s in zip(output_padding, strides, strict=True)):
            raise ValueError(
                f"{function}: every `output_padding` must be smaller than its stride, "
                f"got output_padding={output_padding} and strides={strides}."
            )

    _check_positive_int(function, "`groups`", groups)
    if filters % groups:
        raise ValueError(f"{function}: `filters` ({filters}) must be divisible by groups={groups}.")
    if method not in METHODS:
        raise ValueError(f"{function}: `method` must be one of {METHODS}, got {method!r}.")

    if kernel_initializer is None:
        kernel_initializer = "glorot_uniform"
    if bias_initializer is None:
        bias_initializer = "zeros"
    if kernel_initializer == "icnr" and any(d != 1 for d in dilation_rate):
        raise ValueError(
            f"{function}: kernel_initializer='icnr' needs dilation_rate 1, got {dilation_rate}."
        )

    return LayerConfig(
        function=function,
        num_spatial=num_spatial,
        filters=int(filters),
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        channels_last=channels_last,
        activation=_activation(function, activation),
        use_bias=_check_bool(function, "use_bias", use_bias),
        kernel_initializer=initializers.get(
            kernel_initializer, strides=strides, function=function, argument="kernel_initializer"
        ),
        bias_initializer=initializers.get(
            bias_initializer, function=function, argument="bias_initializer"
        ),
        kernel_regularizer=regularizers.get(
            kernel_regularizer, function=function, argument="kernel_regularizer"
        ),
        bias_regularizer=regularizers.get(
            bias_regularizer, function=function, argument="bias_regularizer"
        ),
        activity_regularizer=regularizers.get(
            activity_regularizer, function=function, argument="activity_regularizer"
        ),
        kernel_constraint=constraints.get(
            kernel_constraint, function=function, argument="kernel_constraint"
        ),
        bias_constraint=constraints.get(
            bias_constraint, function=function, argument="bias_constraint"
        ),
        trainable=_check_bool(function, "trainable", trainable),
        output_padding=output_padding,
        dilation_rate=dilation_rate,
        groups=int(groups),
        method=method,
        dtype=dtype,
        param_dtype=param_dtype,
        precision=precision,
    )


def check_variable(
    config: LayerConfig, name: str, value: jax.Array, shape: tuple[int, ...]
) -> None:
    """Checks the shape of a stored (e.g. loaded) kernel or bias."""
    if tuple(value.shape) != shape:
        expected = (
            "[*kernel_size, filters // groups, in_channels]" if name == "kernel" else "[filters]"
        )
        raise ValueError(
            f"{config.function}: `{name}` has shape {tuple(value.shape)}, but this layer "
            f"and input need {shape} ({expected})."
        )


def forward(
    config: LayerConfig, inputs: jax.Array, kernel: jax.Array, bias: jax.Array | None
) -> jax.Array:
    """``activation(conv_transpose(inputs, kernel) + bias)``, at Keras' output size."""
    inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=config.dtype)
    spatial = inputs.shape[1:-1] if config.channels_last else inputs.shape[2:]
    outputs = conv_transpose(
        inputs,
        kernel,
        config.output_size(spatial),
        config.strides,
        config.padding,
        config.data_format,
        config.dilation_rate,
        groups=config.groups,
        method=config.method,
        precision=config.precision,
    )
    if bias is not None:
        if not config.channels_last:
            bias = bias.reshape((config.filters,) + (1,) * config.num_spatial)
        outputs = outputs + bias
    if config.activation is not None:
        outputs = config.activation(outputs)
    return outputs


def weight_losses(
    config: LayerConfig, kernel: jax.Array, bias: jax.Array | None
) -> dict[str, jax.Array]:
    """The kernel and bias penalties, keyed ``kernel_regularizer`` / ``bias_regularizer``."""
    losses = {}
    if config.kernel_regularizer is not None:
        losses["kernel_regularizer"] = jnp.asarray(config.kernel_regularizer(kernel))
    if config.bias_regularizer is not None and bias is not None:
        losses["bias_regularizer"] = jnp.asarray(config.bias_regularizer(bias))
    return losses


def keep_latest(previous: Any, new: Any) -> Any:
    """The ``reduce_fn`` that sows a weight penalty once: a later value replaces it."""
    del previous
    return new


def no_loss() -> jax.Array:
    """The ``init_fn`` paired with :func:`keep_latest`."""
    return jnp.zeros(())


def activity_loss(config: LayerConfig, outputs: jax.Array) -> jax.Array | None:
    """The activity penalty divided by the batch size, as Keras' ``Layer`` does.

    A batch of size 0 gives 0 (Keras divides with ``divide_no_nan``).
    """
    if config.activity_regularizer is None:
        return None
    loss = jnp.asarray(config.activity_regularizer(outputs))
    batch_size = outputs.shape[0]
    if batch_size == 0:
        return jnp.zeros_like(loss)
    return loss / jnp.asarray(batch_size, loss.dtype)


def field_names() -> tuple[str, ...]:
    """The user-facing arguments :func:`resolve` takes, in order."""
    return (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "bias_constraint",
        "trainable",
        "output_padding",
        "dilation_rate",
        "groups",
        "method",
        "dtype",
        "param_dtype",
        "precision",
    )


def check_array(function: str, argument: str, value: ArrayLike) -> jax.Array:
    """``jnp.asarray`` with a TypeError naming the function and argument."""
    if isinstance(value, jax.Array):
        return value
    try:
        return jnp.asarray(value)
    except TypeError as error:
        raise TypeError(
            f"{function}: `{argument}` must be an array, got {type(value).__name__}: {error}"
        ) from None
