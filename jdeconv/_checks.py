"""Checks of user arguments, shared by every public entry point.

Each checker takes the public function's name and the argument's name, and
either returns the value in canonical form or raises a ``TypeError`` (wrong
kind of object) or ``ValueError`` (wrong value) whose message names both,
states the rule and shows what was received:

    conv2d_transpose: `strides` must hold integers, got str 'a'.

The integer and sequence checkers are plain Python; JAX is imported only by
the array, dtype and precision checkers, so that :mod:`jdeconv._shapes` can
use the former and stay free of JAX.
"""

from __future__ import annotations

import numbers
import operator
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import jax

T = TypeVar("T")


def describe(value: Any) -> str:
    """``"<type> <repr>"`` of a received value, for error messages."""
    return f"{type(value).__name__} {value!r}"


def integer(function: str, argument: str, value: Any) -> int:
    """An integer (Python, NumPy or a concrete JAX scalar); bools are refused.

    >>> integer("f", "size", 3)
    3

    Raises:
      TypeError: if ``value`` is not an integer.
    """
    value = static(function, argument, value)
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{function}: `{argument}` must hold integers, got {describe(value)}."
        ) from None


def static(function: str, argument: str, value: Any) -> Any:
    """``value`` with each concrete JAX array in it read into NumPy; a TypeError if traced.

    A JAX array that a jitted function closes over is concrete: its values are
    known while tracing, and NumPy reads them. Iterating or indexing it inside
    the trace would give traced values instead, so the checkers read sizes
    through this first. A tracer (a value computed inside ``jit``, ``vmap`` or
    ``grad``) has no values at trace time, and shapes are static in XLA.

    >>> import jax, jax.numpy as jnp
    >>> sizes = jnp.array([15, 4])
    >>> jax.jit(lambda: jnp.zeros(static("f", "output_shape", sizes)))().shape
    (15, 4)

    Raises:
      TypeError: if ``value`` or an entry of a list or tuple is a tracer.
    """
    jax = sys.modules.get("jax")
    if jax is None:  # No JAX array exists.
        return value
    entries = value if isinstance(value, list | tuple) else (value,)
    if isinstance(value, jax.core.Tracer) or any(
        isinstance(entry, jax.core.Tracer) for entry in entries
    ):
        raise TypeError(
            f"{function}: `{argument}` must be static, but it is a traced value "
            f"(it was computed inside jit, vmap or grad). Pass Python ints, e.g. "
            f"computed from `input.shape`, or mark the argument static with "
            f"`jax.jit(..., static_argnames=...)`."
        )
    if isinstance(value, list | tuple) and any(isinstance(entry, jax.Array) for entry in value):
        return type(value)(_host(entry) for entry in value)
    return _host(value) if isinstance(value, jax.Array) else value


def _host(value: Any) -> Any:
    """A concrete JAX array as a NumPy array, or NumPy scalar where 0-d; else ``value``."""
    import jax
    import numpy as np

    if not isinstance(value, jax.Array):
        return value
    result = np.asarray(value)
    return result[()] if result.ndim == 0 else result


def dimension(function: str, argument: str, value: Any) -> Any:
    """An integer, or a symbolic dimension of ``jax.export`` (shape polymorphism).

    Raises:
      TypeError: on anything else.
    """
    from jax import export

    if export.is_symbolic_dim(value):
        return value
    return integer(function, argument, value)


def positive_integer(function: str, argument: str, value: Any, minimum: int = 1) -> int:
    """An integer ``>= minimum``.

    Raises:
      TypeError: if ``value`` is not an integer.
      ValueError: if it is below ``minimum``.
    """
    result = integer(function, argument, value)
    if result < minimum:
        raise ValueError(f"{function}: `{argument}` must be >= {minimum}, got {value!r}.")
    return result


