"""The layer arguments: declared once, then documented, bound and checked.

:class:`LayerArguments` is the one declaration of the arguments that every
layer front end takes: the linen modules, the NNX modules and the functional
layers of :mod:`jdeconv.layers`. Each field carries the argument's default, its
type as users spell it, a line of documentation and the checker that turns a
user's value into its canonical form. Everything else follows from the fields:

- the linen modules inherit them as their dataclass fields;
- the NNX constructor and the functional layers write them out as their
  parameters, in source (so that type checkers and IDEs see them), and
  ``tests/test_layer_arguments.py`` checks that each signature is this
  declaration: names, order, kinds, defaults and annotations;
- :func:`document` writes their documentation;
- :func:`resolve` checks a layer's values into a :class:`LayerConfig`, whose
  typed fields hold the canonical values.

Adding an argument is one field here, the parameter in each written
signature (the test names the ones that lack it), and the code that uses it.
"""

from __future__ import annotations

import dataclasses
import textwrap
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jdeconv import (
    _checks,
    _docstrings,
    _keras_rules,
    _shapes,
    constraints,
    initializers,
    regularizers,
)
from jdeconv._layers import _activations
from jdeconv._lowerings import check_method
from jdeconv._types import (
    ActivationLike,
    ConstraintLike,
    InitializerLike,
    IntOrSequence,
    RegularizerLike,
)

#: The linen collection (and the meaning of the NNX variable type) that holds
#: the variables of a layer built with ``trainable=False``.
FROZEN_COLLECTION = "frozen_params"


@dataclasses.dataclass(frozen=True)
class _Checking:
    """What a checker knows besides the value: where it is, and what came before."""

    function: str
    argument: str
    num_spatial: int
    checked: Mapping[str, Any]  # the arguments declared earlier, canonical


Checker = Callable[[_Checking, Any], Any]


def _about(doc: str, check: Checker, *, tf1_positional: bool = False) -> dict[str, Any]:
    """The metadata of a field of :class:`LayerArguments`.

    Args:
      doc: the documentation, one sentence or a few, without the name.
      check: ``check(checking, value)`` returns the canonical value or raises.
      tf1_positional: whether ``tf.compat.v1.layers`` takes it by position
        (before ``name`` and ``reuse``); the others are keyword-only there.
    """
    return {"doc": doc, "check": check, "tf1_positional": tf1_positional}


# Checkers: each returns the canonical value of one argument.


def _positive_integer(c: _Checking, value: Any) -> int:
    return _checks.positive_integer(c.function, c.argument, value)


def _per_dimension(minimum: int) -> Checker:
    def check(c: _Checking, value: Any) -> tuple[int, ...]:
        return _checks.integer_tuple(c.function, c.argument, value, c.num_spatial, minimum)

    return check


def _optional_per_dimension(minimum: int) -> Checker:
    def check(c: _Checking, value: Any) -> tuple[int, ...] | None:
        if value is None:
            return None
        return _checks.integer_tuple(c.function, c.argument, value, c.num_spatial, minimum)

    return check


def _padding(c: _Checking, value: Any) -> str:
    """``"SAME"`` or ``"VALID"``, from Keras' lower case (any case)."""
    return _keras_rules.padding(c.function, c.argument, value)


def _data_format(c: _Checking, value: Any) -> str:
    """``"channels_last"`` (also for ``None``) or ``"channels_first"``."""
    if value is None:
        return "channels_last"
    if not isinstance(value, str) or value.lower() not in ("channels_last", "channels_first"):
        raise ValueError(
            f"{c.function}: `{c.argument}` must be 'channels_last' or 'channels_first', "
            f"got {value!r}."
        )
    return value.lower()


def _flag(c: _Checking, value: Any) -> bool:
    return _checks.boolean(c.function, c.argument, value)


def _activation(c: _Checking, value: Any) -> _activations.Activation | None:
    return _activations.get(value, function=c.function, argument=c.argument)


def _initializer(default: str, *, needs_strides: bool = False) -> Checker:
    def check(c: _Checking, value: Any) -> initializers.Initializer:
        return initializers.get(
            default if value is None else value,
            strides=c.checked["strides"] if needs_strides else None,
            function=c.function,
            argument=c.argument,
        )

    return check


