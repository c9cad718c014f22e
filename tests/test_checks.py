"""The shared argument checkers: canonical values and whole messages."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeconv import _checks


@pytest.mark.parametrize(
    "value, length, broadcast_one, expected",
    [
        (3, 2, False, (3, 3)),
        ((1, 2), 2, False, (1, 2)),
        (np.array([4, 5]), 2, False, (4, 5)),
        ([2], 3, True, (2, 2, 2)),
        ((np.int64(2),), 1, True, (2,)),
    ],
)
def test_integer_tuple(value, length, broadcast_one, expected):
    assert _checks.integer_tuple("f", "arg", value, length, broadcast_one=broadcast_one) == expected


@pytest.mark.parametrize(
    "value, length, kwargs, error, message",
    [
        (
            (1, 2, 3),
            2,
            {},
            ValueError,
            "f: `arg` must be an int or a sequence of 2 ints, got (1, 2, 3).",
        ),
        ([2], 2, {}, ValueError, "f: `arg` must be an int or a sequence of 2 ints, got [2]."),
        (
            (1, 2, 3),
            2,
            dict(broadcast_one=True),
            ValueError,
            "f: `arg` must be an int or a sequence of 1 or 2 ints, got (1, 2, 3).",
        ),
        ("3", 2, {}, TypeError, "f: `arg` must be an int or a sequence of 2 ints, got str '3'."),
        ((1, 2.5), 2, {}, TypeError, "f: `arg` must hold integers, got float 2.5."),
        ((True, 1), 2, {}, TypeError, "f: `arg` must hold integers, got bool True."),
        (
            (1, 0),
            2,
            dict(minimum=1),
            ValueError,
            "f: every entry of `arg` must be >= 1, got (1, 0).",
        ),
    ],
)
def test_integer_tuple_errors(value, length, kwargs, error, message):
    with pytest.raises(error) as raised:
        _checks.integer_tuple("f", "arg", value, length, **kwargs)
    assert str(raised.value) == message


def test_sizes():
    assert _checks.sizes("f", "input_size", 5) == (5,)
    assert _checks.sizes("f", "input_size", np.array([3, 4])) == (3, 4)
    for value, error, message in [
        ((), ValueError, "f: `input_size` must hold one size >= 1 per spatial dimension, got ()."),
        (
            (3, 0),
            ValueError,
            "f: `input_size` must hold one size >= 1 per spatial dimension, got (3, 0).",
        ),
        (None, TypeError, "f: `input_size` must be a sequence of ints, got NoneType None."),
        ((3.0,), TypeError, "f: `input_size` must hold integers, got float 3.0."),
    ]:
        with pytest.raises(error) as raised:
            _checks.sizes("f", "input_size", value)
        assert str(raised.value) == message


def test_array_data_keeps_host_and_device_arrays_where_they_are():
    host = np.zeros((2, 3), np.float32)
    device = jnp.zeros((2, 3))
    assert _checks.array_data("f", "x", host) is host
    assert _checks.array_data("f", "x", device) is device
    converted = _checks.array_data("f", "x", [[1.0, 2.0]])
    assert isinstance(converted, np.ndarray) and converted.shape == (1, 2)
    assert isinstance(_checks.array("f", "x", host), jax.Array)


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "f: `x` must be an array, got NoneType None."),
        ("abc", "f: `x` must be an array, got str 'abc'."),
        (np.array(["a"]), "f: `x` must be an array, got ndarray: dtype <U1 is not numeric"),
        (object(), "f: `x` must be an array, got object: dtype object is not numeric"),
    ],
)
def test_array_data_errors(value, message):
    with pytest.raises(TypeError) as raised:
        _checks.array_data("f", "x", value)
    assert str(raised.value) == message


def test_torch_tensors_become_numpy_arrays(torch):
    tensor = torch.arange(6, dtype=torch.float32, requires_grad=True).reshape(2, 3)
    array = _checks.array_data("f", "x", tensor)
    assert isinstance(array, np.ndarray)
    np.testing.assert_array_equal(array, np.arange(6).reshape(2, 3))
    bf16 = _checks.array_data("f", "x", torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    assert bf16.dtype == jnp.bfloat16
    np.testing.assert_array_equal(bf16.astype(np.float32), [1.5, -2.0])


def test_floating_dtype_names_a_dtype_by_its_name():
    assert _checks.floating_dtype("f", "dtype", "bfloat16", optional=False) == jnp.bfloat16
    assert _checks.floating_dtype("f", "dtype", None, optional=True) is None
    with pytest.raises(TypeError) as raised:
        _checks.floating_dtype("f", "dtype", jnp.int32, optional=False)
    assert str(raised.value) == (
        "f: `dtype` must be a floating-point dtype (float16, bfloat16, float32 or float64), "
        "got int32."
    )
