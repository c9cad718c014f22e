"""TensorFlow's functional layers, ``tf.compat.v1.layers``, inside Flax linen.

``jdeconv.layers.conv2d_transpose(inputs, filters, kernel_size, ...)`` takes
the arguments of ``tf.compat.v1.layers.conv2d_transpose`` and may be called
inside any ``flax.linen`` method decorated with ``@nn.compact``: it creates a
submodule named like TensorFlow's layer, whose variables ``kernel`` and
``bias`` sit under that name in the parameters. A TF1 decoder ports line by
line:

    @nn.compact
    def __call__(self, z):
        x = jdeconv.layers.conv2d_transpose(z, 64, 4, 2, "same", activation="relu")
        return jdeconv.layers.conv2d_transpose(x, 3, 4, 2, "same", name="rgb")

Names and reuse follow TensorFlow, with the calling module in the place of the
variable scope:

- ``name=None`` names the layers ``conv2d_transpose``, ``conv2d_transpose_1``,
  ``conv2d_transpose_2``, ... in call order (skipping names already taken).
- A second call with the same ``name`` and ``reuse=True`` (or
  :data:`AUTO_REUSE`) shares the first one's variables; the reusing call's
  other arguments (activation, strides, ...) apply to it, as in TensorFlow.
- The same ``name`` without ``reuse`` raises ``ValueError``, and so does
  ``reuse=True`` for a name no earlier call in this module has created.
- Calling the module again (for instance twice in one ``apply``) reuses its
  layers, as any Flax submodule is reused; TensorFlow's
  ``variable_scope(reuse=True)`` is not needed.

The layer classes are re-exported here too, as in ``tf.compat.v1.layers``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jdeconv import _checks, _docstrings
from jdeconv._layers import _config, _flax_internals
from jdeconv._layers.linen import (
    Conv1DTranspose,
    Conv2DTranspose,
    Conv3DTranspose,
    FunctionalConvTranspose,
)
from jdeconv._types import (
    ActivationLike,
    ConstraintLike,
    InitializerLike,
    IntOrSequence,
    RegularizerLike,
)

__all__ = [
    "AUTO_REUSE",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "conv1d_transpose",
    "conv2d_transpose",
    "conv3d_transpose",
]


class _AutoReuse:
    """The type of :data:`AUTO_REUSE`."""

    _instance: _AutoReuse | None = None

    def __new__(cls) -> _AutoReuse:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "jdeconv.layers.AUTO_REUSE"

    def __reduce__(self) -> str:
        return "AUTO_REUSE"


#: ``reuse=AUTO_REUSE`` shares the layer's variables if a layer of that name
#: exists already in the calling module, and creates it otherwise (TensorFlow's
#: ``tf.compat.v1.AUTO_REUSE``).
AUTO_REUSE = _AutoReuse()


def _calling_module(function: str) -> nn.Module:
    """The linen module whose ``@nn.compact`` method is running."""
    parent = _flax_internals.running_linen_module()
    if parent is None:
        raise ValueError(
            f"{function}: must be called inside a flax.linen Module method decorated "
            f"with @nn.compact, where it creates its layer as a submodule; outside a "
            f"module, use the layer class (e.g. jdeconv.Conv2DTranspose) instead."
        )
    if parent.scope is None or not _flax_internals.in_compact_method(parent):
        raise ValueError(
            f"{function}: must be called inside a method decorated with @nn.compact, "
            f"but {type(parent).__name__} is running a method that is not."
        )
    return parent


def _where(parent: nn.Module) -> str:
    path = "/".join(str(p) for p in parent.path)
    return f"{type(parent).__name__} ({path or 'the top-level module'})"


_OTHER_ARGS = {
    "inputs": "``(batch, *spatial, channels)``, or ``(batch, channels, *spatial)`` for "
    '``data_format="channels_first"``.',
    "name": "the layer's name; ``None`` names it as TensorFlow does.",
    "reuse": "``True`` or :data:`AUTO_REUSE` to share the variables of the earlier layer "
    "of that name.",
}


def _apply(function: str, num_spatial: int, call: Mapping[str, Any]) -> jax.Array:
    """Creates or reuses a functional layer's submodule; ``call``: its parameters."""
    inputs, name, reuse = call["inputs"], call["name"], call["reuse"]
    parent = _calling_module(function)
    config = _config.resolve(function, num_spatial, _config.arguments_of(call))
    if not (reuse is None or isinstance(reuse, bool) or reuse is AUTO_REUSE):
        raise TypeError(
            f"{function}: `reuse` must be None, True, False or "
            f"jdeconv.layers.AUTO_REUSE, got {reuse!r}."
        )
    name = _checks.optional_name(function, "name", name)
    if name is None:
        name, suffix = function, 0
        while _flax_internals.name_reserved(parent, name):
            suffix += 1
            name = f"{function}_{suffix}"

    if _flax_internals.name_reserved(parent, name):
        if not reuse:
            raise ValueError(
                f"{function}: a layer named {name!r} already exists in {_where(parent)}. "
                f"Pass reuse=True or reuse=jdeconv.layers.AUTO_REUSE to share its "
                f"variables, or choose another name."
            )
        layer = _flax_internals.child(parent, name)
        if not isinstance(layer, FunctionalConvTranspose):
            raise ValueError(
                f"{function}: the name {name!r} in {_where(parent)} belongs to "
                f"{type(layer).__name__ if layer is not None else 'a variable'}, not to "
                f"a layer of jdeconv.layers, so it cannot be reused."
            )
        return layer(inputs, config, False)
    if reuse is True:
        raise ValueError(
            f"{function}: reuse=True, but no layer named {name!r} exists in "
            f"{_where(parent)} yet. Create it first (reuse=None), or pass "
            f"reuse=jdeconv.layers.AUTO_REUSE."
        )
    return FunctionalConvTranspose(name=name, parent=parent)(inputs, config, True)


