"""The layers against TensorFlow's own layers and the float64 reference.

Each case feeds the same random kernel and bias to jdeconv's layer and to
``tf.compat.v1.layers.Conv{2,3}DTranspose`` (or ``tf_keras``'s
``Conv{1,2,3}DTranspose`` where ``output_padding`` or a dilation is set, or
for 1-d, which ``tf.compat.v1.layers`` lacks). TensorFlow runs under
``jit_compile=True``: its CPU kernel refuses channels-first and dilations.
Combinations Keras cannot express (stride and dilation both above 1, groups)
are checked against the NumPy reference.
"""

from __future__ import annotations

import random
import warnings

import cases
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference

import jdeconv

LAYERS = {1: jdeconv.Conv1DTranspose, 2: jdeconv.Conv2DTranspose, 3: jdeconv.Conv3DTranspose}
ACTIVATIONS = [None, "relu", "tanh", "sigmoid", "elu", "softplus", "gelu", "selu", "swish"]


def _sizes_ok(case):
    """Whether Keras' output size is one TensorFlow accepts (SAME + output_padding)."""
    if case["output_padding"] is None or case["padding"].upper() == "VALID":
        return True
    for i, k, s, d, p in zip(
        case["input_size"],
        case["kernel_size"],
        case["strides"],
        case["dilation_rate"],
        case["output_padding"],
        strict=True,
    ):
        k_eff = (k - 1) * d + 1
        size = (i - 1) * s + k_eff - 2 * (k_eff // 2) + p
        if not (i - 1) * s + 1 <= size <= i * s:
            return False
    return True


def _random_case(rng: random.Random):
    n = rng.choice([1, 2, 2, 2, 3])
    while True:
        case = {
            "num_spatial": n,
            "batch": rng.randint(1, 2),
            "in_channels": rng.randint(1, 4),
            "filters": rng.randint(1, 5),
            "input_size": tuple(rng.randint(1, 5 if n < 3 else 3) for _ in range(n)),
            "kernel_size": tuple(rng.randint(1, 4) for _ in range(n)),
            "padding": rng.choice(["same", "valid", "SAME", "Valid"]),
            "data_format": rng.choice(["channels_last", "channels_first"]),
            "activation": rng.choice(ACTIVATIONS),
            "use_bias": rng.random() < 0.75,
            "output_padding": None,
            "dilation_rate": (1,) * n,
            "strides": (1,) * n,
        }
        # Keras forbids stride > 1 together with dilation > 1; its 3-d layer
        # ignores dilation and its 2-d one needs equal dilations.
        if n < 3 and rng.random() < 0.3:
            case["dilation_rate"] = (rng.randint(2, 3),) * n
        else:
            case["strides"] = tuple(rng.randint(1, 3) for _ in range(n))
        if rng.random() < 0.35 and max(case["strides"]) > 1:
            case["output_padding"] = tuple(rng.randrange(s) for s in case["strides"])
        if _sizes_ok(case):
            return case


CASES = [_random_case(random.Random(seed)) for seed in range(60)]
DEFAULT = 10  # cases run by default; the rest are marked slow


def _case_id(case):
    return (
        f"{case['num_spatial']}d-k{case['kernel_size']}-s{case['strides']}"
        f"-d{case['dilation_rate']}-{case['padding']}-{case['data_format'][9:]}"
        f"-op{case['output_padding']}-{case['activation']}-bias{int(case['use_bias'])}"
    ).replace(" ", "")


def _tf_layer(tf, case):
    """TensorFlow's layer for the case: tf.compat.v1.layers where it can."""
    import tf_keras

    n = case["num_spatial"]
    kwargs = dict(
        filters=case["filters"],
        kernel_size=case["kernel_size"],
        strides=case["strides"],
        padding=case["padding"],
        data_format=case["data_format"],
        activation=case["activation"],
        use_bias=case["use_bias"],
    )
    plain = case["output_padding"] is None and max(case["dilation_rate"]) == 1
    if n > 1 and plain:
        cls = {2: tf.compat.v1.layers.Conv2DTranspose, 3: tf.compat.v1.layers.Conv3DTranspose}[n]
        return cls(**kwargs)
    cls = {
        1: tf_keras.layers.Conv1DTranspose,
        2: tf_keras.layers.Conv2DTranspose,
        3: tf_keras.layers.Conv3DTranspose,
    }[n]
    if n < 3:
        kwargs["dilation_rate"] = case["dilation_rate"]
    return cls(output_padding=case["output_padding"], **kwargs)


def _input_shape(case):
    if case["data_format"] == "channels_last":
        return (case["batch"], *case["input_size"], case["in_channels"])
    return (case["batch"], case["in_channels"], *case["input_size"])


def _run_tf(tf, case, x, kernel, bias):
    layer = _tf_layer(tf, case)
    with warnings.catch_warnings():
        # The v1 layers warn about their deprecated `updates` property.
        warnings.simplefilter("ignore", UserWarning)
        layer.build(x.shape)
        layer.set_weights([kernel, bias] if case["use_bias"] else [kernel])
        return tf.function(layer, jit_compile=True)(x).numpy()


def _check_case(tf, case):
    rng = np.random.default_rng(cases.seed_of(_case_id(case)))
    n = case["num_spatial"]
    x = rng.normal(size=_input_shape(case)).astype(np.float32)
    kernel = rng.normal(size=(*case["kernel_size"], case["filters"], case["in_channels"]))
    kernel = kernel.astype(np.float32)
    bias = rng.normal(size=(case["filters"],)).astype(np.float32)
    expected = _run_tf(tf, case, x, kernel, bias)

    layer = LAYERS[n](
        case["filters"],
        case["kernel_size"],
        strides=case["strides"],
        padding=case["padding"],
        data_format=case["data_format"],
        activation=case["activation"],
        use_bias=case["use_bias"],
        output_padding=case["output_padding"],
        dilation_rate=case["dilation_rate"],
    )
    params = {"kernel": kernel, "bias": bias} if case["use_bias"] else {"kernel": kernel}
    got = np.asarray(jax.jit(layer.apply)({"params": params}, x))
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("case", CASES[:DEFAULT], ids=_case_id)
def test_matches_tensorflow_layer(tf, case):
    _check_case(tf, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES[DEFAULT:], ids=_case_id)
def test_matches_tensorflow_layer_full(tf, case):
    _check_case(tf, case)


def test_sample_covers_every_argument():
    """The default sample exercises every argument value the TF test varies."""
    sample = CASES[:DEFAULT]
    assert {c["num_spatial"] for c in sample} == {1, 2, 3}
    assert {c["padding"].lower() for c in sample} == {"same", "valid"}
    assert any(c["padding"] not in ("same", "valid") for c in sample)  # mixed case
    assert {c["data_format"] for c in sample} == {"channels_last", "channels_first"}
    assert {c["use_bias"] for c in sample} == {True, False}
    assert any(c["output_padding"] is not None for c in sample)
    assert any(max(c["dilation_rate"]) > 1 for c in sample)
    assert any(max(c["strides"]) > 1 for c in sample)
    assert len({c["activation"] for c in sample}) >= 4


@pytest.mark.parametrize("name", sorted(jdeconv._layers._activations.ACTIVATIONS))
def test_named_activations_match_keras(tf, name):
    import tf_keras

    x = np.linspace(-4, 4, 41, dtype=np.float32).reshape(1, 41)
    keras_fn = tf_keras.activations.get(name)
    ours = jdeconv._layers._activations.ACTIVATIONS[name]
    got = np.asarray(x if ours is None else ours(jnp.asarray(x)))
    np.testing.assert_allclose(got, keras_fn(tf.constant(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_same_padding_with_output_padding_is_refused_like_tensorflow(tf):
    import tf_keras

    x = np.ones((1, 4, 4, 1), np.float32)
    keras_layer = tf_keras.layers.Conv2DTranspose(1, 4, 2, padding="same", output_padding=0)
    with pytest.raises(Exception, match=r"(?i)size|shape"):
        tf.function(keras_layer, jit_compile=True)(x)
    layer = jdeconv.Conv2DTranspose(1, 4, 2, padding="same", output_padding=0)
    with pytest.raises(
        ValueError, match=r"Conv2DTranspose: output_padding=\(0, 0\) gives output size 6"
    ):
        layer.init(jax.random.key(0), x)


STRIDE_AND_DILATION = [
    # (num_spatial, kernel, strides, dilation, padding, groups, channels_last)
    (1, (3,), (2,), (2,), "same", 1, True),
    (2, (3, 2), (2, 3), (2, 1), "valid", 2, False),
    (2, (2, 3), (3, 2), (1, 3), "same", 1, True),
    (3, (2, 2, 3), (2, 1, 2), (2, 2, 1), "valid", 2, True),
]


@pytest.mark.parametrize("n, kernel, strides, dilation, padding, groups, last", STRIDE_AND_DILATION)
def test_stride_dilation_and_groups_match_reference(
    n, kernel, strides, dilation, padding, groups, last
):
    """What Keras cannot express: stride and dilation > 1 together, and groups."""
    rng = np.random.default_rng(0)
    in_channels, filters, batch = 4, 6, 2
    spatial = (4, 3, 2)[:n]
    shape = (batch, *spatial, in_channels) if last else (batch, in_channels, *spatial)
    x = rng.normal(size=shape)
    kernel_value = rng.normal(size=(*kernel, filters // groups, in_channels))
    bias = rng.normal(size=(filters,))
    layer = LAYERS[n](
        filters,
        kernel,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        data_format="channels_last" if last else "channels_first",
        activation="tanh",
        param_dtype=jnp.float64,
    )
    got = layer.apply({"params": {"kernel": kernel_value, "bias": bias}}, jnp.asarray(x))

    output_size = []
    for i, k, s, d in zip(spatial, kernel, strides, dilation, strict=True):
        k_eff = (k - 1) * d + 1
        output_size.append(i * s if padding == "same" else i * s + max(k_eff - s, 0))
    expected = reference.conv_transpose(
        x,
        kernel_value,
        output_size,
        strides,
        dilation,
        padding.upper(),
        groups=groups,
        channels_last=last,
    )
    expected = np.tanh(expected + (bias if last else bias.reshape((-1,) + (1,) * n)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10, atol=1e-10)
