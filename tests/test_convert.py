"""``jdeconv.convert``: round trips, and each source framework as the oracle.

For every convention the numerical test runs the source framework's own
transposed convolution (PyTorch, ``flax.linen.ConvTranspose``,
``jax.lax.conv_transpose``, Keras 3) and jdeconv with the converted kernel and
arguments, on the same random input and asymmetric kernel.
"""

from __future__ import annotations

import random

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeconv import convert

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape)


# --------------------------------------------------------------------------
# Kernel round trips


LAX_DIMENSION_NUMBERS = [
    None,
    ("NCHW", "OIHW", "NCHW"),
    ("NHWC", "HWOI", "NHWC"),
    ("NCHW", "IOHW", "NCHW"),
    ("NHWC", "WHIO", "NHWC"),  # Kernel spatial axes in the other order.
]


@pytest.mark.parametrize("rank", [3, 4, 5])
def test_kernel_round_trips(rank):
    kernel = randn(*range(2, 2 + rank))
    pairs = [
        (convert.kernel_from_torch, convert.kernel_to_torch),
        (convert.kernel_from_keras, convert.kernel_to_keras),
        *(
            (
                lambda k, t=t: convert.kernel_from_flax(k, t),
                lambda w, t=t: convert.kernel_to_flax(w, t),
            )
            for t in (False, True)
        ),
        *(
            (
                lambda k, t=t: convert.kernel_from_lax(k, None, t),
                lambda w, t=t: convert.kernel_to_lax(w, None, t),
            )
            for t in (False, True)
        ),
    ]
    for to_jdeconv, back in pairs:
        np.testing.assert_array_equal(back(to_jdeconv(kernel)), kernel)
        np.testing.assert_array_equal(to_jdeconv(back(kernel)), kernel)


@pytest.mark.parametrize("dimension_numbers", LAX_DIMENSION_NUMBERS)
@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_lax_kernel_round_trips(dimension_numbers, transpose_kernel):
    kernel = randn(2, 3, 4, 5)
    filters = convert.kernel_from_lax(kernel, dimension_numbers, transpose_kernel)
    np.testing.assert_array_equal(
        convert.kernel_to_lax(filters, dimension_numbers, transpose_kernel), kernel
    )


def test_torch_kernel_layout_and_array_types(torch):
    weight = randn(6, 2, 3, 5)  # (in, out / groups, kh, kw)
    filters = convert.kernel_from_torch(weight)
    assert isinstance(filters, np.ndarray)
    assert filters.shape == (3, 5, 2, 6)
    assert filters[1, 4, 0, 5] == weight[5, 0, 1, 4]  # No flip.
    # JAX arrays stay JAX arrays (also under jit); torch tensors become NumPy.
    jitted = jax.jit(convert.kernel_from_torch)(jnp.asarray(weight))
    assert isinstance(jitted, jax.Array)
    np.testing.assert_array_equal(jitted, filters)
    tensor = torch.tensor(weight, requires_grad=True)
    np.testing.assert_array_equal(convert.kernel_from_torch(tensor), filters)
    half = torch.tensor(weight, dtype=torch.bfloat16)
    converted = convert.kernel_from_torch(half)
    assert converted.dtype == jnp.bfloat16
    np.testing.assert_array_equal(
        converted.astype(np.float32), half.float().numpy().transpose(2, 3, 1, 0)
    )


def test_flax_kernel_flip():
    kernel = randn(3, 2, 4, 5)  # (kh, kw, in, out), transpose_kernel=False
    filters = convert.kernel_from_flax(kernel)
    assert filters.shape == (3, 2, 5, 4)
    assert filters[0, 0, 1, 2] == kernel[2, 1, 2, 1]  # Flipped in space, axes swapped.
    assert convert.kernel_from_flax(kernel, transpose_kernel=True) is kernel


# --------------------------------------------------------------------------
# Padding round trips


