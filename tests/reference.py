"""A float64 NumPy transposed convolution written from the definition.

It shares no code with jdeconv. For each input position ``j`` and kernel tap
``t`` it scatters ``x[j] @ w[t]`` to output position ``j * s + t * d - p``,
where ``p`` is the forward convolution's padding before the signal, computed
here from TensorFlow's documented rule.
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
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    if not channels_last:
        x = np.moveaxis(x, 1, -1)
    batch, *input_size, in_channels = x.shape
    *kernel_size, out_per_group, _ = w.shape
    in_per_group = in_channels // groups
    pads = [
        tf_padding_before(i, o, k, s, d, padding if isinstance(padding, str) else padding[n])
        for n, (i, o, k, s, d) in enumerate(
            zip(input_size, output_size, kernel_size, strides, dilations)
        )
    ]
    y = np.zeros((batch, *output_size, out_per_group * groups))
    for j in itertools.product(*map(range, input_size)):
        for t in itertools.product(*map(range, kernel_size)):
            o = tuple(
                jj * s + tt * d - p for jj, tt, s, d, p in zip(j, t, strides, dilations, pads)
            )
            if not all(0 <= oo < size for oo, size in zip(o, output_size)):
                continue
            for g in range(groups):
                xin = x[(slice(None), *j, slice(g * in_per_group, (g + 1) * in_per_group))]
                tap = w[(*t, slice(None), slice(g * in_per_group, (g + 1) * in_per_group))]
                y[(slice(None), *o, slice(g * out_per_group, (g + 1) * out_per_group))] += (
                    xin @ tap.T
                )
    if not channels_last:
        y = np.moveaxis(y, -1, 1)
    return y