def integer_tuple(
    function: str,
    argument: str,
    value: Any,
    length: int,
    minimum: int | None = None,
    *,
    broadcast_one: bool = False,
) -> tuple[int, ...]:
    """An int (repeated ``length`` times) or a sequence of ``length`` ints.

    Keras' ``normalize_tuple``: ``3`` and ``(3, 3)`` both give ``(3, 3)`` for
    ``length=2``. With ``broadcast_one``, a sequence of one int is repeated
    too, as PyTorch and ``jax.lax`` accept.

    >>> integer_tuple("f", "kernel_size", 3, 2)
    (3, 3)
    >>> integer_tuple("f", "stride", [2], 3, broadcast_one=True)
    (2, 2, 2)

    Raises:
      TypeError: if ``value`` is neither an int nor a sequence of ints.
      ValueError: on a wrong length or an entry below ``minimum``.
    """
    value = static(function, argument, value)
    lengths = f"1 or {length}" if broadcast_one and length != 1 else f"{length}"
    rule = f"an int or a sequence of {lengths} ints"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values: tuple[int, ...] = (int(value),) * length
    elif _is_sequence(value):
        values = tuple(integer(function, argument, v) for v in value)
        if broadcast_one and len(values) == 1:
            values *= length
        if len(values) != length:
            raise ValueError(f"{function}: `{argument}` must be {rule}, got {value!r}.")
    else:
        raise TypeError(f"{function}: `{argument}` must be {rule}, got {describe(value)}.")
    if minimum is not None and any(v < minimum for v in values):
        raise ValueError(
            f"{function}: every entry of `{argument}` must be >= {minimum}, got {value!r}."
        )
    return values