def random_torch_arguments(rng, n):
    while True:
        kernel = tuple(rng.randint(1, 5) for _ in range(n))
        stride = tuple(rng.randint(1, 4) for _ in range(n))
        dilation = tuple(rng.randint(1, 3) for _ in range(n))
        padding = tuple(rng.randint(0, 4) for _ in range(n))
        output_padding = tuple(
            rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation, strict=True)
        )
        input_size = tuple(rng.randint(1, 6) for _ in range(n))
        sizes = [
            (i - 1) * s - 2 * p + d * (k - 1) + op + 1
            for i, s, p, d, k, op in zip(
                input_size, stride, padding, dilation, kernel, output_padding, strict=True
            )
        ]
        if min(sizes) >= 1:
            return input_size, kernel, stride, padding, output_padding, dilation, tuple(sizes)


def test_torch_padding_round_trips():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(1, 3)
        input_size, kernel, stride, padding, output_padding, dilation, sizes = (
            random_torch_arguments(rng, n)
        )
        args = convert.padding_from_torch(
            input_size, kernel, stride, padding, output_padding, dilation
        )
        assert args.full_output_size == sizes
        assert convert.padding_to_torch(args, input_size, kernel) == (padding, output_padding)
        # PyTorch's padding is jdeconv's explicit padding wherever TF's rule allows.
        if all(op < s for op, s in zip(output_padding, stride, strict=True)):
            assert args.padding == tuple((p, p) for p in padding)
            assert args.output_size == sizes


def test_lax_padding_round_trips():
    rng = random.Random(2)
    for _ in range(300):
        n = rng.randint(1, 3)
        kernel = tuple(rng.randint(1, 4) for _ in range(n))
        strides = tuple(rng.randint(1, 3) for _ in range(n))
        dilation = tuple(rng.randint(1, 3) for _ in range(n))
        input_size = tuple(rng.randint(1, 5) for _ in range(n))
        consistent = rng.random() < 0.5
        pads = tuple((rng.randint(-2, 6), rng.randint(-2, 6)) for _ in range(n))
        shape_in, shape_k = (1, *input_size, 2), (*kernel, 2, 3)
        try:
            args = convert.padding_from_lax(
                shape_in, shape_k, strides, pads, dilation, None, consistent
            )
        except ValueError as error:  # Pads that leave no output at all.
            assert "must be >= 1" in str(error) or "outside the kernel's reach" in str(error)
            continue
        assert convert.padding_to_lax(args, input_size, kernel, consistent) == pads
        for mode in ("SAME", "VALID"):
            args = convert.padding_from_lax(shape_in, shape_k, strides, mode, dilation)
            assert args.padding == mode
            assert convert.padding_to_lax(args, input_size, kernel) == mode


def test_flax_and_keras_padding_round_trips():
    for padding in ("SAME", "VALID"):
        args = convert.padding_from_flax(padding, (5, 4), (3, 4), (2, 3), (1, 2))
        assert convert.padding_to_flax(args, (5, 4), (3, 4)) == padding
    args = convert.padding_from_flax(2, (5,), 4, 2)
    assert convert.padding_to_flax(args, (5,), (4,)) == ((2, 2),)
    args = convert.padding_from_flax([1, (0, 3)], (5, 5), (3, 3), 2)
    assert convert.padding_to_flax(args, (5, 5), (3, 3)) == ((1, 1), (0, 3))
    for padding in ("same", "valid"):
        for output_padding in (None, 0, 1):
            if padding == "same" and output_padding == 0:
                continue  # (I - 1) * s + k % 2 + 0 is below TF's SAME range for even k...
            args = convert.padding_from_keras(padding, (4, 3), (3, 5), 2, 1, output_padding)
            expected = None if output_padding is None else (output_padding,) * 2
            back = convert.padding_to_keras(args, (4, 3), (3, 5))
            if (
                expected is not None
                and args.output_size
                == convert.padding_from_keras(padding, (4, 3), (3, 5), 2).output_size
            ):
                expected = None  # ...and the default may coincide.
            assert back == (padding, expected)


