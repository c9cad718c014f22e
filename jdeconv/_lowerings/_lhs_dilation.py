"""The reference lowering: one ``conv_general_dilated`` with ``lhs_dilation``.

The transposed convolution is a stride-1 convolution of the stride-dilated
input with the spatially flipped kernel, in and out channels swapped. XLA maps
this to cuDNN's backward-data kernels on GPU and to native code on TPU.

Its two adjoints are written out explicitly rather than left to autodiff (see
:mod:`jdeconv._primitives`):

* the input gradient is the forward strided, dilated convolution;
* the kernel gradient is a convolution that contracts over the batch, with
  window strides equal to the dilation and kernel dilation equal to the stride,
  the shape of TensorFlow's ``Conv2DBackpropFilter``.
"""

from __future__ import annotations

import jax

from jdeconv._lowerings import _common, _xla_workarounds
from jdeconv._lowerings._interface import ConvConfig


def transpose_conv(x: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    geometry = config.geometry
    n = geometry.num_spatial
    kernel = _common.flip_spatial(_common.transposed_kernel(w, geometry.groups), n)
    act = _common.activation_spec(geometry)
    return _xla_workarounds.conv_general_dilated(
        x,
        kernel,
        window_strides=(1,) * n,
        padding=geometry.lhs_dilated_padding,
        lhs_dilation=geometry.strides,
        rhs_dilation=geometry.dilations,
        dimension_numbers=_common.dimension_numbers(
            act, _common.kernel_spec(geometry, out_axis=n + 1, in_axis=n), act
        ),
        feature_group_count=geometry.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )


def forward_conv(g: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    geometry = config.geometry
    n = geometry.num_spatial
    act = _common.activation_spec(geometry)
    return _xla_workarounds.conv_general_dilated(
        g,
        w,
        window_strides=geometry.strides,
        padding=geometry.padding,
        rhs_dilation=geometry.dilations,
        dimension_numbers=_common.dimension_numbers(
            act, _common.kernel_spec(geometry, out_axis=n + 1, in_axis=n), act
        ),
        feature_group_count=geometry.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )


def kernel_grad(x: jax.Array, g: jax.Array, config: ConvConfig) -> jax.Array:
    geometry = config.geometry
    n = geometry.num_spatial
    swapped = _common.swapped_activation_spec(geometry)
    return _xla_workarounds.conv_general_dilated(
        g,
        x,
        window_strides=geometry.dilations,
        padding=geometry.padding,
        rhs_dilation=geometry.strides,
        dimension_numbers=_common.dimension_numbers(swapped, swapped, (n, n + 1, *range(n))),
        batch_group_count=geometry.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )
