"""Initializers: Keras' distributions and fans, and ICNR's phase structure."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv
from jdeconv import initializers

# A large transposed-conv kernel [kh, kw, filters, in_channels]: 51200 samples.
SHAPE = (5, 5, 64, 32)

KERAS_NAMES = [
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "zeros",
    "ones",
]


def _keras_sample(name, shape):
    import tf_keras

    init = tf_keras.initializers.get(name)
    if hasattr(init, "seed"):
        init.seed = 1234
    return np.asarray(init(shape, dtype="float32"))


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_statistics_match_keras(tf, name):
    ours = np.asarray(initializers.get(name)(jax.random.key(0), SHAPE, jnp.float32))
    keras = _keras_sample(name, SHAPE)
    assert ours.shape == keras.shape == SHAPE
    assert ours.dtype == np.float32
    std = keras.std()
    if std == 0:  # zeros, ones
        np.testing.assert_array_equal(ours, keras)
        return
    standard_error = std / np.sqrt(ours.size)
    assert abs(ours.mean() - keras.mean()) < 8 * standard_error
    assert ours.std() == pytest.approx(std, rel=0.03)
    # Bounds: uniform limits and the truncation at two standard deviations.
    assert ours.min() >= keras.min() - 0.05 * std or "normal" in name or name == "orthogonal"
    if name in ("glorot_uniform", "he_uniform", "lecun_uniform", "random_uniform"):
        assert abs(ours).max() <= abs(keras).max() * 1.001 + 1e-7
        assert abs(ours).max() == pytest.approx(abs(keras).max(), rel=0.01)
    if name in (
        "glorot_normal",
        "he_normal",
        "lecun_normal",
        "truncated_normal",
        "variance_scaling",
    ):
        limit = 2 * std / 0.8796256610342398  # two pre-truncation standard deviations
        assert abs(ours).max() <= limit * 1.01
        assert abs(keras).max() <= limit * 1.01


def test_keras_default_arguments():
    key = jax.random.key(0)
    n = 200_000
    normal = np.asarray(initializers.get("random_normal")(key, (n,)))
    assert normal.std() == pytest.approx(0.05, rel=0.02)
    uniform = np.asarray(initializers.get("random_uniform")(key, (n,)))
    assert uniform.min() >= -0.05 and uniform.max() < 0.05
    assert uniform.max() == pytest.approx(0.05, rel=1e-3)
    truncated = np.asarray(initializers.get("truncated_normal")(key, (n,)))
    assert abs(truncated).max() <= 0.1
    assert truncated.std() == pytest.approx(0.05 * 0.8796256610342398, rel=0.02)


@pytest.mark.parametrize(
    "shape", [(), (7,), (3, 5), (4, 4, 8, 3), (2, 3, 4, 5, 6), (3, 6, 2)], ids=str
)
def test_fans_are_keras_fans(tf, shape):
    from tf_keras.src.initializers.initializers import _compute_fans

    assert initializers.compute_fans(shape) == _compute_fans(shape)


def test_layer_default_kernel_is_glorot_uniform_of_the_transposed_layout(tf):
    """fan_in = prod(k) * filters and fan_out = prod(k) * in_channels, as in TF."""
    layer = jdeconv.Conv2DTranspose(64, 5)
    kernel = jax.jit(layer.init)(jax.random.key(0), jnp.ones((1, 3, 3, 32)))["params"]["kernel"]
    assert kernel.shape == SHAPE
    limit = np.sqrt(6 / (25 * 64 + 25 * 32))
    assert float(abs(kernel).max()) <= limit
    assert float(abs(kernel).max()) == pytest.approx(limit, rel=0.01)

    tf_layer = tf.compat.v1.layers.Conv2DTranspose(64, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tf_layer.build((1, 3, 3, 32))
    tf_kernel = tf_layer.get_weights()[0]
    assert tf_kernel.shape == SHAPE
    assert float(np.asarray(kernel).std()) == pytest.approx(float(tf_kernel.std()), rel=0.03)
    assert float(abs(tf_kernel).max()) <= limit


def test_variance_scaling_modes_and_distributions():
    key = jax.random.key(1)
    shape = (3, 3, 40, 20)  # fan_in 360, fan_out 180
    for mode, fan in (("fan_in", 360), ("fan_out", 180), ("fan_avg", 270)):
        for distribution in ("truncated_normal", "untruncated_normal", "uniform"):
            w = initializers.variance_scaling(2.0, mode, distribution)(key, shape)
            assert float(w.std()) == pytest.approx(np.sqrt(2.0 / fan), rel=0.04)


def test_bias_shaped_initializers_use_keras_vector_fans():
    w = initializers.get("he_uniform")(jax.random.key(0), (10_000,))
    assert float(abs(w).max()) <= np.sqrt(6 / 10_000)


@pytest.mark.parametrize("shape", [(3, 3, 16, 8), (2, 2, 3, 16)], ids=str)
def test_orthogonal_is_orthogonal(shape):
    w = np.asarray(initializers.orthogonal(gain=1.5)(jax.random.key(0), shape), np.float64)
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(len(gram)), atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_dtypes(dtype):
    # icnr wraps glorot_uniform; orthogonal computes its QR in float32 or wider.
    for name in ("icnr", "orthogonal"):
        init = initializers.get(name, strides=2)
        assert init(jax.random.key(0), (4, 4, 3, 2), dtype).dtype == dtype


def test_get_errors():
    with pytest.raises(
        ValueError,
        match=(
            r"^initializers.get: `identifier` must be a Flax initializer"
            r" or one of \('glorot_uniform', .*'icnr'\), got 'glorot'\.$"
        ),
    ):
        initializers.get("glorot")
    with pytest.raises(
        TypeError,
        match=(
            r"^initializers.get: `identifier` must be a Flax initializer"
            r" \(a callable init\(key, shape, dtype\)\) or a name in \('glorot_uniform', .*'icnr'\), got int 3\.$"
        ),
    ):
        initializers.get(3)
    with pytest.raises(TypeError, match=r"initializers.get: .* got NoneType None\.$"):
        initializers.get(None)  # unlike a regularizer or a constraint, never optional
    with pytest.raises(ValueError, match=r"`identifier`='icnr' needs the layer's strides"):
        initializers.get("icnr")
    with pytest.raises(ValueError, match=r"F: `arg` must be a Flax initializer or one of"):
        initializers.get("GlorotUniform ", function="F", argument="arg")
    with pytest.raises(ValueError, match=r"variance_scaling: `mode` must be one of"):
        initializers.variance_scaling(mode="fan")
    with pytest.raises(ValueError, match=r"variance_scaling: `distribution` must be one of"):
        initializers.variance_scaling(distribution="cauchy")
    with pytest.raises(ValueError, match=r"variance_scaling: `scale` must be a positive number"):
        initializers.variance_scaling(scale=0)
    with pytest.raises(ValueError, match=r"orthogonal: the shape to initialize must have"):
        initializers.orthogonal()(jax.random.key(0), (5,))
    assert initializers.get("HeNormal") is not None  # Keras class names work too


def test_callables_pass_through():
    init = jax.nn.initializers.normal(0.02)
    assert initializers.get(init) is init


# ICNR ----------------------------------------------------------------------


def test_icnr_kernel_has_equal_phases():
    w = np.asarray(initializers.icnr((2, 3))(jax.random.key(0), (5, 6, 4, 3)))
    # Taps 0..3 along axis 0 come in equal pairs; tap 4 (past 2 * (5 // 2)) is zero.
    np.testing.assert_array_equal(w[0], w[1])
    np.testing.assert_array_equal(w[2], w[3])
    np.testing.assert_array_equal(w[4], 0)
    # Along axis 1 (stride 3, size 6): two triples.
    np.testing.assert_array_equal(w[:, 0], w[:, 1])
    np.testing.assert_array_equal(w[:, 0], w[:, 2])
    np.testing.assert_array_equal(w[:, 3], w[:, 5])
    assert not np.array_equal(w[:, 0], w[:, 3])
    assert not np.array_equal(w[0], w[2])


def test_icnr_base_uses_the_sub_kernel_fans():
    w = np.asarray(initializers.icnr(2)(jax.random.key(0), (8, 8, 64, 32)))
    base = w[::2, ::2]  # (4, 4, 64, 32): fans 1024 and 512
    assert float(abs(base).max()) <= np.sqrt(6 / (1024 + 512))
    assert float(abs(base).max()) == pytest.approx(np.sqrt(6 / (1024 + 512)), rel=0.01)


def _forward_padding_before(i, k, s, padding):
    """TensorFlow's padding before the signal for Keras' output size."""
    if padding == "valid":
        return 0
    return max(0, (i - 1) * s + k - i * s) // 2


@pytest.mark.parametrize(
    "kernel, strides, padding",
    [((4, 4), (2, 2), "same"), ((3, 6), (2, 3), "valid"), ((4, 5), (2, 2), "same")],
    ids=str,
)
def test_icnr_layer_output_is_nearest_neighbour_upsampled(kernel, strides, padding):
    """Every output repeats ``s`` times: y[o] == y[o - 1] unless (o + p) % s == 0."""
    x = jax.random.normal(jax.random.key(1), (2, 5, 6, 3))
    layer = jdeconv.Conv2DTranspose(
        4, kernel, strides, padding, kernel_initializer="icnr", use_bias=False
    )
    y, _ = jax.jit(layer.init_with_output)(jax.random.key(0), x)
    y = np.asarray(y)
    for axis, (i, k, s) in enumerate(zip((5, 6), kernel, strides, strict=True), start=1):
        p = _forward_padding_before(i, k, s, padding)
        for o in range(1, y.shape[axis]):
            if (o + p) % s:
                np.testing.assert_allclose(
                    y.take(o, axis), y.take(o - 1, axis), rtol=1e-6, atol=1e-6
                )


def test_icnr_has_no_checkerboard_on_constant_input():
    """A constant input gives a constant interior with ICNR, not with glorot."""
    x = jnp.ones((1, 12, 12, 3))

    def interior(kernel_initializer):
        layer = jdeconv.Conv2DTranspose(
            2, 4, 2, "same", kernel_initializer=kernel_initializer, use_bias=False
        )
        y, _ = jax.jit(layer.init_with_output)(jax.random.key(0), x)
        return np.asarray(y)[0, 4:-4, 4:-4]  # away from the borders

    icnr = interior("icnr")
    np.testing.assert_allclose(icnr, np.broadcast_to(icnr[:1, :1], icnr.shape), rtol=1e-6)
    glorot = interior("glorot_uniform")  # the checkerboard the test guards against
    assert np.ptp(glorot, axis=(0, 1)).min() > 1e-3


def test_icnr_errors():
    with pytest.raises(ValueError, match=r"icnr: every kernel size must be at least its stride"):
        initializers.icnr(3)(jax.random.key(0), (2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"kernel_initializer='icnr' needs dilation_rate 1"):
        jdeconv.Conv2DTranspose(2, 4, dilation_rate=2, kernel_initializer="icnr").config  # noqa: B018