def test_args_helpers():
    args = convert.padding_from_torch((4, 4), 3, stride=2, padding=1, output_padding=1)
    assert args.op_padding("NHWC") == [(0, 0), (1, 1), (1, 1), (0, 0)]
    assert args.op_padding("NCHW") == [(0, 0), (0, 0), (1, 1), (1, 1)]
    assert args.forward_padding((4, 4), (3, 3)) == ((1, 0), (1, 0))
    beyond = convert.padding_from_torch((4,), 3, stride=1, padding=0, output_padding=2, dilation=3)
    assert beyond.output_zero_padding == ((0, 2),)
    assert beyond.forward_padding((4,), (3,)) == ((0, -2),)


# --------------------------------------------------------------------------
# Numerics against each framework


def test_torch_numerics_channels_last(torch):
    rng = random.Random(3)
    for index in range(6):
        n = rng.randint(1, 3)
        input_size, kernel, stride, padding, output_padding, dilation, _ = random_torch_arguments(
            rng, n
        )
        groups = rng.choice((1, 2))
        x = randn(2, 2 * groups, *input_size)
        w = randn(2 * groups, 2, *kernel)
        op = getattr(torch.nn.functional, f"conv_transpose{n}d")
        expected = op(
            torch.tensor(x),
            torch.tensor(w),
            None,
            stride,
            padding,
            output_padding,
            groups,
            dilation,
        ).numpy()
        args = convert.padding_from_torch(
            input_size, kernel, stride, padding, output_padding, dilation
        )
        # Channels-last input: the same arguments, the default data_format.
        y = args(np.moveaxis(x, 1, -1), convert.kernel_from_torch(w), groups=groups)
        np.testing.assert_allclose(
            np.moveaxis(np.asarray(y), -1, 1), expected, rtol=1e-10, atol=1e-10, err_msg=str(index)
        )


FLAX_PADDINGS = ["SAME", "VALID", 0, 2, [(0, 3)], [(4, 1)], [(-1, 2)], [(6, 6)]]


def flax_cases():
    rng = random.Random(4)
    out = []
    for index in range(10):
        n = 2 if index < 6 else rng.choice((1, 3))
        padding = FLAX_PADDINGS[index % len(FLAX_PADDINGS)]
        if isinstance(padding, list):
            padding = padding * n
        out.append(
            dict(
                n=n,
                kernel_size=tuple(rng.randint(1, 4) for _ in range(n)),
                strides=tuple(rng.randint(1, 3) for _ in range(n)),
                kernel_dilation=tuple(rng.randint(1, 2) for _ in range(n)),
                padding=padding,
                transpose_kernel=index % 2 == 1,
                input_size=tuple(rng.randint(2, 5) for _ in range(n)),
            )
        )
    return out


@pytest.mark.parametrize(
    "case", flax_cases(), ids=lambda c: f"{c['n']}d-{c['padding']}-t{c['transpose_kernel']}"
)
def test_flax_numerics(case):
    layer = nn.ConvTranspose(
        features=3,
        kernel_size=case["kernel_size"],
        strides=case["strides"],
        padding=case["padding"],
        kernel_dilation=case["kernel_dilation"],
        transpose_kernel=case["transpose_kernel"],
        use_bias=False,
    )
    x = randn(2, *case["input_size"], 2)
    channels = (3, 2) if case["transpose_kernel"] else (2, 3)  # (*k, in, out) or (*k, out, in)
    variables = {"params": {"kernel": randn(*case["kernel_size"], *channels)}}
    try:
        expected = layer.apply(variables, x)
    except (ValueError, TypeError):
        pytest.skip("flax itself refuses these arguments")
    if 0 in expected.shape:  # lax's output is empty; jdeconv refuses such padding.
        with pytest.raises(ValueError, match="must be >= 1"):
            convert.padding_from_flax(
                case["padding"],
                case["input_size"],
                case["kernel_size"],
                case["strides"],
                case["kernel_dilation"],
            )
        return
    args = convert.padding_from_flax(
        case["padding"],
        case["input_size"],
        case["kernel_size"],
        case["strides"],
        case["kernel_dilation"],
    )
    y = args(x, convert.kernel_from_flax(variables["params"]["kernel"], case["transpose_kernel"]))
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


