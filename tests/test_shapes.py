"""The pure-Python shape rules, checked against TF's forward-size formula."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jdeconv import _shapes
from jdeconv._lowerings import _lhs_dilation


def tf_forward_output_size(o, k, s, d, padding):
    """TF's GetWindowedOutputSize: the size a forward conv maps ``o`` to."""
    k_eff = (k - 1) * d + 1
    if padding == "SAME":
        return -(-o // s)
    if padding == "VALID":
        return (o - k_eff) // s + 1 if o >= k_eff else None
    before, after = padding
    total = o + before + after
    return (total - k_eff) // s + 1 if total >= k_eff else None


GRID = list(
    itertools.product(
        range(1, 6),  # input size
        range(1, 5),  # kernel size
        range(1, 4),  # stride
        range(1, 4),  # dilation
        ["SAME", "VALID", (0, 0), (2, 1), (0, 3), (4, 4)],
    )
)


@pytest.mark.parametrize("i, k, s, d, padding", GRID[::7])
def test_accepted_sizes_are_those_a_forward_conv_maps_back(i, k, s, d, padding):
    accepted = set(_shapes.accepted_output_sizes(i, k, s, d, padding))
    brute = {o for o in range(0, 60) if tf_forward_output_size(o, k, s, d, padding) == i}
    assert accepted == brute


@pytest.mark.parametrize("i, k, s, d, padding", GRID[::5])
def test_forward_padding_reproduces_the_input_size(i, k, s, d, padding):
    for o in _shapes.accepted_output_sizes(i, k, s, d, padding):
        before, after = _shapes.forward_padding(i, o, k, s, d, padding)
        k_eff = (k - 1) * d + 1
        assert (o + before + after - k_eff) // s + 1 == i
        assert (o + before + after - k_eff) % s == 0  # exact: no slack left over
        if padding == "SAME":
            assert before == max(0, (i - 1) * s + k_eff - o) // 2
        elif padding == "VALID":
            assert before == 0
        else:
            assert before == padding[0]


def test_window_argument_spellings():
    norm = _shapes.normalize_window_argument
    assert norm("f", "strides", 2, 2, True) == (2, 2)
    assert norm("f", "strides", [3], 2, True) == (3, 3)
    assert norm("f", "strides", (2, 3), 2, True) == (2, 3)
    assert norm("f", "strides", [1, 2, 3, 1], 2, True) == (2, 3)
    assert norm("f", "strides", [1, 1, 2, 3], 2, False) == (2, 3)
    assert norm("f", "strides", np.array([1, 2, 3, 1]), 2, True) == (2, 3)
    assert norm("f", "strides", np.int64(2), 1, True) == (2,)
    assert norm("f", "dilations", None, 3, True) == (1, 1, 1)
    with pytest.raises(ValueError, match=r"^f: `strides` in its length-4 form must be 1"):
        norm("f", "strides", [1, 1, 2, 3], 2, True)
    with pytest.raises(TypeError, match=r"must hold integers, got bool True"):
        norm("f", "strides", [True, 2], 2, True)


def test_output_shape_spellings():
    norm = _shapes.normalize_output_shape
    assert norm("f", (2, 8, 9, 5), 2, True, 2, 5) == (8, 9)
    assert norm("f", (2, 5, 8, 9), 2, False, 2, 5) == (8, 9)
    assert norm("f", (8, 9), 2, True, 2, 5) == (8, 9)
    assert norm("f", [np.int32(8)], 1, True, 2, 5) == (8,)


def test_padding_spellings():
    norm = _shapes.normalize_padding
    assert norm("f", "SAME", 2, True) == "SAME"
    assert norm("f", [[0, 0], [1, 2], [3, 4], [0, 0]], 2, True) == ((1, 2), (3, 4))
    assert norm("f", ((0, 0), (0, 0), (1, 2), (3, 4)), 2, False) == ((1, 2), (3, 4))
    assert norm("f", np.array([[0, 0], [1, 2], [0, 0]]), 1, True) == ((1, 2),)


def test_data_format():
    assert _shapes.normalize_data_format("f", None, 2) is True
    assert _shapes.normalize_data_format("f", "NCDHW", 3) is False
    assert _shapes.normalize_data_format("f", "N0123C", 4) is True
    with pytest.raises(ValueError, match=r"must be 'N0123C' or 'NC0123'"):
        _shapes.normalize_data_format("f", "NHWC", 4)


def test_geometry_paddings():
    geometry = _shapes.make_geometry(
        "f",
        input_size=(4,),
        kernel_size=(3,),
        output_size=(8,),
        strides=(2,),
        dilations=(1,),
        padding="SAME",
        channels_last=True,
    )
    assert geometry.padding == ((0, 1),)
    assert _lhs_dilation.lhs_dilated_padding(geometry) == ((2, 1),)
    assert geometry.effective_kernel_size == (3,)
