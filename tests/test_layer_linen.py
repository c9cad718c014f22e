"""The linen layers: variables, arguments, errors, transforms and training."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference

import jdeconv

LAYERS = {1: jdeconv.Conv1DTranspose, 2: jdeconv.Conv2DTranspose, 3: jdeconv.Conv3DTranspose}


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_variables_have_tensorflow_layout(n, groups):
    layer = LAYERS[n](6, (3, 2, 2)[:n], strides=2, groups=groups)
    x = jnp.ones((2, *(4, 3, 2)[:n], 4))
    variables = jax.eval_shape(layer.init, jax.random.key(0), x)
    assert set(variables) == {"params"}
    params = variables["params"]
    assert params["kernel"].shape == (*(3, 2, 2)[:n], 6 // groups, 4)
    assert params["bias"].shape == (6,)
    assert params["kernel"].dtype == jnp.float32
    no_bias = jax.eval_shape(LAYERS[n](6, 3, use_bias=False).init, jax.random.key(0), x)
    assert set(no_bias["params"]) == {"kernel"}


def test_default_bias_is_zeros():
    params = jdeconv.Conv1DTranspose(3, 2).init(jax.random.key(0), jnp.ones((1, 4, 2)))["params"]
    np.testing.assert_array_equal(params["bias"], 0)


@pytest.mark.parametrize(
    "padding, output_padding, expected",
    [("same", None, (8, 6)), ("valid", None, (9, 7)), ("same", 1, (8, 6)), ("valid", 1, (10, 8))],
)
def test_output_size_is_keras_deconv_output_length(padding, output_padding, expected):
    # I = (4, 3), k = 3, s = 2: same I*s; valid I*s + max(k - s, 0);
    # with output_padding (I - 1)*s + k - 2*pad + output_padding.
    layer = jdeconv.Conv2DTranspose(2, 3, 2, padding, output_padding=output_padding)
    y, _ = jax.jit(layer.init_with_output)(jax.random.key(0), jnp.ones((1, 4, 3, 1)))
    assert y.shape == (1, *expected, 2)


def test_matches_the_float64_reference_with_every_shape_argument():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 3, 5))  # channels first
    kernel = rng.normal(size=(3, 2, 3, 4))  # groups=2: 3 outputs per group
    bias = rng.normal(size=(6,))
    layer = jdeconv.Conv2DTranspose(
        6,
        (3, 2),
        strides=(2, 3),
        padding="same",
        data_format="channels_first",
        dilation_rate=(2, 1),
        groups=2,
        output_padding=(1, 2),
        activation=jnp.sin,
        param_dtype=jnp.float64,
    )
    y = layer.apply({"params": {"kernel": kernel, "bias": bias}}, jnp.asarray(x))
    # (I-1)*s + k_eff - 2*(k_eff//2) + op: (2*2 + 5 - 4 + 1, 4*3 + 2 - 2 + 2).
    expected = reference.conv_transpose(
        x, kernel, (6, 14), (2, 3), (2, 1), "SAME", groups=2, channels_last=False
    )
    expected = np.sin(expected + bias.reshape(6, 1, 1))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-10)


TOLERANCE = {jnp.float16: 1e-2, jnp.bfloat16: 5e-2, jnp.float32: 1e-5, jnp.float64: 1e-12}


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=lambda d: jnp.dtype(d).name)
def test_dtypes(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 3))
    layer = jdeconv.Conv2DTranspose(2, 3, 2, "same", param_dtype=dtype, activation="tanh")
    variables = jax.jit(layer.init)(jax.random.key(0), x.astype(dtype))
    kernel = variables["params"]["kernel"]
    assert kernel.dtype == dtype
    y = layer.apply(variables, jnp.asarray(x, dtype))
    assert y.dtype == dtype
    expected = np.tanh(
        reference.conv_transpose(
            x.astype(dtype).astype(np.float64), kernel, (8, 8), (2, 2), (1, 1), "SAME"
        )
    )
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, atol=TOLERANCE[dtype] * 4)
    # `dtype` sets the computation dtype whatever the inputs and parameters are.
    computed = jdeconv.Conv2DTranspose(2, 3, dtype=dtype).apply(
        {"params": {"kernel": np.ones((3, 3, 2, 3)), "bias": np.ones(2)}}, jnp.ones((1, 2, 2, 3))
    )
    assert computed.dtype == dtype


def test_transforms():
    layer = jdeconv.Conv2DTranspose(
        3, 3, 2, "same", activation="softplus", kernel_initializer="he_normal"
    )
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
    params = jax.jit(layer.init)(jax.random.key(0), x)["params"]
    y = layer.apply({"params": params}, x)
    np.testing.assert_allclose(jax.jit(layer.apply)({"params": params}, x), y, rtol=1e-6)
    shape = jax.eval_shape(layer.apply, {"params": params}, x)
    assert shape.shape == (2, 8, 8, 3)
    batched = jax.vmap(lambda xi: layer.apply({"params": params}, xi[None])[0])(x)
    np.testing.assert_allclose(batched, y, rtol=1e-5, atol=1e-6)

    def loss(p, x):
        return jnp.sum(layer.apply({"params": p}, x) ** 2)

    grads = jax.jit(jax.grad(loss))(params, x)
    assert grads["kernel"].shape == params["kernel"].shape
    eps = 1e-3
    direction = jax.tree.map(jnp.ones_like, params)
    plus = loss(jax.tree.map(lambda p, d: p + eps * d, params, direction), x)
    minus = loss(jax.tree.map(lambda p, d: p - eps * d, params, direction), x)
    directional = sum(jnp.sum(g) for g in jax.tree.leaves(grads))
    assert float(directional) == pytest.approx(float((plus - minus) / (2 * eps)), rel=2e-2)
    # Second order: the gradient of a gradient norm, and a Hessian-vector product.
    second = jax.grad(lambda x: jnp.sum(jax.grad(loss, argnums=1)(params, x) ** 2))(x)
    assert second.shape == x.shape and bool(jnp.isfinite(second).all())


ACTIVATION_NAMES = (
    r"\('linear', 'relu', 'relu6', 'leaky_relu', 'elu', 'selu', 'gelu', 'sigmoid', "
    r"'hard_sigmoid', 'tanh', 'softmax', 'softplus', 'softsign', 'swish', 'silu', 'mish', "
    r"'exponential'\)"
)
FLOATING = r"a floating-point dtype \(float16, bfloat16, float32 or float64\)"
PRECISIONS = (
    r"None, a jax.lax.Precision or its name \('default', 'high', 'highest'\), a pair of "
    r"those, or a jax.lax.DotAlgorithm or DotAlgorithmPreset"
)

# Whole messages: (arguments, error, message after "Conv2DTranspose: ").
ERRORS = [
    (dict(filters=0), ValueError, r"`filters` must be >= 1, got 0\."),
    (dict(filters=2.0), TypeError, r"`filters` must hold integers, got float 2\.0\."),
    (dict(groups=0), ValueError, r"`groups` must be >= 1, got 0\."),
    (
        dict(kernel_size=(3, 3, 3)),
        ValueError,
        r"`kernel_size` must be an int or a sequence of 2 ints, got \(3, 3, 3\)\.",
    ),
    (
        dict(kernel_size="3"),
        TypeError,
        r"`kernel_size` must be an int or a sequence of 2 ints, got str '3'\.",
    ),
    (dict(strides=0), ValueError, r"every entry of `strides` must be >= 1, got 0\."),
    (dict(padding="causal"), ValueError, r"`padding` must be 'same' or 'valid', got 'causal'\."),
    (
        dict(data_format="NHWC"),
        ValueError,
        r"`data_format` must be 'channels_last' or 'channels_first', got 'NHWC'\.",
    ),
    (
        dict(output_padding=2, strides=2),
        ValueError,
        r"every `output_padding` must be >= 0 and smaller than its stride, got "
        r"output_padding=\(2, 2\) "
        r"and strides=\(2, 2\)\.",
    ),
    (
        dict(dilation_rate=(1, 0)),
        ValueError,
        r"every entry of `dilation_rate` must be >= 1, got \(1, 0\)\.",
    ),
    (dict(groups=4), ValueError, r"`filters` \(6\) must be divisible by groups=4\."),
    (
        dict(method="fft"),
        ValueError,
        r"`method` must be None \(the default, 'auto'\) or one of \('auto', 'lhs_dilation', "
        r"'phase', 'phase_matmul', 'autotune'\), "
        r"got 'fft'\.",
    ),
    (
        dict(activation="swishy"),
        ValueError,
        rf"`activation` must be a callable or one of {ACTIVATION_NAMES}, got 'swishy'\.",
    ),
    (
        dict(activation=3),
        TypeError,
        rf"`activation` must be None, a callable activation\(x\) or one of {ACTIVATION_NAMES}, "
        r"got int 3\.",
    ),
    (
        dict(kernel_initializer="glorot"),
        ValueError,
        r"`kernel_initializer` must be a Flax initializer or one of \('glorot_uniform', .*\), "
        r"got 'glorot'\.",
    ),
    (dict(use_bias=1), TypeError, r"`use_bias` must be True or False, got int 1\."),
    (dict(trainable="no"), TypeError, r"`trainable` must be True or False, got str 'no'\."),
    (dict(dtype=jnp.int32), TypeError, rf"`dtype` must be None or {FLOATING}, got int32\."),
    (dict(dtype="bogus"), TypeError, rf"`dtype` must be None or {FLOATING}, got str 'bogus'\."),
    (dict(param_dtype=None), TypeError, rf"`param_dtype` must be {FLOATING}, got NoneType None\."),
    (dict(param_dtype=jnp.int8), TypeError, rf"`param_dtype` must be {FLOATING}, got int8\."),
    (dict(precision="fast"), ValueError, rf"`precision` must be {PRECISIONS}, got str 'fast'\."),
    (dict(precision=3), ValueError, rf"`precision` must be {PRECISIONS}, got int 3\."),
    (
        dict(kernel_initializer="icnr", dilation_rate=2),
        ValueError,
        r"kernel_initializer='icnr' needs dilation_rate 1, got \(2, 2\)\.",
    ),
]


@pytest.mark.parametrize("kwargs, error, message", ERRORS, ids=lambda v: str(v)[:40])
def test_argument_errors(kwargs, error, message):
    arguments = {"filters": 6, "kernel_size": 3, **kwargs}
    layer = jdeconv.Conv2DTranspose(**arguments)
    with pytest.raises(error, match=rf"(?m)^Conv2DTranspose: {message}$"):
        layer.init(jax.random.key(0), jnp.ones((1, 4, 4, 2)))


def test_argument_errors_come_before_any_lowering(monkeypatch):
    """A bad dtype, param_dtype or precision is refused before the op runs."""

    def op_must_not_run(*args, **kwargs):
        raise AssertionError("the op ran")

    monkeypatch.setattr(jdeconv._primitives, "apply", op_must_not_run)
    x = jnp.ones((1, 4, 4, 2))
    for kwargs in (dict(dtype=jnp.int32), dict(param_dtype=jnp.int8), dict(precision="fast")):
        with pytest.raises((TypeError, ValueError), match=r"^Conv2DTranspose: `"):
            jdeconv.Conv2DTranspose(6, 3, **kwargs).init(jax.random.key(0), x)


def test_input_and_weight_errors():
    layer = jdeconv.Conv2DTranspose(4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2DTranspose: `inputs` must have 4 dimensions"):
        layer.init(jax.random.key(0), jnp.ones((4, 4, 2)))
    with pytest.raises(
        ValueError, match=r"the 3 input channels of `inputs` must be divisible by groups=2"
    ):
        layer.init(jax.random.key(0), jnp.ones((1, 4, 4, 3)))
    with pytest.raises(TypeError, match=r"Conv2DTranspose: `inputs` must be an array"):
        layer.init(jax.random.key(0), "image")
    frozen = jdeconv.Conv2DTranspose(4, 3, trainable=False)
    with pytest.raises(
        ValueError, match=r"Conv2DTranspose: `kernel` has shape \(3, 3, 4, 5\), but"
    ):
        frozen.apply(
            {"frozen_params": {"kernel": jnp.ones((3, 3, 4, 5)), "bias": jnp.ones(4)}},
            jnp.ones((1, 4, 4, 2)),
        )


def test_trainable_false_holds_across_optax_steps():
    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jdeconv.Conv2DTranspose(3, 3, 2, "same", trainable=False, name="frozen")(x)
            return jdeconv.Conv2DTranspose(2, 3, activation="tanh", name="trained")(x)

    model = Model()
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
    target = jax.random.normal(jax.random.key(2), (2, 10, 10, 2))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    assert set(variables) == {"params", "frozen_params"}
    assert set(variables["params"]) == {"trained"}
    assert set(variables["frozen_params"]["frozen"]) == {"kernel", "bias"}

    tx = optax.adam(1e-2)
    params, frozen = variables["params"], variables["frozen_params"]
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        def loss(p):
            y = model.apply({"params": p, "frozen_params": frozen}, x)
            return jnp.mean((y - target) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    losses = []
    new_params = params
    for _ in range(5):
        new_params, opt_state, value = step(new_params, opt_state)
        losses.append(float(value))
    assert losses[-1] < losses[0]
    assert not np.allclose(new_params["trained"]["kernel"], params["trained"]["kernel"])
    # The frozen layer is in no optimizer state and its variables are the same.
    before = jax.jit(model.init)(jax.random.key(0), x)["frozen_params"]
    jax.tree.map(np.testing.assert_array_equal, frozen, before)
    assert set(jax.tree.leaves(jax.tree.map(lambda _: "seen", opt_state))) <= {"seen"}
    assert "frozen" not in str(jax.tree_util.tree_structure(opt_state))


class _EveryArgument(nn.Module):
    """A decoder using every argument of the layers, linen and functional."""

    @nn.compact
    def __call__(self, z):
        x = jdeconv.Conv2DTranspose(
            8,
            (4, 3),
            strides=(2, 1),
            padding="SAME",
            data_format="channels_last",
            activation="relu",
            use_bias=True,
            kernel_initializer="he_uniform",
            bias_initializer=jax.nn.initializers.constant(0.1),
            kernel_regularizer="l2",
            bias_regularizer=jdeconv.regularizers.L1(0.001),
            activity_regularizer="l1",
            kernel_constraint="max_norm",
            bias_constraint="non_neg",
            trainable=True,
            output_padding=(1, 0),
            dilation_rate=1,
            groups=2,
            method="auto",
            dtype=jnp.float32,
            param_dtype=jnp.float32,
            precision=jax.lax.Precision.HIGHEST,
            name="up",
        )(z)
        x = jnp.moveaxis(x, -1, 1)
        x = jdeconv.Conv2DTranspose(
            4,
            2,
            2,
            "valid",
            data_format="channels_first",
            activation=jax.nn.gelu,
            kernel_initializer="icnr",
            kernel_constraint=jdeconv.constraints.UnitNorm(axis=(0, 1, 2)),
            name="icnr",
        )(x)
        x = jdeconv.Conv2DTranspose(
            4, 3, padding="same", dilation_rate=2, use_bias=False, trainable=False, name="frozen"
        )(jnp.moveaxis(x, 1, -1))
        return jdeconv.layers.conv2d_transpose(
            x,
            3,
            3,
            (1, 1),
            "same",
            activation="tanh",
            kernel_initializer=jdeconv.initializers.orthogonal(),
            kernel_regularizer="l1_l2",
            kernel_constraint="non_neg",
            name="rgb",
        )


def test_a_whole_model_trains_under_jit_with_every_argument():
    model = _EveryArgument()
    z = jax.random.normal(jax.random.key(1), (2, 3, 3, 4))
    target = jax.random.uniform(jax.random.key(2), (2, 10, 6, 3), minval=-0.5, maxval=0.5)
    variables = jax.jit(model.init)(jax.random.key(0), z)
    params, frozen = variables["params"], variables["frozen_params"]
    assert set(params) == {"up", "icnr", "rgb"} and set(frozen) == {"frozen"}
    assert params["up"]["kernel"].shape == (4, 3, 4, 4)  # groups=2
    np.testing.assert_allclose(params["up"]["bias"], 0.1)

    tx = optax.chain(optax.adam(3e-2), jdeconv.apply_constraints(model, z))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        def loss(p):
            y, state = model.apply({"params": p, "frozen_params": frozen}, z, mutable=["losses"])
            return jnp.mean((y - target) ** 2) + jdeconv.regularization_loss(state)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    losses = []
    for _ in range(8):
        params, opt_state, value = step(params, opt_state)
        losses.append(float(value))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    # Constraints hold after the updates; the frozen layer did not move.
    assert float(params["rgb"]["kernel"].min()) >= 0
    assert float(params["up"]["bias"].min()) >= 0
    norms = jnp.sqrt(jnp.sum(params["up"]["kernel"] ** 2, axis=0))
    assert float(norms.max()) <= 2.0 + 1e-5
    icnr_norms = jnp.sqrt(jnp.sum(params["icnr"]["kernel"] ** 2, axis=(0, 1, 2)))
    np.testing.assert_allclose(icnr_norms, 1.0, rtol=1e-5)
    jax.tree.map(np.testing.assert_array_equal, frozen, variables["frozen_params"])


def test_precision_groups_and_method_reach_the_op():
    layer = jdeconv.Conv2DTranspose(
        4, 3, 2, groups=2, precision=jax.lax.Precision.HIGHEST, method="lhs_dilation"
    )
    x = jnp.ones((1, 4, 4, 2))
    variables = jax.eval_shape(layer.init, jax.random.key(0), x)
    text = jax.jit(layer.apply).lower(variables, x).as_text()
    assert (
        "precision_config = [#stablehlo<precision HIGHEST>, #stablehlo<precision HIGHEST>]" in text
    )
    assert "feature_group_count = 2" in text
    assert "lhs_dilate = [2, 2]" in text
    default = jdeconv.Conv2DTranspose(4, 3, 2)
    variables = jax.eval_shape(default.init, jax.random.key(0), x)
    assert "HIGHEST" not in jax.jit(default.apply).lower(variables, x).as_text()