def check_lax(dimension_numbers, transpose_kernel, padding, use_consistent_padding):
    lhs_spec, rhs_spec, _ = dimension_numbers or ("NHWC", "HWIO", "NHWC")
    sizes = dict(N=2, C=3, H=4, W=5)
    # The kernel's O axis is the output's channels, or with transpose_kernel the input's.
    kernel_sizes = dict(O=3, I=4, H=3, W=2) if transpose_kernel else dict(O=4, I=3, H=3, W=2)
    x = randn(*(sizes[c] for c in lhs_spec))
    kernel = randn(*(kernel_sizes[c] for c in rhs_spec))
    strides, dilation = (2, 3), (2, 1)
    expected = jax.lax.conv_transpose(
        x,
        kernel,
        strides,
        padding,
        dilation,
        dimension_numbers,
        transpose_kernel,
        use_consistent_padding=use_consistent_padding,
    )
    args = convert.padding_from_lax(
        x.shape, kernel.shape, strides, padding, dilation, dimension_numbers, use_consistent_padding
    )
    filters = convert.kernel_from_lax(kernel, dimension_numbers, transpose_kernel)
    data_format = "NCHW" if lhs_spec == "NCHW" else "NHWC"
    y = args(x, filters, data_format=data_format)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dimension_numbers", LAX_DIMENSION_NUMBERS, ids=str)
@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_lax_numerics(dimension_numbers, transpose_kernel):
    check_lax(dimension_numbers, transpose_kernel, ((1, 3), (2, 0)), False)
    check_lax(dimension_numbers, transpose_kernel, "SAME", False)


@pytest.mark.parametrize(
    ("padding", "use_consistent_padding"),
    [
        ("VALID", False),
        ("SAME", True),
        ("VALID", True),
        (((0, 0), (5, -1)), False),  # Beyond the kernel's reach and a crop.
        (((1, 3), (2, 0)), True),
        (((0, 4), (3, 1)), True),
    ],
    ids=str,
)
def test_lax_paddings(padding, use_consistent_padding):
    check_lax(None, False, padding, use_consistent_padding)


@pytest.mark.parametrize("n", [1, 3])
def test_lax_numerics_default_layouts(n):
    x = randn(2, *(4,) * n, 3)
    kernel = randn(*(3,) * n, 3, 2)
    strides = (2,) * n
    for padding in ("SAME", "VALID", ((1, 2),) * n):
        expected = jax.lax.conv_transpose(x, kernel, strides, padding)
        args = convert.padding_from_lax(x.shape, kernel.shape, strides, padding)
        np.testing.assert_allclose(
            args(x, convert.kernel_from_lax(kernel)), expected, rtol=1e-10, atol=1e-10
        )


KERAS_CASES = [
    (2, dict(filters=4, kernel_size=3, strides=2, padding="same")),
    (
        2,
        dict(filters=4, kernel_size=(4, 3), strides=(2, 3), padding="valid", output_padding=(1, 2)),
    ),
    (2, dict(filters=3, kernel_size=3, padding="same", dilation_rate=2)),
    (2, dict(filters=3, kernel_size=3, strides=3, padding="same", output_padding=1)),
    (1, dict(filters=2, kernel_size=5, strides=2, padding="valid")),
    (3, dict(filters=2, kernel_size=(2, 3, 2), strides=(1, 2, 2), padding="same")),
]


