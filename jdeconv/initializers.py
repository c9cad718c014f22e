"""Keras' weight initializers as Flax initializers, plus ICNR.

Every factory here returns a Flax initializer: a callable
``init(key, shape, dtype=jnp.float32) -> jax.Array``, usable wherever Flax takes
one (``kernel_init`` of ``flax.linen.Dense``, for instance) and as the
``kernel_initializer`` / ``bias_initializer`` of jdeconv's layers. The layers
also take the Keras names (``"glorot_uniform"``, ``"he_normal"``, ...), which
:func:`get` resolves with Keras' default arguments.

Fans are computed as Keras computes them, from the shape as given
(:func:`compute_fans`). A transposed-convolution kernel has TensorFlow's layout
``[*kernel_size, filters, in_channels]``, so its ``fan_in`` is
``prod(kernel_size) * filters`` and its ``fan_out`` is
``prod(kernel_size) * in_channels``, exactly as for a Keras ``Conv2DTranspose``.

The random streams are JAX's, so values differ from Keras' for the same seed;
the distributions are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jdeconv import _keras_names, _shapes

Initializer = Callable[..., jax.Array]

__all__ = [
    "Initializer",
    "compute_fans",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "icnr",
    "lecun_normal",
    "lecun_uniform",
    "ones",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "zeros",
]

# Standard deviation of a unit normal truncated to [-2, 2].
_TRUNCATED_NORMAL_STD = 0.87962566103423978
_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "normal", "uniform")


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape, as Keras computes them.

    A scalar has fans ``(1, 1)``, a vector of length ``n`` has ``(n, n)``, a
    matrix ``(a, b)`` has ``(a, b)``. A larger shape ``(*receptive, a, b)`` has
    ``(a * prod(receptive), b * prod(receptive))``.

    Example:
      >>> from jdeconv import initializers
      >>> initializers.compute_fans((4, 4, 64, 32))  # [kh, kw, filters, in]
      (1024, 512)
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def variance_scaling(
    scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal"
) -> Initializer:
    """Keras' ``VarianceScaling``: variance ``scale / fan``.

    Args:
      scale: positive scaling factor.
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``; ``fan`` is at least 1.
      distribution: ``"truncated_normal"`` (a normal truncated at two standard
        deviations, rescaled so that its standard deviation is
        ``sqrt(scale / fan)``), ``"untruncated_normal"`` (``"normal"`` is an
        alias) or ``"uniform"`` (on ``[-limit, limit]``,
        ``limit = sqrt(3 * scale / fan)``).

    Returns:
      A Flax initializer.

    Raises:
      ValueError: on a non-positive ``scale`` or an unknown ``mode`` or
        ``distribution``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> init = initializers.variance_scaling(2.0, "fan_in", "uniform")
      >>> init(jax.random.key(0), (3, 3, 16, 8)).shape
      (3, 3, 16, 8)
    """
    if not isinstance(scale, int | float) or isinstance(scale, bool) or scale <= 0:
        raise ValueError(f"variance_scaling: `scale` must be a positive number, got {scale!r}.")
    if mode not in _MODES:
        raise ValueError(f"variance_scaling: `mode` must be one of {_MODES}, got {mode!r}.")
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(
            f"variance_scaling: `distribution` must be one of {_DISTRIBUTIONS}, "
            f"got {distribution!r}."
        )

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1.0, fan)
        if distribution == "truncated_normal":
            stddev = math.sqrt(variance) / _TRUNCATED_NORMAL_STD
            return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * jnp.asarray(
                stddev, dtype
            )
        if distribution in ("untruncated_normal", "normal"):
            return jax.random.normal(key, shape, dtype) * jnp.asarray(math.sqrt(variance), dtype)
        limit = math.sqrt(3.0 * variance)
        return jax.random.uniform(key, shape, dtype, -limit, limit)

    return init


def glorot_uniform() -> Initializer:
    """Keras' ``GlorotUniform``: uniform, variance ``1 / fan_avg``.

    The default kernel initializer of ``tf.compat.v1.layers.conv2d_transpose``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.glorot_uniform()(jax.random.key(0), (4, 4, 8, 3)).dtype
      dtype('float32')
    """
    return variance_scaling(1.0, "fan_avg", "uniform")


def glorot_normal() -> Initializer:
    """Keras' ``GlorotNormal``: truncated normal, variance ``1 / fan_avg``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.glorot_normal()(jax.random.key(0), (4, 4, 8, 3)).shape
      (4, 4, 8, 3)
    """
    return variance_scaling(1.0, "fan_avg", "truncated_normal")


def he_normal() -> Initializer:
    """Keras' ``HeNormal``: truncated normal, variance ``2 / fan_in``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.he_normal()(jax.random.key(0), (4, 4, 8, 3)).shape
      (4, 4, 8, 3)
    """
    return variance_scaling(2.0, "fan_in", "truncated_normal")


def he_uniform() -> Initializer:
    """Keras' ``HeUniform``: uniform, variance ``2 / fan_in``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.he_uniform()(jax.random.key(0), (4, 4, 8, 3)).shape
      (4, 4, 8, 3)
    """
    return variance_scaling(2.0, "fan_in", "uniform")


def lecun_normal() -> Initializer:
    """Keras' ``LecunNormal``: truncated normal, variance ``1 / fan_in``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.lecun_normal()(jax.random.key(0), (4, 4, 8, 3)).shape
      (4, 4, 8, 3)
    """
    return variance_scaling(1.0, "fan_in", "truncated_normal")


def lecun_uniform() -> Initializer:
    """Keras' ``LecunUniform``: uniform, variance ``1 / fan_in``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.lecun_uniform()(jax.random.key(0), (4, 4, 8, 3)).shape
      (4, 4, 8, 3)
    """
    return variance_scaling(1.0, "fan_in", "uniform")


def zeros() -> Initializer:
    """Keras' ``Zeros``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.zeros()(jax.random.key(0), (2,))
      Array([0., 0.], dtype=float32)
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        del key
        return jnp.zeros(shape, dtype)

    return init


