"""Keras' rules for transposed convolutions: padding names, ``output_padding``, output size.

The layers (:mod:`jdeconv._layers._config`) and the Keras converters of
:mod:`jdeconv.convert` check their arguments and compute their output sizes
here, with one message per rule. Notation, per spatial dimension: ``I`` input
size, ``k`` kernel size, ``s`` stride, ``d`` dilation, ``k_eff = (k - 1) * d +
1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jdeconv import _shapes


def padding(function: str, argument: str, value: Any) -> str:
    """Keras' ``"same"`` or ``"valid"`` (any case) as TensorFlow's ``"SAME"`` or ``"VALID"``.

    Example:
      >>> padding("f", "padding", "same")
      'SAME'
    """
    if not isinstance(value, str) or value.lower() not in ("same", "valid"):
        raise ValueError(f"{function}: `{argument}` must be 'same' or 'valid', got {value!r}.")
    return value.upper()


def check_output_padding(
    function: str, output_padding: Sequence[int] | None, strides: Sequence[int]
) -> None:
    """Keras' rule: every ``output_padding`` lies in ``[0, stride)``."""
    if output_padding is not None and any(
        not 0 <= p < s for p, s in zip(output_padding, strides, strict=True)
    ):
        raise ValueError(
            f"{function}: every `output_padding` must be >= 0 and smaller than its stride, "
            f"got output_padding={tuple(output_padding)} and strides={tuple(strides)}."
        )


def output_length(
    input_size: int,
    kernel_size: int,
    stride: int,
    dilation: int,
    padding: str,
    output_padding: int | None = None,
) -> int:
    """Keras' ``deconv_output_length`` for ``"SAME"`` and ``"VALID"``, one dimension.

    Without ``output_padding``, ``SAME`` gives ``I * s`` and ``VALID`` gives
    ``I * s + max(k_eff - s, 0)``. With it, the size is ``(I - 1) * s + k_eff
    - 2 * pad + output_padding``, where ``pad`` is ``k_eff // 2`` for ``SAME``
    and 0 for ``VALID``. Not checked against the sizes TensorFlow accepts
    (:func:`output_size` does that).

    Example:
      >>> output_length(4, 3, 2, 1, "SAME"), output_length(4, 3, 2, 1, "VALID")
      (8, 9)
      >>> output_length(4, 3, 2, 1, "SAME", output_padding=0)
      7

    Raises:
      ValueError: if ``padding`` is neither ``"SAME"`` nor ``"VALID"``.
    """
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"output_length: `padding` must be 'SAME' or 'VALID', got {padding!r}.")
    k_eff = _shapes.effective_kernel_size(kernel_size, dilation)
    if output_padding is None:
        if padding == "SAME":
            return input_size * stride
        return input_size * stride + max(k_eff - stride, 0)
    pad = k_eff // 2 if padding == "SAME" else 0
    return (input_size - 1) * stride + k_eff - 2 * pad + output_padding


def output_size(
    function: str,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    padding: str,
    output_padding: Sequence[int] | None,
) -> tuple[int, ...]:
    """Keras' output size, checked against the sizes TensorFlow's op accepts.

    Args:
      function: the jdeconv function, for messages.
      input_size: the input's spatial sizes.
      kernel_size: one per spatial dimension.
      strides: one per spatial dimension.
      dilations: one per spatial dimension.
      padding: ``"SAME"`` or ``"VALID"``.
      output_padding: one per spatial dimension, or ``None`` (Keras' default).

    Raises:
      ValueError: where ``output_padding`` gives a size TensorFlow refuses.

    Example:
      >>> output_size("f", (4, 4), (3, 3), (2, 2), (1, 1), "VALID", (1, 1))
      (10, 10)
    """
    extras: Sequence[int | None] = output_padding or (None,) * len(input_size)
    sizes = []
    for dim, (i, k, s, d, extra) in enumerate(
        zip(input_size, kernel_size, strides, dilations, extras, strict=True)
    ):
        size = output_length(i, k, s, d, padding, extra)
        accepted = _shapes.accepted_output_sizes(i, k, s, d, padding)
        if size not in accepted:
            shown = None if output_padding is None else tuple(output_padding)
            raise ValueError(
                f"{function}: output_padding={shown} gives output size {size} in spatial "
                f"dimension {dim}, which a {padding!r} transposed convolution cannot produce "
                f"from input size {i} with kernel size {k}, stride {s} and dilation {d}: the "
                f"accepted sizes are [{accepted.start}, {accepted.stop - 1}]."
            )
        sizes.append(size)
    return tuple(sizes)
