"""One declaration of the layer arguments, and every front end derived from it.

``jdeconv._layers._config.LayerArguments`` declares the arguments; the linen
fields, the NNX constructor, the functional layers' signature, their docs and
the checks all come from it. These tests build the expected signature lists
from the declaration alone and compare them with each front end, and show that
adding an argument is one edit of the declaration.
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import jdeconv
from jdeconv._layers import _config

P = inspect.Parameter
DECLARED = [
    (field.name, P.empty if field.default is dataclasses.MISSING else field.default)
    for field in dataclasses.fields(_config.LayerArguments)
]
TF1_POSITIONAL = [
    (name, default)
    for (name, default), field in zip(DECLARED, dataclasses.fields(_config.LayerArguments))
    if field.metadata["tf1_positional"]
]
KEYWORD_ONLY = [entry for entry in DECLARED if entry not in TF1_POSITIONAL]


def _listed(parameters):
    """``(name, default, kind)`` of each parameter."""
    return [(p.name, p.default, p.kind) for p in parameters]


def test_the_declaration_is_tensorflows_argument_list():
    names = [name for name, _ in DECLARED]
    assert names[:2] == ["filters", "kernel_size"]
    # tf.compat.v1.layers.conv2d_transpose's positional arguments, in its order.
    assert [name for name, _ in TF1_POSITIONAL] == [
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "bias_constraint",
        "trainable",
    ]
    for field in dataclasses.fields(_config.LayerArguments):
        assert field.metadata["doc"] and callable(field.metadata["check"]), field.name


@pytest.mark.parametrize(
    "cls", [jdeconv.Conv1DTranspose, jdeconv.Conv2DTranspose, jdeconv.Conv3DTranspose]
)
def test_linen_fields_are_the_declaration(cls):
    fields = [
        (f.name, P.empty if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
        if f.name not in ("parent", "name")
    ]
    assert fields == DECLARED
    signature = inspect.signature(cls)
    assert _listed(signature.parameters.values())[: len(DECLARED)] == [
        (name, default, P.POSITIONAL_OR_KEYWORD) for name, default in DECLARED
    ]


@pytest.mark.parametrize(
    "cls", [jdeconv.nnx.Conv1DTranspose, jdeconv.nnx.Conv2DTranspose, jdeconv.nnx.Conv3DTranspose]
)
def test_nnx_constructor_is_the_declaration(cls):
    expected = [
        ("self", P.empty, P.POSITIONAL_OR_KEYWORD),
        ("in_features", P.empty, P.POSITIONAL_OR_KEYWORD),
        *[(name, default, P.POSITIONAL_OR_KEYWORD) for name, default in DECLARED],
        ("rngs", P.empty, P.KEYWORD_ONLY),
    ]
    assert _listed(inspect.signature(cls.__init__).parameters.values()) == expected


@pytest.mark.parametrize(
    "function",
    [
        jdeconv.layers.conv1d_transpose,
        jdeconv.layers.conv2d_transpose,
        jdeconv.layers.conv3d_transpose,
    ],
)
def test_functional_signature_is_the_declaration_in_tensorflows_order(function):
    expected = [
        ("inputs", P.empty, P.POSITIONAL_OR_KEYWORD),
        *[(name, default, P.POSITIONAL_OR_KEYWORD) for name, default in TF1_POSITIONAL],
        ("name", None, P.POSITIONAL_OR_KEYWORD),
        ("reuse", None, P.POSITIONAL_OR_KEYWORD),
        *[(name, default, P.KEYWORD_ONLY) for name, default in KEYWORD_ONLY],
    ]
    assert _listed(inspect.signature(function).parameters.values()) == expected


@pytest.mark.parametrize(
    "obj, section",
    [
        (jdeconv.Conv2DTranspose, "Attributes"),
        (jdeconv.nnx.Conv2DTranspose, "Args"),
        (jdeconv.layers.conv2d_transpose, "Args"),
    ],
)
def test_every_argument_is_documented_from_the_declaration(obj, section):
    doc = inspect.getdoc(obj)
    assert "{" not in doc.split("Example")[0]  # every placeholder filled
    section_text = " ".join(doc.split(f"{section}:\n", 1)[1].split())
    for field in dataclasses.fields(_config.LayerArguments):
        assert f"{field.name}: {' '.join(field.metadata['doc'].split())}" in section_text


def test_the_same_values_give_the_same_config_in_every_front_end():
    arguments = dict(
        strides=2,
        padding="SAME",
        data_format=None,
        activation="relu",
        output_padding=1,
        dilation_rate=1,
        groups=2,
        dtype="float32",
        param_dtype=jnp.float32,
        precision="highest",
    )
    linen = jdeconv.Conv2DTranspose(6, 3, **arguments).config
    nnx_layer = jdeconv.nnx.Conv2DTranspose(4, 6, 3, **arguments, rngs=nnx.Rngs(0)).config

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return jdeconv.layers.conv2d_transpose(x, 6, 3, **arguments)

    configs = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and len(args) > 1:
            configs.append(args[1])  # FunctionalConvTranspose(inputs, config, creates)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        Model().init(jax.random.key(0), jnp.ones((1, 3, 3, 4)))
    (functional,) = configs
    for config in (linen, nnx_layer, functional):
        assert dict(config.arguments).keys() == {name for name, _ in DECLARED}
        assert config.strides == (2, 2) and config.padding == "SAME"
        assert config.data_format == "channels_last" and config.channels_last
        assert config.activation is jax.nn.relu
        assert config.output_padding == (1, 1)
        assert config.precision == jax.lax.Precision.HIGHEST
        assert config.dtype == jnp.dtype("float32")

    def comparable(config):  # initializers are built afresh for each layer
        return {k: v for k, v in config.arguments.items() if "initializer" not in k}

    assert comparable(linen) == comparable(nnx_layer) == comparable(functional)


# A hypothetical argument, declared in one place: the front ends are built after
# the declaration is extended, and each takes the new argument.
_ONE_EDIT = textwrap.dedent(
    """
    import dataclasses, inspect
    from jdeconv._layers import _config

    @dataclasses.dataclass(eq=False, repr=False)
    class Extended(_config.LayerArguments):
        extra_scale: float = dataclasses.field(
            default=1.0,
            metadata=_config._about(
                "a hypothetical argument.", lambda checking, value: float(value)
            ),
        )

    _config.LayerArguments = Extended
    _config.FIELDS = dataclasses.fields(Extended)

    import flax.linen as nn, jax, jax.numpy as jnp
    from flax import nnx
    import jdeconv

    # linen: a field, checked into the config.
    layer = jdeconv.Conv2DTranspose(2, 3, extra_scale=2)
    assert [f.name for f in dataclasses.fields(layer)][-3:] == ["extra_scale", "parent", "name"]
    assert layer.config.extra_scale == 2.0
    assert "extra_scale: a hypothetical argument." in jdeconv.Conv2DTranspose.__doc__
    # NNX: a constructor argument, before `rngs`.
    parameters = list(inspect.signature(jdeconv.nnx.Conv2DTranspose.__init__).parameters)
    assert parameters[-2:] == ["extra_scale", "rngs"]
    assert jdeconv.nnx.Conv2DTranspose(3, 2, 3, extra_scale=3, rngs=nnx.Rngs(0)).config.extra_scale == 3.0
    assert "extra_scale: a hypothetical argument." in jdeconv.nnx.Conv2DTranspose.__doc__
    # The functional layers: a keyword-only argument.
    signature = inspect.signature(jdeconv.layers.conv2d_transpose)
    assert signature.parameters["extra_scale"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "extra_scale: a hypothetical argument." in jdeconv.layers.conv2d_transpose.__doc__

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return jdeconv.layers.conv2d_transpose(x, 2, 3, extra_scale=4)

    Model().init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
    print("one edit")
    """
)


def test_adding_an_argument_is_one_edit_of_the_declaration():
    result = subprocess.run(
        [sys.executable, "-c", _ONE_EDIT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "one edit"