def ones() -> Initializer:
    """Keras' ``Ones``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.ones()(jax.random.key(0), (2,))
      Array([1., 1.], dtype=float32)
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        del key
        return jnp.ones(shape, dtype)

    return init


def random_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """Keras' ``RandomNormal`` (defaults ``mean=0``, ``stddev=0.05``).

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> initializers.random_normal(stddev=0.02)(jax.random.key(0), (3, 3, 4, 2)).shape
      (3, 3, 4, 2)
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        return jax.random.normal(key, shape, dtype) * jnp.asarray(stddev, dtype) + jnp.asarray(
            mean, dtype
        )

    return init


def random_uniform(minval: float = -0.05, maxval: float = 0.05) -> Initializer:
    """Keras' ``RandomUniform`` on ``[minval, maxval)`` (defaults ``±0.05``).

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> w = initializers.random_uniform()(jax.random.key(0), (1000,))
      >>> bool(w.min() >= -0.05 and w.max() < 0.05)
      True
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval, maxval)

    return init


def truncated_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """Keras' ``TruncatedNormal``: a normal cut at two ``stddev`` from ``mean``.

    As in Keras, ``stddev`` is that of the normal before truncation (defaults
    ``mean=0``, ``stddev=0.05``).

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> w = initializers.truncated_normal()(jax.random.key(0), (1000,))
      >>> bool(abs(w).max() <= 0.1)
      True
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * jnp.asarray(
            stddev, dtype
        ) + jnp.asarray(mean, dtype)

    return init


