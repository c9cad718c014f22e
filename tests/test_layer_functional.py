"""The functional API: TensorFlow's names and reuse semantics inside linen."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv
from jdeconv import layers

X = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), jnp.float32)


def _init(fn, x=X):
    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return fn(x)

    model = Model()
    variables = jax.jit(model.init)(jax.random.key(0), x)
    return model, variables


def test_auto_names_follow_tensorflow():
    def fn(x):
        x = layers.conv2d_transpose(x, 3, 3, padding="same")
        x = layers.conv2d_transpose(x, 3, 3, padding="same")
        y = layers.conv1d_transpose(x[:, 0], 2, 2)
        z = layers.conv3d_transpose(x[..., None, :], 2, 1)
        x = layers.conv2d_transpose(x, 3, 3, padding="same")
        return x.sum() + y.sum() + z.sum()

    _, variables = _init(fn)
    assert sorted(variables["params"]) == [
        "conv1d_transpose",
        "conv2d_transpose",
        "conv2d_transpose_1",
        "conv2d_transpose_2",
        "conv3d_transpose",
    ]
    assert variables["params"]["conv2d_transpose"]["kernel"].shape == (3, 3, 3, 3)
    assert set(variables["params"]["conv2d_transpose"]) == {"kernel", "bias"}


def test_auto_names_skip_taken_names():
    def fn(x):
        x = layers.conv2d_transpose(x, 3, 1, name="conv2d_transpose")
        return layers.conv2d_transpose(x, 3, 1)

    _, variables = _init(fn)
    assert sorted(variables["params"]) == ["conv2d_transpose", "conv2d_transpose_1"]


@pytest.mark.parametrize("reuse", [True, layers.AUTO_REUSE])
def test_reuse_shares_the_variables(reuse):
    def fn(x):
        a = layers.conv2d_transpose(x, 3, 3, name="shared")
        b = layers.conv2d_transpose(x, 3, 3, name="shared", reuse=reuse)
        return a, b

    model, variables = _init(fn)
    assert list(variables["params"]) == ["shared"]
    a, b = model.apply(variables, X)
    np.testing.assert_array_equal(a, b)


def test_reused_layer_applies_the_new_arguments():
    """As in TensorFlow: shared variables, the reusing call's own activation."""

    def fn(x):
        a = layers.conv2d_transpose(x, 3, 3, name="l", kernel_initializer="ones")
        b = layers.conv2d_transpose(
            x, 3, 3, activation="relu", name="l", reuse=True, kernel_initializer="zeros"
        )
        return a, b

    model, variables = _init(fn)
    np.testing.assert_array_equal(variables["params"]["l"]["kernel"], 1.0)
    a, b = model.apply(variables, X)
    np.testing.assert_allclose(b, jax.nn.relu(a), rtol=1e-6)


def test_auto_reuse_creates_when_absent():
    def fn(x):
        return layers.conv2d_transpose(x, 3, 3, name="fresh", reuse=layers.AUTO_REUSE)

    _, variables = _init(fn)
    assert list(variables["params"]) == ["fresh"]
    assert repr(layers.AUTO_REUSE) == "jdeconv.layers.AUTO_REUSE"


def test_calling_the_parent_twice_reuses_its_layers():
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return layers.conv2d_transpose(x, 3, 3, padding="same", name="up")

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            block = Block()
            return block(x), block(x + 0)

    variables = jax.jit(Model().init)(jax.random.key(0), X)
    a, b = Model().apply(variables, X)
    np.testing.assert_array_equal(a, b)
    assert list(variables["params"]["Block_0"]) == ["up"]


def test_functional_equals_the_layer_class():
    kwargs = dict(
        strides=(2, 1),
        padding="same",
        data_format="channels_first",
        activation="elu",
        output_padding=(1, 0),
        dilation_rate=1,
    )

    def fn(x):
        return layers.conv2d_transpose(x, 4, (3, 3), name="l", **kwargs)

    x = jnp.moveaxis(X, -1, 1)
    model, variables = _init(fn, x)
    expected = jdeconv.Conv2DTranspose(4, (3, 3), **kwargs).apply(
        {"params": variables["params"]["l"]}, x
    )
    np.testing.assert_array_equal(model.apply(variables, x), expected)
    assert layers.Conv2DTranspose is jdeconv.Conv2DTranspose


def test_reuse_sows_weight_penalties_once_and_activity_per_call():
    def fn(x):
        a = layers.conv2d_transpose(
            x, 3, 3, name="l", kernel_regularizer="l2", activity_regularizer="l1"
        )
        b = layers.conv2d_transpose(
            x, 3, 3, name="l", reuse=True, kernel_regularizer="l2", activity_regularizer="l1"
        )
        return a + b

    model, variables = _init(fn)
    params = {"params": variables["params"]}
    _, state = model.apply(params, X, mutable=["losses"])
    losses = state["losses"]["l"]
    kernel = variables["params"]["l"]["kernel"]
    assert float(losses["kernel_regularizer"]) == pytest.approx(
        float(0.01 * jnp.sum(kernel**2)), rel=1e-6
    )
    assert len(losses["activity_regularizer"]) == 2


def test_trainable_false():
    def fn(x):
        return layers.conv2d_transpose(x, 3, 3, trainable=False, name="frozen")

    _, variables = _init(fn)
    assert "params" not in variables
    assert set(variables["frozen_params"]["frozen"]) == {"kernel", "bias"}