def sizes(function: str, argument: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
    """An int or a non-empty sequence of ints, each ``>= minimum``: spatial sizes.

    >>> sizes("f", "input_size", 5)
    (5,)

    Raises:
      TypeError: if ``value`` is neither an int nor a sequence of ints.
      ValueError: on an empty sequence or an entry below ``minimum``.
    """
    value = static(function, argument, value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values: tuple[int, ...] = (int(value),)
    elif _is_sequence(value):
        values = tuple(integer(function, argument, v) for v in value)
    else:
        raise TypeError(
            f"{function}: `{argument}` must be a sequence of ints, got {describe(value)}."
        )
    if not values or any(v < minimum for v in values):
        raise ValueError(
            f"{function}: `{argument}` must hold one size >= {minimum} per spatial dimension, "
            f"got {values}."
        )
    return values


def _is_sequence(value: Any) -> bool:
    """A list, tuple or 1-d NumPy array (not a string)."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return True
    return type(value).__name__ == "ndarray" and getattr(value, "ndim", None) == 1


def boolean(function: str, argument: str, value: Any) -> bool:
    """``True`` or ``False`` (NumPy booleans too).

    Raises:
      TypeError: on anything else.
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{function}: `{argument}` must be True or False, got {describe(value)}.")


def one_of(function: str, argument: str, value: Any, choices: Iterable[T]) -> T:
    """``value`` if it is one of ``choices``.

    Raises:
      ValueError: otherwise, listing the choices.
    """
    choices = tuple(choices)
    try:
        if value in choices:
            return value
    except TypeError:  # unhashable or incomparable
        pass
    raise ValueError(f"{function}: `{argument}` must be one of {choices}, got {value!r}.")


def optional_name(function: str, argument: str, value: Any) -> str | None:
    """``None`` or a non-empty string.

    Raises:
      TypeError: on anything else.
    """
    if value is None or (isinstance(value, str) and value):
        return value
    raise TypeError(
        f"{function}: `{argument}` must be a non-empty string or None, got {describe(value)}."
    )


def array_data(function: str, argument: str, value: Any) -> Any:
    """``value`` as a NumPy or JAX array, converting only what is neither.

    JAX and NumPy arrays pass through (so a NumPy array stays on the host); a
    PyTorch tensor becomes a NumPy array (:func:`torch_to_numpy`); anything
    else goes through ``np.asarray``.

    Raises:
      TypeError: for ``None`` and anything that is not numeric array data
        (strings, objects, ragged nests).
    """
    import jax
    import numpy as np

    if isinstance(value, jax.Array):
        return value
    if value is None or isinstance(value, str | bytes):
        raise TypeError(f"{function}: `{argument}` must be an array, got {describe(value)}.")
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return torch_to_numpy(value)
    if hasattr(value, "__jax_array__"):
        return value.__jax_array__()
    try:
        converted = np.asarray(value)
        if converted.dtype.kind not in "biufcV":  # V: ml_dtypes' bfloat16 and friends
            raise TypeError(f"dtype {converted.dtype} is not numeric")
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{function}: `{argument}` must be an array, got {type(value).__name__}: {error}"
        ) from None
    return converted


def array(function: str, argument: str, value: Any) -> jax.Array:
    """``value`` as a JAX array: arrays pass through, array-likes are converted.

    Raises:
      TypeError: for ``None`` and anything that is not numeric array data
        (strings, objects, ragged nests).
    """
    import jax
    import jax.numpy as jnp

    if isinstance(value, jax.Array):
        return value
    return jnp.asarray(array_data(function, argument, value))


def torch_to_numpy(tensor: Any) -> Any:
    """A PyTorch tensor as a NumPy array (``bfloat16`` as ``ml_dtypes.bfloat16``)."""
    tensor = tensor.detach().cpu()
    if str(tensor.dtype) == "torch.bfloat16":
        import jax.numpy as jnp
        import torch

        return tensor.view(torch.int16).numpy().view(jnp.bfloat16)
    return tensor.numpy()


def floating_array(function: str, argument: str, value: Any) -> jax.Array:
    """An array of a floating-point dtype (float16, bfloat16, float32, float64).

    Raises:
      TypeError: if ``value`` is not an array, or its dtype is not floating.
    """
    import jax.numpy as jnp

    result = array(function, argument, value)
    if not jnp.issubdtype(result.dtype, jnp.floating):
        raise TypeError(
            f"{function}: `{argument}` must have a floating-point dtype (float16, bfloat16, "
            f"float32 or float64), got {result.dtype}."
        )
    return result


def floating_dtype(function: str, argument: str, value: Any, *, optional: bool) -> Any:
    """A floating-point dtype (``None`` too where ``optional``), as a NumPy dtype.

    Raises:
      TypeError: if ``value`` is not a dtype, or not a floating-point one.
    """
    import jax.numpy as jnp

    if value is None and optional:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        dtype = None
    if value is None or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        allowed = "None or " if optional else ""
        received = describe(value) if value is None or dtype is None else str(dtype)
        raise TypeError(
            f"{function}: `{argument}` must be {allowed}a floating-point dtype (float16, "
            f"bfloat16, float32 or float64), got {received}."
        )
    return dtype


def precision(function: str, argument: str, value: Any) -> Any:
    """A precision that ``jax.lax`` accepts, in a hashable form.

    That is ``None``; a ``jax.lax.Precision`` or its name (``"default"``,
    ``"high"``, ``"highest"``, ``"bfloat16"``, ``"tensorfloat32"``,
    ``"float32"``, ``"fastest"``); a pair of those, one per operand; a
    ``jax.lax.DotAlgorithmPreset`` or its name; or a ``jax.lax.DotAlgorithm``.

    >>> precision("f", "precision", ["highest", "default"])
    (Precision.HIGHEST, Precision.DEFAULT)

    Raises:
      ValueError: on anything else.
    """
    from jax import lax

    def one(entry: Any) -> Any:
        if isinstance(entry, lax.Precision):
            return entry
        if isinstance(entry, str):
            try:
                return lax.Precision(entry)
            except ValueError:
                pass
        raise ValueError

    try:
        if value is None or isinstance(value, lax.DotAlgorithm | lax.DotAlgorithmPreset):
            return value
        if isinstance(value, str) and value in lax.DotAlgorithmPreset.__members__:
            return lax.DotAlgorithmPreset[value]
        if isinstance(value, list | tuple) and len(value) == 2:
            return (one(value[0]), one(value[1]))
        return one(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"{function}: `{argument}` must be None, a jax.lax.Precision or its name "
            f"('default', 'high', 'highest'), a pair of those, or a jax.lax.DotAlgorithm "
            f"or DotAlgorithmPreset, got {describe(value)}."
        ) from None