def orthogonal(gain: float = 1.0) -> Initializer:
    """Keras' ``Orthogonal``: a random orthogonal matrix, scaled by ``gain``.

    The shape is flattened to ``(prod(shape[:-1]), shape[-1])`` as in Keras: for
    a transposed-convolution kernel the columns are the input channels.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdeconv import initializers
      >>> w = initializers.orthogonal()(jax.random.key(0), (3, 3, 8, 4)).reshape(-1, 4)
      >>> bool(jnp.allclose(w.T @ w, jnp.eye(4), atol=1e-5))
      True
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(
                f"orthogonal: the shape to initialize must have at least 2 dimensions, got {shape}."
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        compute_dtype = jnp.promote_types(dtype, jnp.float32)
        a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), compute_dtype)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diagonal(r))
        if rows < cols:
            q = q.T
        return (gain * q.reshape(shape)).astype(dtype)

    return init


def icnr(strides: int | Sequence[int], base: str | Initializer | None = None) -> Initializer:
    """ICNR: a kernel whose stride phases are equal, for checkerboard-free upsampling.

    ICNR (Aitken et al., 2017, "Checkerboard artifact free sub-pixel
    convolution") initialises an upsampling layer so that it starts as
    nearest-neighbour upsampling of an ordinary convolution. For a transposed
    convolution with stride ``s`` the output position ``o`` receives the taps
    ``t`` with ``t = (o + p) mod s`` (modulo ``s``), one *phase* of the kernel
    per residue. This initializer draws a base kernel of spatial size
    ``k // s`` (with ``base``, whose fans are those of that smaller kernel) and
    repeats every tap ``s`` times along each spatial axis, so that all ``s**N``
    phases hold the same weights. Taps past ``(k // s) * s`` (when ``k`` is not
    a multiple of ``s``) are zero, so that every phase has the same number of
    taps. Then ``y[o] = z[(o + p) // s]`` for the stride-1 transposed
    convolution ``z`` of the input with the base kernel: every output is
    repeated ``s`` times, the output of a constant input is constant away from
    the borders, and there is no checkerboard pattern at initialisation.

    Layers given ``kernel_initializer="icnr"`` build this initializer with their
    own ``strides`` and glorot-uniform ``base``. It assumes a dilation rate of 1.

    Args:
      strides: the layer's strides: an int, or one int per spatial dimension.
      base: the initializer of the base kernel: a Keras name or a Flax
        initializer; ``None`` means glorot uniform.

    Returns:
      A Flax initializer for kernels ``[*kernel_size, filters, in_channels]``.

    Raises:
      ValueError: (when called) if the kernel has fewer spatial dimensions than
        ``strides`` gives, or a kernel size is smaller than its stride.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> w = initializers.icnr(2)(jax.random.key(0), (4, 4, 8, 3))
      >>> bool((w[0::2] == w[1::2]).all() and (w[:, 0::2] == w[:, 1::2]).all())
      True
    """
    base_init = get(
        base if base is not None else "glorot_uniform", function="icnr", argument="base"
    )

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        shape = tuple(shape)
        num_spatial = len(shape) - 2
        if num_spatial < 1:
            raise ValueError(
                f"icnr: the kernel must be [*kernel_size, filters, in_channels] with "
                f"at least one spatial dimension, got shape {shape}."
            )
        steps = _shapes.normalize_window_argument("icnr", "strides", strides, num_spatial, True)
        kernel_size = shape[:-2]
        if any(k < s for k, s in zip(kernel_size, steps, strict=True)):
            raise ValueError(
                f"icnr: every kernel size must be at least its stride, got kernel "
                f"size {kernel_size} and strides {steps}."
            )
        sub = tuple(k // s for k, s in zip(kernel_size, steps, strict=True))
        w = base_init(key, (*sub, *shape[-2:]), dtype)
        for axis, (k, s) in enumerate(zip(kernel_size, steps, strict=True)):
            w = jnp.repeat(w, s, axis=axis)
            pad = [(0, 0)] * len(shape)
            pad[axis] = (0, k - w.shape[axis])
            w = jnp.pad(w, pad)
        return w

    return init


_FACTORIES: dict[str, Callable[[], Initializer]] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "zeros": zeros,
    "ones": ones,
    "orthogonal": orthogonal,
    "random_normal": random_normal,
    "random_uniform": random_uniform,
    "truncated_normal": truncated_normal,
    "variance_scaling": variance_scaling,
}
# Keras also accepts its class names.
_KERAS_CLASS_NAMES: dict[str, Callable[[], Initializer]] = {
    "GlorotUniform": glorot_uniform,
    "GlorotNormal": glorot_normal,
    "HeNormal": he_normal,
    "HeUniform": he_uniform,
    "LecunNormal": lecun_normal,
    "LecunUniform": lecun_uniform,
    "Zeros": zeros,
    "Ones": ones,
    "Orthogonal": orthogonal,
    "RandomNormal": random_normal,
    "RandomUniform": random_uniform,
    "TruncatedNormal": truncated_normal,
    "VarianceScaling": variance_scaling,
}

NAMES: tuple[str, ...] = (*_FACTORIES, "icnr")
_LOOKUP = {**_FACTORIES, **_KERAS_CLASS_NAMES}


def get(
    identifier: str | Initializer,
    *,
    strides: int | Sequence[int] | None = None,
    function: str = "initializers.get",
    argument: str = "identifier",
) -> Initializer:
    """Resolves a Keras initializer name, or passes a Flax initializer through.

    Args:
      identifier: a name in :data:`NAMES` (or a Keras class name such as
        ``"GlorotUniform"``), built with Keras' default arguments; or a callable
        ``init(key, shape, dtype)``.
      strides: the layer's strides; needed by ``"icnr"`` only.
      function: the public function resolving the name, for error messages.
      argument: the argument holding the name, for error messages.

    Returns:
      A Flax initializer.

    Raises:
      TypeError: if ``identifier`` is neither a string nor callable.
      ValueError: on an unknown name, or ``"icnr"`` without ``strides``.

    Example:
      >>> import jax
      >>> from jdeconv import initializers
      >>> init = initializers.get("he_normal")
      >>> init(jax.random.key(0), (3, 3, 4, 2)).shape
      (3, 3, 4, 2)
    """
    if isinstance(identifier, str) and identifier == "icnr":
        if strides is None:
            raise ValueError(
                f"{function}: `{argument}`='icnr' needs the layer's strides; "
                f"use jdeconv.initializers.icnr(strides) instead."
            )
        return icnr(strides)
    return _keras_names.resolve(
        identifier,
        _LOOKUP,
        function=function,
        argument=argument,
        name_rule=f"a Flax initializer or one of {NAMES}",
        type_rule=f"a Flax initializer (a callable init(key, shape, dtype)) or a name in {NAMES}",
    )
