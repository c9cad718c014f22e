"""A float64 NumPy transposed convolution written from the definition.

It shares no code with jdeconv. For each input position ``j`` and kernel tap
``t`` it scatters ``x[j] @ w[t]`` to output position ``j * s + t * d - p``,
where ``p`` is the forward convolution's padding before the signal, computed
here from TensorFlow's documented rule. Its two adjoints, the input gradient
and the kernel gradient, are written from the same sum: each product that
the scatter-add makes is also made, and only those.
"""

from __future__ import annotations

import itertools

import numpy as np


def tf_padding_before(input_size, output_size, kernel_size, stride, dilation, padding):
    """TensorFlow's padding before the signal, for one spatial dimension."""
    k_eff = (kernel_size - 1) * dilation + 1
    if padding == "SAME":
        return max(0, (input_size - 1) * stride + k_eff - output_size) // 2
    if padding == "VALID":
        return 0
    return padding[0]


def _taps(x, w, output_size, strides, dilations, padding, groups, channels_last):
    """Every ``(j, t, o, g)``: input position, tap, output position and group it feeds.

    Also returns ``x`` channels-last in float64, ``w`` in float64 and the
    channel counts per group.
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    if not channels_last:
        x = np.moveaxis(x, 1, -1)
    _, *input_size, in_channels = x.shape
    *kernel_size, out_per_group, _ = w.shape
    in_per_group = in_channels // groups
    pads = [
        tf_padding_before(i, o, k, s, d, padding if isinstance(padding, str) else padding[n])
        for n, (i, o, k, s, d) in enumerate(
            zip(input_size, output_size, kernel_size, strides, dilations)
        )
    ]
    taps = []
    for j in itertools.product(*map(range, input_size)):
        for t in itertools.product(*map(range, kernel_size)):
            o = tuple(
                jj * s + tt * d - p for jj, tt, s, d, p in zip(j, t, strides, dilations, pads)
            )
            if all(0 <= oo < size for oo, size in zip(o, output_size)):
                taps.append((j, t, o))
    return x, w, taps, in_per_group, out_per_group


def _channels(g, per_group):
    return slice(g * per_group, (g + 1) * per_group)


def conv_transpose(x, w, output_size, strides, dilations, padding, *, groups=1, channels_last=True):
    """Transposed convolution by scatter-add, in float64.

    Args:
      x: ``(B, *I, C_in)`` (or channels-first).
      w: ``[*k, C_out / groups, C_in]``.
      output_size: spatial output sizes.
      strides, dilations: one int per spatial dimension.
      padding: ``"SAME"``, ``"VALID"`` or spatial ``(before, after)`` pairs.
      groups: feature groups.
      channels_last: layout of ``x`` and of the result.
    """
    x, w, taps, in_per_group, out_per_group = _taps(
        x, w, output_size, strides, dilations, padding, groups, channels_last
    )
    y = np.zeros((x.shape[0], *output_size, out_per_group * groups))
    for j, t, o in taps:
        for g in range(groups):
            xin = x[(slice(None), *j, _channels(g, in_per_group))]
            tap = w[(*t, slice(None), _channels(g, in_per_group))]
            y[(slice(None), *o, _channels(g, out_per_group))] += xin @ tap.T
    return y if channels_last else np.moveaxis(y, -1, 1)


def forward_conv(
    g_out, w, input_size, strides, dilations, padding, *, groups=1, channels_last=True
):
    """``F(g, w)``, the adjoint of :func:`conv_transpose` in ``x``, by gathering, in float64.

    ``dx[j] += g[j * s + t * d - p] @ w[t]`` over the taps that land inside the output.
    """
    g_out = np.asarray(g_out, np.float64)
    if not channels_last:
        g_out = np.moveaxis(g_out, 1, -1)
    batch, *output_size, _ = g_out.shape
    in_channels = np.shape(w)[-1]
    x_shape = (batch, *input_size, in_channels)
    _, w, taps, in_per_group, out_per_group = _taps(
        np.zeros(x_shape), w, output_size, strides, dilations, padding, groups, True
    )
    dx = np.zeros(x_shape)
    for j, t, o in taps:
        for g in range(groups):
            gout = g_out[(slice(None), *o, _channels(g, out_per_group))]
            tap = w[(*t, slice(None), _channels(g, in_per_group))]
            dx[(slice(None), *j, _channels(g, in_per_group))] += gout @ tap
    return dx if channels_last else np.moveaxis(dx, -1, 1)


def kernel_grad(
    x, g_out, kernel_size, strides, dilations, padding, *, groups=1, channels_last=True
):
    """``K(x, g)``, the adjoint of :func:`conv_transpose` in ``w``, in float64.

    ``dw[t] += g[j * s + t * d - p]^T x[j]``, summed over the batch and the
    positions that land inside the output.
    """
    g_out = np.asarray(g_out, np.float64)
    if not channels_last:
        g_out = np.moveaxis(g_out, 1, -1)
    _, *output_size, out_channels = g_out.shape
    in_channels = np.shape(x)[-1] if channels_last else np.shape(x)[1]
    out_per_group = out_channels // groups
    w_shape = (*kernel_size, out_per_group, in_channels)
    x, _, taps, in_per_group, _ = _taps(
        x, np.zeros(w_shape), output_size, strides, dilations, padding, groups, channels_last
    )
    dw = np.zeros(w_shape)
    for j, t, o in taps:
        for g in range(groups):
            gout = g_out[(slice(None), *o, _channels(g, out_per_group))]
            xin = x[(slice(None), *j, _channels(g, in_per_group))]
            dw[(*t, slice(None), _channels(g, in_per_group))] += gout.T @ xin
    return dw