def _regularizer(c: _Checking, value: Any) -> regularizers.Regularizer | None:
    return regularizers.get(value, function=c.function, argument=c.argument)


def _constraint(c: _Checking, value: Any) -> constraints.Constraint | None:
    return constraints.get(value, function=c.function, argument=c.argument)


def _method(c: _Checking, value: Any) -> str | None:
    return check_method(c.function, c.argument, value)


def _optional_dtype(c: _Checking, value: Any) -> Any:
    return _checks.floating_dtype(c.function, c.argument, value, optional=True)


def _dtype(c: _Checking, value: Any) -> Any:
    return _checks.floating_dtype(c.function, c.argument, value, optional=False)


def _precision(c: _Checking, value: Any) -> Any:
    return _checks.precision(c.function, c.argument, value)


@dataclasses.dataclass(eq=False, repr=False)
class LayerArguments:
    """The arguments of every transposed-convolution layer, declared once.

    The names and defaults are those of ``tf.keras.layers.Conv2DTranspose``
    and ``tf.compat.v1.layers.Conv2DTranspose``, plus ``groups``, ``method``,
    ``dtype``, ``param_dtype`` and ``precision``. The linen modules inherit
    these fields; the other front ends derive their signatures from them.
    """

    filters: int = dataclasses.field(
        metadata=_about("the number of output channels.", _positive_integer, tf1_positional=True)
    )
    kernel_size: IntOrSequence = dataclasses.field(
        metadata=_about(
            "an int, or one int per spatial dimension.", _per_dimension(1), tf1_positional=True
        )
    )
    strides: IntOrSequence = dataclasses.field(
        default=1,
        metadata=_about(
            "an int, or one int per spatial dimension.", _per_dimension(1), tf1_positional=True
        ),
    )
    padding: str = dataclasses.field(
        default="valid",
        metadata=_about('``"valid"`` or ``"same"``, in any case.', _padding, tf1_positional=True),
    )
    data_format: str | None = dataclasses.field(
        default="channels_last",
        metadata=_about(
            '``"channels_last"`` (default; ``None`` means it too) or ``"channels_first"``.',
            _data_format,
            tf1_positional=True,
        ),
    )
    activation: ActivationLike = dataclasses.field(
        default=None,
        metadata=_about(
            '``None``, a callable, or a Keras activation name such as ``"relu"`` (Keras\' '
            'definitions: ``"gelu"`` is exact, ``"leaky_relu"`` has slope 0.2, ``"softmax"`` '
            "acts on the last axis).",
            _activation,
            tf1_positional=True,
        ),
    )
    use_bias: bool = dataclasses.field(
        default=True, metadata=_about("whether to add a bias.", _flag, tf1_positional=True)
    )
    kernel_initializer: InitializerLike = dataclasses.field(
        default=None,
        metadata=_about(
            "a Flax initializer or a Keras name (see :mod:`jdeconv.initializers`), or "
            '``"icnr"`` for checkerboard-free upsampling; ``None`` means glorot uniform, as '
            "in ``tf.compat.v1.layers``.",
            _initializer("glorot_uniform", needs_strides=True),
            tf1_positional=True,
        ),
    )
    bias_initializer: InitializerLike = dataclasses.field(
        default="zeros",
        metadata=_about(
            'likewise; ``None`` or ``"zeros"`` means zeros.',
            _initializer("zeros"),
            tf1_positional=True,
        ),
    )
    kernel_regularizer: RegularizerLike = dataclasses.field(
        default=None,
        metadata=_about(
            'a callable penalty or a Keras name (``"l1"``, ``"l2"``, ``"l1_l2"``), sown as '
            "a regularization loss (see :func:`jdeconv.regularization_loss`).",
            _regularizer,
            tf1_positional=True,
        ),
    )
    bias_regularizer: RegularizerLike = dataclasses.field(
        default=None, metadata=_about("likewise, for the bias.", _regularizer, tf1_positional=True)
    )
    activity_regularizer: RegularizerLike = dataclasses.field(
        default=None,
        metadata=_about(
            "likewise, for the output, divided by the batch size as in Keras.",
            _regularizer,
            tf1_positional=True,
        ),
    )
    kernel_constraint: ConstraintLike = dataclasses.field(
        default=None,
        metadata=_about(
            'a callable projection or a Keras name (``"max_norm"``, ``"non_neg"``, '
            '``"unit_norm"``, ``"min_max_norm"``), applied after each optimizer step by '
            ":func:`jdeconv.apply_constraints`.",
            _constraint,
            tf1_positional=True,
        ),
    )
    bias_constraint: ConstraintLike = dataclasses.field(
        default=None, metadata=_about("likewise, for the bias.", _constraint, tf1_positional=True)
    )
    trainable: bool = dataclasses.field(
        default=True,
        metadata=_about(
            "``False`` keeps ``kernel`` and ``bias`` out of the trained parameters (linen: "
            'in the ``"frozen_params"`` collection instead of ``"params"``; NNX: as '
            ":class:`jdeconv.nnx.FrozenParam`), so that an optimizer never changes them.",
            _flag,
            tf1_positional=True,
        ),
    )
    output_padding: IntOrSequence | None = dataclasses.field(
        default=None,
        metadata=_about(
            "``None`` or an int (or one per spatial dimension) smaller than the stride: "
            "extra output size, as in Keras.",
            _optional_per_dimension(0),
        ),
    )
    dilation_rate: IntOrSequence = dataclasses.field(
        default=1,
        metadata=_about(
            "an int, or one int per spatial dimension. Unlike Keras, strides and "
            "dilations above 1 may be combined.",
            _per_dimension(1),
        ),
    )
    groups: int = dataclasses.field(
        default=1,
        metadata=_about(
            "feature groups: ``kernel`` is ``[*kernel_size, filters // groups, in_channels]``.",
            _positive_integer,
        ),
    )
    method: str | None = dataclasses.field(
        default=None,
        metadata=_about(
            'the op\'s lowering: ``"auto"``, ``"autotune"`` or one of :data:`jdeconv.METHODS`; '
            "``None`` means the process-wide default (:func:`jdeconv.set_default_method`).",
            _method,
        ),
    )
    dtype: DTypeLike | None = dataclasses.field(
        default=None,
        metadata=_about(
            "the computation dtype, floating point; ``None`` promotes the input's and "
            "the parameters'.",
            _optional_dtype,
        ),
    )
    param_dtype: DTypeLike = dataclasses.field(
        default=jnp.float32, metadata=_about("the parameters' dtype, floating point.", _dtype)
    )
    precision: jax.lax.PrecisionLike = dataclasses.field(
        default=None,
        metadata=_about("passed to the op, as in :func:`jdeconv.conv_transpose`.", _precision),
    )