_ARGS_DOC = """
    {{arguments}}

    Returns:
      The layer's output, as from :class:`jdeconv.{cls}`.

    Raises:
      ValueError: outside an ``@nn.compact`` method, on a name clash without
        ``reuse``, on ``reuse=True`` for an unknown name, or on a bad argument.
      TypeError: on an argument of the wrong kind.
"""


def conv1d_transpose(
    inputs: ArrayLike,
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
    name: str | None = None,
    reuse: bool | _AutoReuse | None = None,
    *,
    output_padding: IntOrSequence | None = None,
    dilation_rate: IntOrSequence = 1,
    groups: int = 1,
    method: str | None = None,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
    precision: jax.lax.PrecisionLike = None,
) -> jax.Array:
    """Functional 1-d transposed convolution layer, in the style of ``tf.compat.v1.layers``.

    {args}

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jdeconv
      >>> class Up(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return jdeconv.layers.conv1d_transpose(x, 4, 3, 2, "same")
      >>> variables = Up().init(jax.random.key(0), jnp.ones((2, 8, 3)))
      >>> list(variables["params"])
      ['conv1d_transpose']
    """
    return _apply("conv1d_transpose", 1, locals())


def conv2d_transpose(
    inputs: ArrayLike,
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
    name: str | None = None,
    reuse: bool | _AutoReuse | None = None,
    *,
    output_padding: IntOrSequence | None = None,
    dilation_rate: IntOrSequence = 1,
    groups: int = 1,
    method: str | None = None,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
    precision: jax.lax.PrecisionLike = None,
) -> jax.Array:
    """Functional 2-d transposed convolution layer, as ``tf.compat.v1.layers.conv2d_transpose``.

    {args}

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jdeconv
      >>> class Decoder(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         x = jdeconv.layers.conv2d_transpose(x, 8, 4, 2, "same", activation="relu")
      ...         x = jdeconv.layers.conv2d_transpose(x, 8, 4, 2, "same")
      ...         shared = jdeconv.layers.conv2d_transpose(x, 3, 3, name="rgb")
      ...         again = jdeconv.layers.conv2d_transpose(x, 3, 3, name="rgb", reuse=True)
      ...         return shared + again
      >>> variables = Decoder().init(jax.random.key(0), jnp.ones((1, 4, 4, 16)))
      >>> sorted(variables["params"])
      ['conv2d_transpose', 'conv2d_transpose_1', 'rgb']
      >>> Decoder().apply(variables, jnp.ones((1, 4, 4, 16))).shape
      (1, 18, 18, 3)
    """
    return _apply("conv2d_transpose", 2, locals())


def conv3d_transpose(
    inputs: ArrayLike,
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
    name: str | None = None,
    reuse: bool | _AutoReuse | None = None,
    *,
    output_padding: IntOrSequence | None = None,
    dilation_rate: IntOrSequence = 1,
    groups: int = 1,
    method: str | None = None,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
    precision: jax.lax.PrecisionLike = None,
) -> jax.Array:
    """Functional 3-d transposed convolution layer, as ``tf.compat.v1.layers.conv3d_transpose``.

    {args}

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jdeconv
      >>> class Up(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return jdeconv.layers.conv3d_transpose(x, 2, 2, 2, name="up")
      >>> Up().init_with_output(jax.random.key(0), jnp.ones((1, 3, 3, 3, 4)))[0].shape
      (1, 6, 6, 6, 2)
    """
    return _apply("conv3d_transpose", 3, locals())


for _function, _cls in (
    (conv1d_transpose, "Conv1DTranspose"),
    (conv2d_transpose, "Conv2DTranspose"),
    (conv3d_transpose, "Conv3DTranspose"),
):
    _function.__doc__ = _docstrings.fill(_function.__doc__, "args", _ARGS_DOC.format(cls=_cls))
    _config.document(
        _function, "arguments", "Args", inspect.signature(_function).parameters, _OTHER_ARGS
    )
