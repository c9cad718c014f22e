"""Convolutions in the shapes that XLA:CPU runs through its fast library.

XLA:CPU runs a 2-D, channels-last convolution without ``lhs_dilation`` or
``batch_group_count`` through a library kernel (YNNPACK, or Eigen's spatial
convolution where :mod:`._xla_workarounds` steers it there), and 1-D, 3-D,
lhs-dilated and batch-grouped convolutions through generic code, many times
slower. Its feature-grouped convolutions reach the library but
run slowly too. The helpers here compute such convolutions from fast parts:

* a 1-D problem gets a unit axis;
* a problem with more than two spatial axes unrolls the taps of its leading
  axes into the channels (a partial im2col, by strided slicing) and folds the
  leading axes into the batch;
* a grouped convolution becomes one batched matmul over explicit patches,
  and a depthwise one (one input channel per group) multiply-adds that XLA
  fuses into a single loop;
* the kernel gradient of a grouped convolution contracts over ``(group,
  batch)`` with ``feature_group_count`` rather than ``batch_group_count``.

Folding axes into the batch is free on one device, but XLA's partitioner can
keep a merged axis split over devices only by its major part: folding a
volume's depth into the batch makes a depth-split input move whole (an
all-gather), and the grouped kernel gradient's ``(group, batch)`` axis does
the same to a batch-split one. So where the operands may be split over
several devices (``config.partitioned``, see
:func:`jdeconv._primitives.partitioned`), :func:`conv` and :func:`filter_grad`
emit one native convolution over every spatial axis instead, which XLA
partitions along any axis with halo exchanges.

They take channels-last activations ``(N, *spatial, C)``; padding is given
per spatial axis as ``(before, after)`` and may be negative (a crop).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jdeconv._lowerings import _xla_workarounds
from jdeconv._lowerings._arrays import pad_axes
from jdeconv._lowerings._interface import ConvConfig

Pairs = Sequence[tuple[int, int]]


def _output_size(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Output size of a valid (already padded) strided, dilated window."""
    return max(0, (size - (kernel - 1) * dilation - 1) // stride + 1)


def _lead_taps(
    a: jax.Array,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> tuple[list[jax.Array], list[int]]:
    """Strided windows of the leading spatial axes of a padded ``a``, one per tap.

    ``kernel`` gives the window of the first ``len(kernel)`` spatial axes
    (all of them for a full im2col). Returns the windows, taps in row-major
    order, and the output sizes of those axes.
    """
    lead = len(kernel)
    sizes = [_output_size(a.shape[1 + i], kernel[i], strides[i], dilations[i]) for i in range(lead)]
    windows = []
    for tap in itertools.product(*map(range, kernel)):
        start = [0] * a.ndim
        limit = list(a.shape)
        step = [1] * a.ndim
        for i in range(lead):
            start[1 + i] = tap[i] * dilations[i]
            limit[1 + i] = start[1 + i] + max(sizes[i] - 1, 0) * strides[i] + (sizes[i] > 0)
            step[1 + i] = strides[i]
        windows.append(lax.slice(a, start, limit, step))
    return windows, sizes


def conv(
    lhs: jax.Array,
    rhs: jax.Array,
    *,
    strides: Sequence[int],
    padding: Pairs,
    dilations: Sequence[int],
    groups: int,
    config: ConvConfig,
) -> jax.Array:
    """Cross-correlation of ``(N, *S, C)`` with an ``[*k, C / groups, F]`` kernel.

    Returns ``(N, *S_out, F)``: ``lax.conv_general_dilated`` with
    ``window_strides=strides``, ``rhs_dilation=dilations`` and
    ``feature_group_count=groups``, computed as one 2-D convolution (as one
    convolution over every spatial axis where ``config.partitioned``).
    """
    n = lhs.ndim - 2
    if n == 1:
        out = conv(
            lhs[:, None],
            rhs[None],
            strides=(1, *strides),
            padding=((0, 0), *padding),
            dilations=(1, *dilations),
            groups=groups,
            config=config,
        )
        return out[:, 0]
    if groups > 1:
        return _grouped_conv_matmul(lhs, rhs, strides, padding, dilations, groups, config)
    if n == 2 or config.partitioned:
        spec = (0, n + 1, *range(1, n + 1))
        return _xla_workarounds.conv_general_dilated(
            lhs,
            rhs,
            window_strides=tuple(strides),
            padding=tuple(padding),
            rhs_dilation=tuple(dilations),
            dimension_numbers=lax.ConvDimensionNumbers(
                lhs_spec=spec, rhs_spec=(n + 1, n, *range(n)), out_spec=spec
            ),
            precision=config.precision,
            preferred_element_type=config.preferred_element_type,
            platform=config.platform,
        )
    lead = n - 2
    lhs = pad_axes(lhs, range(1, lead + 1), padding[:lead])
    windows, sizes = _lead_taps(lhs, rhs.shape[:lead], strides[:lead], dilations[:lead])
    batch, channels = lhs.shape[0], lhs.shape[-1]
    per_group = channels // groups
    taps = len(windows)
    # Channels ordered (group, tap, channel-in-group), as a grouped kernel needs.
    cols = jnp.stack([w.reshape(*w.shape[:-1], groups, per_group) for w in windows], axis=-2)
    cols = cols.reshape(batch * math.prod(sizes), *cols.shape[1 + lead : -3], channels * taps)
    kernel = rhs.reshape(taps, *rhs.shape[lead:])  # [U, kh, kw, C/G, F]
    kernel = jnp.moveaxis(kernel, 0, 2).reshape(*kernel.shape[1:3], taps * per_group, -1)
    out = conv(
        cols,
        kernel,
        strides=strides[lead:],
        padding=padding[lead:],
        dilations=dilations[lead:],
        groups=groups,
        config=config,
    )
    return out.reshape(batch, *sizes, *out.shape[1:])


def filter_grad(
    g: jax.Array,
    x: jax.Array,
    kernel_size: Sequence[int],
    *,
    strides: Sequence[int],
    padding: Pairs,
    dilations: Sequence[int],
    groups: int,
    config: ConvConfig,
) -> jax.Array:
    """Gradient of :func:`conv` with respect to its kernel (``Conv2DBackpropFilter``).

    With ``conv(g, w) -> x``-shaped, this is the adjoint in ``w``: for ``g`` of
    shape ``(N, *O, C)`` and ``x`` of shape ``(N, *I, F)`` it returns the
    ``[*kernel_size, C / groups, F]`` kernel

        dw[t, c, f] = sum over n, j of pad(g)[n, j * strides + t * dilations, c] * x[n, j, f]

    contracting over the batch and the positions.
    """
    n = g.ndim - 2
    if n == 1:
        out = filter_grad(
            g[:, None],
            x[:, None],
            (1, *kernel_size),
            strides=(1, *strides),
            padding=((0, 0), *padding),
            dilations=(1, *dilations),
            groups=groups,
            config=config,
        )
        return out[0]
    split = config.partitioned
    if n > 2 and not split:
        lead = n - 2
        g = pad_axes(g, range(1, lead + 1), padding[:lead])
        windows, _ = _lead_taps(g, kernel_size[:lead], strides[:lead], dilations[:lead])
        # Each window matches x's leading axes: fold them into the batch, which
        # the 2-D kernel gradient contracts over; stack the taps with channels.
        per_group = g.shape[-1] // groups
        cols = jnp.stack(
            [w.reshape(-1, *w.shape[1 + lead : -1], groups, per_group) for w in windows], axis=-2
        )  # (N * I_lead, H, W, G, U, C/G)
        cols = cols.reshape(*cols.shape[:-3], -1)
        folded = x.reshape(-1, *x.shape[1 + lead :])
        out = filter_grad(
            cols,
            folded,
            kernel_size[lead:],
            strides=strides[lead:],
            padding=padding[lead:],
            dilations=dilations[lead:],
            groups=groups,
            config=config,
        )  # [kh, kw, U * C/G, F]
        out = out.reshape(*out.shape[:2], *kernel_size[:lead], per_group, -1)
        return jnp.moveaxis(out, (0, 1), (lead, lead + 1))
    # The channels are the convolution's batch and the batch its feature axis.
    spec = (n + 1, 0, *range(1, n + 1))
    batch_groups = feature_groups = 1
    if groups > 1 and split:
        batch_groups = groups
    elif groups > 1:
        # Contract over (group, batch) as the grouped feature axis: a feature
        # grouped convolution, which runs fast where batch grouping does not.
        batch = g.shape[0]
        g = g.reshape(*g.shape[:-1], groups, -1)
        g = jnp.moveaxis(g, -2, 0).reshape(groups * batch, *g.shape[1:-2], -1)
        feature_groups = groups
    return _xla_workarounds.conv_general_dilated(
        g,
        x,
        window_strides=tuple(dilations),
        padding=tuple(padding),
        rhs_dilation=tuple(strides),
        dimension_numbers=lax.ConvDimensionNumbers(
            lhs_spec=spec, rhs_spec=spec, out_spec=(n, n + 1, *range(n))
        ),
        feature_group_count=feature_groups,
        batch_group_count=batch_groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
        platform=config.platform,
    )


def _grouped_conv_matmul(
    lhs: jax.Array,
    rhs: jax.Array,
    strides: Sequence[int],
    padding: Pairs,
    dilations: Sequence[int],
    groups: int,
    config: ConvConfig,
) -> jax.Array:
    """A grouped convolution as one batched matmul over explicit patches.

    XLA:CPU runs grouped convolutions far slower than ungrouped ones; a
    depthwise one (one input channel per group) becomes multiply-adds.
    """
    n = lhs.ndim - 2
    lhs = pad_axes(lhs, range(1, n + 1), padding)
    windows, sizes = _lead_taps(lhs, rhs.shape[:n], strides, dilations)
    batch, channels = lhs.shape[0], lhs.shape[-1]
    patches = [w.reshape(batch, *sizes, groups, channels // groups) for w in windows]
    taps, per_group, features = len(patches), rhs.shape[-2], rhs.shape[-1]
    weights = rhs.reshape(taps, per_group, groups, features // groups)
    if per_group == 1:
        # Depthwise: multiply-adds over the taps, which XLA fuses into one
        # loop; accumulated in at least float32, as the convolution would be.
        dtype = config.preferred_element_type or jnp.promote_types(lhs.dtype, rhs.dtype)
        accumulate = jnp.promote_types(dtype, jnp.float32)
        total = sum(
            patch.astype(accumulate) * weight[0].astype(accumulate)
            for patch, weight in zip(patches, weights)
        )
        return total.reshape(*total.shape[:-2], features).astype(dtype)
    cols = jnp.stack(patches, axis=n + 2)  # (N, *out, G, taps, C / G)
    out = lax.dot_general(
        cols,
        weights,
        (((n + 2, n + 3), (0, 1)), ((n + 1,), (2,))),
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )  # (G, N, *out, F / G)
    out = jnp.moveaxis(out, 0, -2)
    return out.reshape(*out.shape[:-2], features)
