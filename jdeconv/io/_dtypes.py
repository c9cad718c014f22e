"""The dtype policy: how a source array becomes a target variable's dtype.

* Floating-point weights are cast to the target's floating-point (or complex)
  dtype. A finite value that the target dtype cannot hold (``1e300`` into
  ``float32``) is an error; rounding to fewer digits is not.
* Integer, bool and complex weights are an error, unless ``allow_cast``:
  then they are cast if every value survives (an integer too large for
  ``float16`` does not; a complex value needs a zero imaginary part to become
  real; a value cast to an integer or bool target must come back unchanged).
* Strings, bytes and Python objects never become weights.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


class DtypeError(Exception):
    """Why a source array cannot take the target's dtype."""


def family(dtype: Any) -> str:
    """``"float"``, ``"complex"``, ``"int"``, ``"bool"`` or ``"other"``.

    Example:
      >>> family(jnp.bfloat16), family(np.uint8), family(np.dtype("U3"))
      ('float', 'int', 'other')
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "bool"
    for name, kind in (("float", jnp.floating), ("complex", jnp.complexfloating)):
        if jnp.issubdtype(dtype, kind):
            return name
    if jnp.issubdtype(dtype, jnp.integer):
        return "int"
    return "other"


def cast(array: np.ndarray, dtype: Any, *, allow_cast: bool) -> np.ndarray:
    """``array`` as ``dtype``, following the policy in the module doc.

    Raises:
      DtypeError: saying why not.

    Example:
      >>> cast(np.array([1.5, -2.0]), np.float32, allow_cast=False).dtype
      dtype('float32')
    """
    source, target = family(array.dtype), family(dtype)
    if source == "other":
        raise DtypeError(f"its dtype {array.dtype} is not numeric, so it cannot be a weight")
    if target == "other":
        raise DtypeError(f"the target's dtype {np.dtype(dtype)} is not numeric")
    plain = source == target or (source == "float" and target == "complex")
    if not plain and not allow_cast:
        raise DtypeError(
            f"its dtype is {array.dtype}, and the target's is {np.dtype(dtype)}: jdeconv "
            f"does not convert {source} weights silently; pass allow_cast=True to convert "
            f"it"
        )
    if source == "complex" and target != "complex":
        if np.any(np.imag(array)):
            raise DtypeError(
                f"its dtype is {array.dtype} with nonzero imaginary parts, which the "
                f"target's {np.dtype(dtype)} cannot hold"
            )
        array = np.real(array)
    with np.errstate(all="ignore"):
        result = array.astype(dtype)
        if target in ("int", "bool"):
            changed = result.astype(array.dtype) != array
        else:
            changed = np.isfinite(array) & ~np.isfinite(result)
    if np.any(changed):
        value = np.asarray(array)[changed].flat[0].item()
        raise DtypeError(
            f"its value {value!r} does not fit the target's dtype {np.dtype(dtype)}"
            + (f" (largest {_largest(dtype)})" if target in ("float", "complex") else "")
        )
    return result


def _largest(dtype: Any) -> str:
    """The largest finite value of a floating-point dtype, to 6 digits."""
    return format(float(jnp.finfo(dtype).max), ".6g")
