"""Every bad input gets a ValueError or TypeError that names the rule."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv

X = jnp.ones((2, 4, 4, 3))
W = jnp.ones((3, 3, 5, 3))
OUT = (2, 8, 8, 5)


def call(**overrides):
    kwargs = dict(
        input=X, filters=W, output_shape=OUT, strides=2, padding="SAME", data_format="NHWC"
    )
    kwargs.update(overrides)
    return jdeconv.conv2d_transpose(**kwargs)


BAD = [
    # (overrides, exception, message pattern)
    (
        dict(input=jnp.ones((4, 4, 3))),
        ValueError,
        r"`input` must have 4 dimensions, got shape \(4, 4, 3\)",
    ),
    (dict(filters=jnp.ones((3, 5, 3))), ValueError, r"`filters` must have 4 dimensions"),
    (
        dict(filters=jnp.ones((3, 3, 5, 2))),
        ValueError,
        r"`filters` have 2 input channels .* `input` has 3 channels",
    ),
    (dict(filters=jnp.ones((0, 3, 5, 3))), ValueError, r"`filters` spatial sizes must be >= 1"),
    (
        dict(input=jnp.ones((2, 4, 4, 3), jnp.int32), filters=jnp.ones((3, 3, 5, 3), jnp.int32)),
        TypeError,
        r"`input` must have a floating-point dtype \(float16, bfloat16, float32 or float64\), got int32\.$",
    ),
    (
        dict(filters=jnp.ones((3, 3, 5, 3), jnp.int32)),
        TypeError,
        r"`filters` must have a floating-point dtype \(float16, bfloat16, float32 or float64\), got int32\.$",
    ),
    (dict(input=None), TypeError, r"`input` must be an array, got NoneType None\.$"),
    (dict(filters="w"), TypeError, r"`filters` must be an array, got str 'w'\.$"),
    (dict(input=[[1, 2], [3]]), TypeError, r"`input` must be an array, got list: "),
    (
        dict(input=np.array([["a"]])),
        TypeError,
        r"`input` must be an array, got ndarray: dtype <U1 is not numeric",
    ),
    (dict(name=5), TypeError, r"`name` must be a non-empty string or None, got int 5\.$"),
    (
        dict(method="fast"),
        ValueError,
        r"`method` must be None \(the default, 'auto'\) or one of \('auto', .*'autotune'\), got 'fast'\.$",
    ),
    (
        dict(precision="bogus"),
        ValueError,
        r"`precision` must be None, a jax.lax.Precision or its name .* got str 'bogus'\.$",
    ),
    (
        dict(preferred_element_type=jnp.int32),
        TypeError,
        r"`preferred_element_type` must be None or a floating-point dtype .* got int32\.$",
    ),
    (
        dict(
            input=X.astype(jnp.float32),
            filters=W.astype(jnp.float32),
            preferred_element_type=jnp.bfloat16,
        ),
        TypeError,
        r"`preferred_element_type` must not be narrower than the dtype of `input` and `filters` \(float32\), got bfloat16\.$",
    ),
    (
        dict(output_shape=None),
        TypeError,
        r"`output_shape` must be a sequence of sizes, got NoneType None\.$",
    ),
    (
        dict(data_format="NCW"),
        ValueError,
        r"`data_format` must be 'NHWC' or 'NCHW' for 2 spatial dimension\(s\), got 'NCW'",
    ),
    (dict(data_format=4), TypeError, r"`data_format` must be a string or None, got int 4"),
    (dict(strides=(1, 2, 3)), ValueError, r"`strides` must have length 1, 2 or 4, got \(1, 2, 3\)"),
    (
        dict(strides=(2, 2, 2, 1)),
        ValueError,
        r"`strides` in its length-4 form must be 1 on the batch and channel dimensions, got \(2, 2, 2, 1\)",
    ),
    (dict(strides=0), ValueError, r"every entry of `strides` must be >= 1, got \(0,\)"),
    (dict(strides=(2.0, 2)), TypeError, r"`strides` must hold integers, got float 2.0"),
    (dict(strides="2"), TypeError, r"`strides` must be an int or a sequence of ints, got str '2'"),
    (dict(dilations=(1, 0)), ValueError, r"every entry of `dilations` must be >= 1, got \(1, 0\)"),
    (dict(dilations=(1, 1, 1)), ValueError, r"`dilations` must have length 1, 2 or 4"),
    (
        dict(padding="same"),
        ValueError,
        r"`padding` must be 'SAME', 'VALID' or a list of \(before, after\) pairs, got 'same' \(TensorFlow spells it 'SAME'\)",
    ),
    (dict(padding="FULL"), ValueError, r"got 'FULL'\.$"),
    (
        dict(padding=3),
        TypeError,
        r"`padding` must be 'SAME', 'VALID' or a list of \(before, after\) pairs, got int 3",
    ),
    (
        dict(padding=[[0, 0], [1, 1], [1, 1]]),
        ValueError,
        r"explicit `padding` must be 4 \(before, after\) pairs",
    ),
    (
        dict(padding=[[1, 0], [1, 1], [1, 1], [0, 0]]),
        ValueError,
        r"explicit `padding` must be \(0, 0\) on the batch and channel dimensions",
    ),
    (
        dict(padding=[[0, 0], [-1, 1], [1, 1], [0, 0]]),
        ValueError,
        r"explicit `padding` must be >= 0",
    ),
    (
        dict(output_shape=(2, 8, 8)),
        ValueError,
        r"`output_shape` must have length 4 \(the full shape\) or 2 \(spatial sizes only\), got \(2, 8, 8\)",
    ),
    (
        dict(output_shape=(3, 8, 8, 5)),
        ValueError,
        r"`output_shape` has batch size 3, but `input` has batch size 2",
    ),
    (
        dict(output_shape=(2, 8, 8, 6)),
        ValueError,
        r"`output_shape` has 6 channels, but `filters` produce 5 output channels",
    ),
    (
        dict(output_shape=(2, 9, 8, 5)),
        ValueError,
        r"output size 9 in dimension 0 \(height\) does not fit input size 4 with kernel size 3, stride 2, dilation 1 and padding 'SAME': the accepted range is \[7, 8\]",
    ),
    (
        dict(output_shape=(8, 6)),
        ValueError,
        r"output size 6 in dimension 1 \(width\) .* accepted range is \[7, 8\]",
    ),
    (
        dict(output_shape=(8, 8), padding="VALID"),
        ValueError,
        r"output size 8 in dimension 0 \(height\) .* padding 'VALID': the accepted range is \[9, 10\]",
    ),
    (
        dict(output_shape=(9, 11), padding="VALID"),
        ValueError,
        r"output size 11 in dimension 1 .* the accepted range is \[9, 10\]",
    ),
    (
        dict(output_shape=(8, 8), padding=[[0, 0], [1, 1], [2, 2], [0, 0]]),
        ValueError,
        r"output size 8 in dimension 1 \(width\) .* padding \(2, 2\): the accepted range is \[5, 6\]",
    ),
    (dict(output_shape=(8.0, 8)), TypeError, r"`output_shape` must hold integers, got float 8.0"),
    (
        dict(output_shape=np.ones((2, 2), int)),
        ValueError,
        r"`output_shape` must be a 1-d sequence of sizes",
    ),
    (dict(output_shape=(-1, 8)), ValueError, r"`output_shape` sizes must be >= 0, got \(-1, 8\)"),
]


@pytest.mark.parametrize(
    "overrides, error, pattern", BAD, ids=[re.sub(r"\W+", "_", p[2])[:60] for p in BAD]
)
def test_bad_input(overrides, error, pattern):
    with pytest.raises(
        error, match=pattern if pattern.startswith("got") else "^conv2d_transpose: " + pattern
    ):
        call(**overrides)


def test_groups_errors():
    x = jnp.ones((1, 3, 3, 4))
    w = jnp.ones((2, 2, 3, 4))
    with pytest.raises(ValueError, match=r"`groups` must divide the 4 input channels, got 3\.$"):
        jdeconv.conv2d_transpose(x, w, (6, 6), 2, groups=3)
    with pytest.raises(ValueError, match=r"`groups` must be >= 1, got 0\.$"):
        jdeconv.conv2d_transpose(x, w, (6, 6), 2, groups=0)
    with pytest.raises(TypeError, match=r"`groups` must hold integers, got float 2.0\.$"):
        jdeconv.conv2d_transpose(x, w, (6, 6), 2, groups=2.0)
    with pytest.raises(ValueError, match=r"`output_shape` has 3 channels, but `filters` produce 6"):
        jdeconv.conv2d_transpose(x, w, (1, 6, 6, 3), 2, groups=2)


def test_unknown_method():
    with pytest.raises(
        ValueError,
        match=r"^conv2d_transpose: `method` must be None \(.*\) or one of \('auto', .*got 'fast'",
    ):
        call(method="fast")


def test_conv_transpose_rank_errors():
    with pytest.raises(
        ValueError, match=r"^conv_transpose: `input` must have at least 3 dimensions"
    ):
        jdeconv.conv_transpose(jnp.ones((2, 3)), jnp.ones((3, 2, 3)), (2, 5), 1)
    with pytest.raises(
        ValueError, match=r"^conv_transpose: `data_format` must be 'NDHWC' or 'NCDHW'"
    ):
        jdeconv.conv_transpose(
            jnp.ones((1, 2, 2, 2, 1)), jnp.ones((1, 1, 1, 1, 1)), (2, 2, 2), 1, data_format="NHWC"
        )


def test_1d_and_3d_name_themselves():
    with pytest.raises(
        ValueError, match=r"^conv1d_transpose: `data_format` must be 'NWC' or 'NCW'"
    ):
        jdeconv.conv1d_transpose(
            jnp.ones((1, 3, 2)), jnp.ones((2, 2, 2)), (6,), 2, data_format="NHWC"
        )
    with pytest.raises(
        ValueError, match=r"^conv3d_transpose: output size 5 in dimension 2 \(width\)"
    ):
        jdeconv.conv3d_transpose(jnp.ones((1, 2, 2, 2, 1)), jnp.ones((1, 1, 1, 1, 1)), (4, 4, 5), 2)


def test_traced_output_shape_is_a_type_error():
    @jax.jit
    def f(x, shape):
        return jdeconv.conv2d_transpose(x, W, shape, 2)

    with pytest.raises(TypeError, match=r"`output_shape` must be static, but it is a traced value"):
        f(X, jnp.array(OUT))
    with pytest.raises(TypeError, match=r"`output_shape` must be static"):
        jax.jit(lambda x, h: jdeconv.conv2d_transpose(x, W, (h, 8), 2))(X, 8)