#: The fields of :class:`LayerArguments`, in declaration order.
FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(LayerArguments)


def _check_relations(function: str, values: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """The rules that involve more than one argument."""
    _keras_rules.check_output_padding(function, values["output_padding"], values["strides"])
    if values["filters"] % values["groups"]:
        raise ValueError(
            f"{function}: `filters` ({values['filters']}) must be divisible by "
            f"groups={values['groups']}."
        )
    if given.get("kernel_initializer") == "icnr" and any(d != 1 for d in values["dilation_rate"]):
        raise ValueError(
            f"{function}: kernel_initializer='icnr' needs dilation_rate 1, "
            f"got {values['dilation_rate']}."
        )


@dataclasses.dataclass(frozen=True, eq=False)
class LayerConfig:
    """A layer's arguments, checked: each in the canonical form its checker returns.

    One field per argument of :class:`LayerArguments`, of the same name and
    in the same order (a test checks it), typed as the checker returns it.

    Attributes:
      function: the public name the arguments were given to, for errors.
      num_spatial: the number of spatial dimensions.
    """

    function: str
    num_spatial: int
    filters: int
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str  # "SAME" or "VALID"
    data_format: str  # "channels_last" or "channels_first"
    activation: _activations.Activation | None
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
    method: str | None
    dtype: np.dtype | None
    param_dtype: np.dtype
    precision: Any

    @property
    def arguments(self) -> dict[str, Any]:
        """The canonical values, keyed by argument name, in declaration order."""
        return {field.name: getattr(self, field.name) for field in FIELDS}

    @property
    def channels_last(self) -> bool:
        return self.arguments["data_format"] == "channels_last"

    def kernel_shape(self, in_channels: int) -> tuple[int, ...]:
        """``[*kernel_size, filters // groups, in_channels]`` (TensorFlow's layout)."""
        return (*self.kernel_size, self.filters // self.groups, in_channels)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.filters,)

    def check_in_channels(self, channels: int, argument: str) -> int:
        """Checks an input channel count (at least 1, divisible by ``groups``)."""
        if channels < 1:
            raise ValueError(
                f"{self.function}: `{argument}` must have at least 1 channel, got {channels}."
            )
        if channels % self.groups:
            raise ValueError(
                f"{self.function}: the {channels} input channels of `{argument}` must be "
                f"divisible by groups={self.groups}."
            )
        return channels

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
        return self.check_in_channels(
            input_shape[-1] if self.channels_last else input_shape[1], "inputs"
        )

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """The spatial output size, Keras' ``deconv_output_length`` per dimension."""
        return _keras_rules.output_size(
            self.function,
            input_size,
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.padding,
            self.output_padding,
        )

    def geometry(self, input_shape: Sequence[int]) -> _shapes.ConvTransposeGeometry:
        """The op's geometry for an input of this shape, at Keras' output size."""
        input_size = tuple(input_shape[1:-1] if self.channels_last else input_shape[2:])
        return _shapes.make_geometry(
            self.function,
            input_size=input_size,
            kernel_size=self.kernel_size,
            output_size=self.output_size(input_size),
            strides=self.strides,
            dilations=self.dilation_rate,
            padding=self.padding,
            channels_last=self.channels_last,
            groups=self.groups,
        )


def resolve(function: str, num_spatial: int, given: Mapping[str, Any]) -> LayerConfig:
    """Checks a layer's arguments, in declaration order, into a :class:`LayerConfig`.

    Args:
      function: the public name the arguments were given to, for errors.
      num_spatial: the number of spatial dimensions.
      given: the user's values, keyed by argument name; missing optional
        arguments take their defaults.

    Raises:
      TypeError: on an argument of the wrong kind.
      ValueError: on a bad value, or values that do not fit together.
    """
    checked: dict[str, Any] = {}
    for field in FIELDS:
        value = given.get(field.name, field.default)
        checking = _Checking(function, field.name, num_spatial, types.MappingProxyType(checked))
        checked[field.name] = field.metadata["check"](checking, value)
    _check_relations(function, checked, given)
    return LayerConfig(function, num_spatial, **checked)


def values_of(layer: Any) -> dict[str, Any]:
    """The argument values an object with :class:`LayerArguments`' fields holds."""
    return {field.name: getattr(layer, field.name) for field in FIELDS}


# --------------------------------------------------------------------------
# The front ends that take the arguments as parameters (the NNX constructor,
# the functional layers): their values, and their documentation.


def arguments_of(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The layer arguments among a call's parameters (``locals()`` of a front end)."""
    return {field.name: namespace[field.name] for field in FIELDS}


def document(
    obj: Any,
    placeholder: str,
    section: str,
    names: Iterable[str],
    others: Mapping[str, str],
) -> None:
    """Replaces the line ``{placeholder}`` of ``obj.__doc__`` with a section.

    The section (``Args:`` or ``Attributes:``) documents every parameter in
    ``names``, in that order (``self`` left out): the layer arguments from
    their declaration, the others from ``others``.
    """
    docs = {field.name: field.metadata["doc"] for field in FIELDS} | dict(others)
    lines = [f"{section}:"]
    for name in names:
        if name == "self":
            continue
        lines += textwrap.wrap(
            f"{name}: {docs[name]}",
            width=84,
            initial_indent="  ",
            subsequent_indent="    ",
            break_on_hyphens=False,
        )
    obj.__doc__ = _docstrings.fill(obj.__doc__, placeholder, "\n".join(lines))
