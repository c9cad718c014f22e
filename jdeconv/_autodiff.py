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
