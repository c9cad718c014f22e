"""Differentiation rules: three mutually adjoint bilinear maps.

For fixed geometry, the transposed convolution ``T(x, w)``, the forward
convolution ``F(g, w)`` and the kernel gradient ``K(x, g)`` are three ways of
contracting the same trilinear form ``<g, T(x, w)>``:

    <g, T(x, w)> = <F(g, w), x> = <K(x, g), w>

so each one's vector-Jacobian product is made of the other two. Each is a
``jax.custom_vjp`` whose backward pass calls the others, which makes
derivatives of every order use the lowering's own kernels. This matters on two
counts: XLA's automatic transposes of ``lhs_dilation`` convolutions are slow on
CPU, and some of them (stride and dilation both above 1) abort the process in
XLA's algebraic simplifier.

Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) is not available
through a ``custom_vjp``; reverse mode of any order is.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jdeconv._lowerings import ConvConfig


def _promote(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    dtype = jnp.promote_types(a.dtype, b.dtype)
    return a.astype(dtype), b.astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def transpose_conv(x: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """``T(x, w)``: the transposed convolution."""
    return config.lowering.transpose_conv(*_promote(x, w), config)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def forward_conv(g: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """``F(g, w)``: the forward convolution, adjoint of ``T`` in ``x``."""
    return config.lowering.forward_conv(*_promote(g, w), config)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def kernel_grad(x: jax.Array, g: jax.Array, config: ConvConfig) -> jax.Array:
    """``K(x, g)``: the kernel gradient, adjoint of ``T`` in ``w``."""
    return config.lowering.kernel_grad(*_promote(x, g), config)


def _save_operands(function):
    def fwd(a, b, config):
        return function(a, b, config), (a, b)

    return fwd


def _transpose_conv_bwd(config, residuals, cotangent):
    x, w = residuals
    return (
        forward_conv(cotangent, w, config).astype(x.dtype),
        kernel_grad(x, cotangent, config).astype(w.dtype),
    )


def _forward_conv_bwd(config, residuals, cotangent):
    g, w = residuals
    return (
        transpose_conv(cotangent, w, config).astype(g.dtype),
        kernel_grad(cotangent, g, config).astype(w.dtype),
    )


def _kernel_grad_bwd(config, residuals, cotangent):
    x, g = residuals
    return (
        forward_conv(g, cotangent, config).astype(x.dtype),
        transpose_conv(x, cotangent, config).astype(g.dtype),
    )


transpose_conv.defvjp(_save_operands(transpose_conv), _transpose_conv_bwd)
forward_conv.defvjp(_save_operands(forward_conv), _forward_conv_bwd)
kernel_grad.defvjp(_save_operands(kernel_grad), _kernel_grad_bwd)


def apply(x: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """``T(x, w)`` on any mesh: plain arrays, ``jit`` with shardings, ``shard_map``.

    Two adjustments make the custom VJPs above valid where JAX tracks how
    values are distributed:

    * inside ``jax.shard_map``, ``x`` and ``w`` are first made to vary over
      the same manual mesh axes, as JAX's own primitives do, so that the
      gradient of a replicated kernel comes back replicated (summed over the
      devices by the transpose of that cast) rather than per device;
    * on a mesh with explicit axes (sharding in types, ``jax.set_mesh``), the
      op is partitioned by XLA (``jax.sharding.auto_axes``), and its result
      gets the batch and spatial sharding of ``x`` and the output-channel
      sharding of ``w``.
    """
    x, w = _match_varying_axes(x, w)
    out_spec = _explicit_output_spec(x, w, config)
    if out_spec is None:
        return transpose_conv(x, w, config)

    def partitioned_by_xla(x: jax.Array, w: jax.Array) -> jax.Array:
        return transpose_conv(x, w, config)

    return jax.sharding.auto_axes(partitioned_by_xla, out_sharding=out_spec)(x, w)


def _varying_axes(a: jax.Array) -> frozenset[str]:
    """The manual mesh axes ``a`` varies over (empty outside ``shard_map``)."""
    manual = getattr(jax.typeof(a), "mat", None)
    return frozenset(manual.varying) if manual is not None else frozenset()


def _match_varying_axes(x: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    x_axes, w_axes = _varying_axes(x), _varying_axes(w)
    union = x_axes | w_axes
    if x_axes != union:
        x = jax.lax.pcast(x, tuple(sorted(union - x_axes)), to="varying")
    if w_axes != union:
        w = jax.lax.pcast(w, tuple(sorted(union - w_axes)), to="varying")
    return x, w


def _explicit_output_spec(
    x: jax.Array, w: jax.Array, config: ConvConfig
) -> jax.sharding.PartitionSpec | None:
    """The result's sharding on a mesh with explicit axes, else ``None``.

    A spatial axis keeps ``x``'s sharding only where the output size divides
    evenly over its devices; the channel axis takes the sharding of the
    filters' output-channel axis (ungrouped only).
    """
    mesh = getattr(getattr(jax.typeof(x), "sharding", None), "mesh", None)
    if mesh is None or mesh.empty or jax.sharding.AxisType.Explicit not in mesh.axis_types:
        return None
    geometry = config.geometry
    n = geometry.num_spatial

    def full_spec(a: jax.Array) -> list:
        spec = tuple(jax.typeof(a).sharding.spec)
        return list(spec) + [None] * (a.ndim - len(spec))

    def device_count(entry: str | tuple[str, ...]) -> int:
        names = entry if isinstance(entry, tuple) else (entry,)
        return math.prod(mesh.shape[name] for name in names)

    spec = full_spec(x)
    spatial_axes = range(1, n + 1) if geometry.channels_last else range(2, n + 2)
    for axis, size in zip(spatial_axes, geometry.output_size):
        if spec[axis] is not None and size % device_count(spec[axis]):
            spec[axis] = None
    channel_axis = n + 1 if geometry.channels_last else 1
    spec[channel_axis] = full_spec(w)[n] if geometry.groups == 1 else None
    return jax.sharding.PartitionSpec(*spec)