def test_name_errors():
    def duplicate(x):
        layers.conv2d_transpose(x, 3, 3, name="deconv")
        return layers.conv2d_transpose(x, 3, 3, name="deconv")

    with pytest.raises(
        ValueError,
        match=r"(?m)^conv2d_transpose: a layer named 'deconv' already exists in Model "
        r"\(the top-level module\)\. Pass reuse=True or reuse=jdeconv\.layers\.AUTO_REUSE to "
        r"share its variables, or choose another name\.$",
    ):
        _init(duplicate)

    def reuse_missing(x):
        return layers.conv2d_transpose(x, 3, 3, name="deconv", reuse=True)

    with pytest.raises(
        ValueError,
        match=r"(?m)^conv2d_transpose: reuse=True, but no layer named 'deconv' exists in Model "
        r"\(the top-level module\) yet\. Create it first \(reuse=None\), or pass "
        r"reuse=jdeconv\.layers\.AUTO_REUSE\.$",
    ):
        _init(reuse_missing)

    def reuse_other(x):
        nn.Dense(3, name="dense")(x)
        return layers.conv2d_transpose(x, 3, 3, name="dense", reuse=True)

    with pytest.raises(
        ValueError,
        match=r"(?m)^conv2d_transpose: the name 'dense' in Model \(the top-level module\) "
        r"belongs to Dense, not to a layer of jdeconv\.layers, so it cannot be reused\.$",
    ):
        _init(reuse_other)

    class WithVariable(nn.Module):
        @nn.compact
        def __call__(self, x):
            self.param("scale", nn.initializers.ones, ())
            return layers.conv2d_transpose(x, 3, 3, name="scale", reuse=True)

    with pytest.raises(
        ValueError,
        match=r"(?m)^conv2d_transpose: the name 'scale' in WithVariable \(the top-level module\) "
        r"belongs to a variable, not to a layer of jdeconv\.layers, so it cannot be reused\.$",
    ):
        WithVariable().init(jax.random.key(0), X)

    def bad_reuse(x):
        return layers.conv2d_transpose(x, 3, 3, reuse="yes")

    with pytest.raises(
        TypeError,
        match=r"(?m)^conv2d_transpose: `reuse` must be None, True, False or "
        r"jdeconv\.layers\.AUTO_REUSE, got 'yes'\.$",
    ):
        _init(bad_reuse)

    for name, shown in ((3, "int 3"), ("", "str ''"), (5.0, "float 5.0")):
        with pytest.raises(
            TypeError,
            match=rf"(?m)^conv2d_transpose: `name` must be a non-empty string or None, "
            rf"got {shown}\.$",
        ):
            _init(lambda x, name=name: layers.conv2d_transpose(x, 3, 3, name=name))


def test_outside_a_module_is_an_error():
    with pytest.raises(
        ValueError,
        match=r"^conv2d_transpose: must be called inside a flax\.linen Module method decorated "
        r"with @nn\.compact, where it creates its layer as a submodule; outside a module, use "
        r"the layer class \(e\.g\. jdeconv\.Conv2DTranspose\) instead\.$",
    ):
        layers.conv2d_transpose(X, 3, 3)

    class Setup(nn.Module):
        def setup(self):
            self.scale = 2.0

        def __call__(self, x):
            return layers.conv3d_transpose(x, 3, 3)

    with pytest.raises(
        ValueError,
        match=r"(?m)^conv3d_transpose: must be called inside a method decorated with "
        r"@nn\.compact, but Setup is running a method that is not\.$",
    ):
        Setup().init(jax.random.key(0), X[..., None, :])


FLOATING = r"a floating-point dtype \(float16, bfloat16, float32 or float64\)"


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda x: layers.conv1d_transpose(x[:, 0], 3, 3, padding="full"),
            ValueError,
            r"conv1d_transpose: `padding` must be 'same' or 'valid', got 'full'\.",
        ),
        (
            lambda x: layers.conv2d_transpose(x, 3, 3, dtype=jnp.int32),
            TypeError,
            rf"conv2d_transpose: `dtype` must be None or {FLOATING}, got int32\.",
        ),
        (
            lambda x: layers.conv2d_transpose(x, 3, 3, param_dtype="int8"),
            TypeError,
            rf"conv2d_transpose: `param_dtype` must be {FLOATING}, got int8\.",
        ),
        (
            lambda x: layers.conv2d_transpose(x, 3, 3, precision="fastest?"),
            ValueError,
            r"conv2d_transpose: `precision` must be None, a jax\.lax\.Precision or its name "
            r"\('default', 'high', 'highest'\), a pair of those, or a jax\.lax\.DotAlgorithm or "
            r"DotAlgorithmPreset, got str 'fastest\?'\.",
        ),
        (
            lambda x: layers.conv2d_transpose(x, 3),
            TypeError,
            # Python's own messages, now that the signature is written out.
            r"conv2d_transpose\(\) missing 1 required positional argument: 'kernel_size'",
        ),
        (
            lambda x: layers.conv2d_transpose(x, 3, 3, strides_=2),
            TypeError,
            # Python 3.13 adds a suggestion.
            r"conv2d_transpose\(\) got an unexpected keyword argument 'strides_'"
            r"(\. Did you mean 'strides'\?)?",
        ),
        (
            # TensorFlow's order: the arguments after `reuse` are keyword-only.
            lambda x: layers.conv2d_transpose(x, 3, 3, 1, "valid", *[None] * 14),
            TypeError,
            r"conv2d_transpose\(\) takes from 3 to 18 positional arguments but 19 were given",
        ),
    ],
    ids=["padding", "dtype", "param_dtype", "precision", "missing", "unknown", "positional"],
)
def test_argument_errors_name_the_function(call, error, message):
    with pytest.raises(error, match=rf"(?m)^{message}$"):
        _init(call)