@pytest.mark.parametrize(("n", "config"), KERAS_CASES, ids=[str(c) for _, c in KERAS_CASES])
def test_keras_numerics(tf, n, config):
    keras = pytest.importorskip("keras")
    layer = getattr(keras.layers, f"Conv{n}DTranspose")(**config, use_bias=False)
    x = randn(2, *(4,) * n, 3).astype(np.float32)
    layer.build(x.shape)
    kernel = randn(*layer.kernel.shape).astype(np.float32)
    layer.set_weights([kernel])
    # TF's own CPU kernel refuses dilations; its XLA path computes them.
    expected = np.asarray(tf.function(layer, jit_compile=True)(x))
    args = convert.padding_from_keras(
        config["padding"],
        x.shape[1:-1],
        config["kernel_size"],
        config.get("strides", 1),
        config.get("dilation_rate", 1),
        config.get("output_padding"),
    )
    y = args(x, convert.kernel_from_keras(kernel))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# Errors


ERRORS = {
    "circular": (
        lambda: convert.padding_from_flax("CIRCULAR", (5,), 3, 2),
        ValueError,
        "padding_from_flax: padding 'CIRCULAR' is not supported: flax computes it as a "
        "'VALID' transposed convolution whose output is then wrapped around periodically "
        "(summed modulo input size * stride), which is not a padding of a forward "
        "convolution. Port such a layer as padding='VALID' followed by that periodic sum.",
    ),
    "lower case": (
        lambda: convert.padding_from_flax("same", (5,), 3, 2),
        ValueError,
        "padding_from_flax: `padding` must be 'SAME', 'VALID' or (low, high) pairs, got "
        "'same' (flax and jax.lax.conv_transpose refuse lower-case padding strings for "
        "transposed convolutions).",
    ),
    "pairs": (
        lambda: convert.padding_from_lax((1, 4, 4, 1), (3, 3, 1, 1), (1, 1), [(1, 1)]),
        ValueError,
        "padding_from_lax: `padding` must be 2 (low, high) pairs, one per spatial dimension, "
        "got [(1, 1)].",
    ),
    "kernel rank": (
        lambda: convert.kernel_from_torch(np.zeros((3, 3))),
        ValueError,
        "kernel_from_torch: `weight` must have at least 3 dimensions (in, out / groups, "
        "*kernel), got shape (3, 3).",
    ),
    "kernel array": (
        lambda: convert.kernel_from_flax(object()),
        TypeError,
        "kernel_from_flax: `kernel` must be an array, got object: dtype object is not numeric",
    ),
    "torch output padding": (
        lambda: convert.padding_from_torch((4,), 3, stride=2, output_padding=2),
        ValueError,
        "padding_from_torch: output padding must be smaller than either stride or dilation, "
        "but got output_padding_width: 2 stride_width: 2 dilation_width: 1",
    ),
    "torch too small": (
        lambda: convert.padding_from_torch((1,), 1, padding=1),
        ValueError,
        "padding_from_torch: Given input size per channel: (1). Calculated output size per "
        "channel: (-1). Output size is too small",
    ),
    "torch stride length": (
        lambda: convert.padding_from_torch((4, 4), 3, stride=(1, 2, 3)),
        ValueError,
        "padding_from_torch: expected stride to be a single integer value or a list of 2 "
        "values to match the convolution dimensions, but got stride=[1, 2, 3]",
    ),
    "torch kernel 0": (
        lambda: convert.padding_from_torch((4, 4), (3, 0)),
        ValueError,
        "padding_from_torch: kernel size should be greater than zero, but got "
        "kernel_height: 3 kernel_width: 0",
    ),
    "torch stride float": (
        lambda: convert.padding_from_torch((4,), 3, stride=1.5),
        TypeError,
        "padding_from_torch: `stride` must be an int or a sequence of 1 ints, got float 1.5.",
    ),
    "input size 0": (
        lambda: convert.padding_from_torch((4, 0), 3),
        ValueError,
        "padding_from_torch: `input_size` must hold one size >= 1 per spatial dimension, "
        "got (4, 0).",
    ),
    "input size kind": (
        lambda: convert.padding_from_keras("same", "44", 3),
        TypeError,
        "padding_from_keras: `input_size` must be a sequence of ints, got str '44'.",
    ),
    "keras output padding": (
        lambda: convert.padding_from_keras("same", (4,), 3, strides=2, output_padding=2),
        ValueError,
        "padding_from_keras: every `output_padding` must be >= 0 and smaller than its stride, "
        "got output_padding=(2,) and strides=(2,).",
    ),
    "keras output size": (
        lambda: convert.padding_from_keras("same", (4,), 4, strides=2, output_padding=0),
        ValueError,
        "padding_from_keras: output_padding=(0,) gives output size 6 in spatial dimension 0, "
        "which a 'SAME' transposed convolution cannot produce from input size 4 with kernel "
        "size 4, stride 2 and dilation 1: the accepted sizes are [7, 8].",
    ),
    "keras padding": (
        lambda: convert.padding_from_keras("full", (4,), 3),
        ValueError,
        "padding_from_keras: `padding` must be 'same' or 'valid', got 'full'.",
    ),
    "flax kernel length": (
        lambda: convert.padding_from_flax("SAME", (4, 4), (3, 3, 3)),
        ValueError,
        "padding_from_flax: `kernel_size` must be an int or a sequence of 2 ints, got (3, 3, 3).",
    ),
    "lax shape": (
        lambda: convert.padding_from_lax((1, 4, 4.0, 1), (3, 3, 1, 1), (1, 1), "SAME"),
        TypeError,
        "padding_from_lax: `input_shape` must hold integers, got float 4.0.",
    ),
    "to keras": (
        lambda: convert.padding_to_keras(convert.padding_from_torch((4,), 3, 2, 1), (4,), (3,)),
        ValueError,
        "padding_to_keras: Keras's transposed convolutions only have 'same' and 'valid' "
        "padding, got explicit padding ((1, 1),).",
    ),
    "to torch": (
        lambda: convert.padding_to_torch(
            convert.padding_from_lax((1, 5, 1), (3, 1, 1), (1,), [(2, 0)]), (5,), (3,)
        ),
        ValueError,
        "padding_to_torch: PyTorch pads the forward convolution by `padding` on both sides "
        "and adds `output_padding` at the end, so it needs before >= after >= "
        "-output_padding and before >= 0; got forward padding ((0, 2),).",
    ),
    "dimension numbers": (
        lambda: convert.kernel_from_lax(np.zeros((3, 3, 1, 1)), ("NHWC", "HWXY", "NHWC")),
        ValueError,
        "kernel_from_lax: bad `dimension_numbers`: convolution dimension_numbers[1] must "
        "contain the characters 'O' and 'I' exactly once, got HWXY.",
    ),
    "call filters": (
        lambda: convert.padding_from_torch((4,), 3)(np.ones((1, 4, 2)), None),
        TypeError,
        "ConvTransposeArgs: `filters` must be an array, got NoneType None.",
    ),
    "call groups": (
        lambda: convert.padding_from_torch((4,), 3)(
            np.ones((1, 4, 2)), np.ones((3, 5, 2)), groups=3
        ),
        ValueError,
        "ConvTransposeArgs: `groups` must divide the 2 input channels, got 3.",
    ),
    "call input size": (
        lambda: convert.padding_from_torch((4,), 3)(np.ones((1, 5, 2)), np.ones((3, 5, 2))),
        ValueError,
        "ConvTransposeArgs: output size 6 in dimension 0 (width) does not fit input size 5 "
        "with kernel size 3, stride 1, dilation 1 and padding (0, 0): the accepted range is "
        "[7, 7].",
    ),
    "op_padding layout": (
        lambda: convert.padding_from_torch((4,), 3, padding=1).op_padding("NHWC"),
        ValueError,
        "ConvTransposeArgs.op_padding: `data_format` must be 'NWC' or 'NCW' for 1 spatial "
        "dimension(s), got 'NHWC'.",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value) == message
