"""One declaration of the layer arguments, and every front end held to it.

``jdeconv._layers._config.LayerArguments`` declares the arguments. The linen
fields inherit it; the NNX constructor and the functional layers write their
signatures out in source (so that type checkers and IDEs see them), and the
typed ``LayerConfig`` holds the checked values. These tests build the expected
signature of each front end from the declaration alone (names, order, kinds,
defaults and annotations) and compare, and show that an argument added to the
declaration but not to a written signature is found, by name.
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

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
    """``(name, default, kind, annotation)`` of each parameter."""
    return [(p.name, p.default, p.kind, p.annotation) for p in parameters]


def _declared(entries, kind):
    return [(name, default, kind, TYPES[name]) for name, default in entries]


TYPES = {field.name: field.type for field in dataclasses.fields(_config.LayerArguments)}


def expected_signatures():
    """Each front end's parameters as the declaration says they must be."""
    nnx_constructor = [
        ("self", P.empty, P.POSITIONAL_OR_KEYWORD, P.empty),
        ("in_features", P.empty, P.POSITIONAL_OR_KEYWORD, "int"),
        *_declared(DECLARED, P.POSITIONAL_OR_KEYWORD),
        ("rngs", P.empty, P.KEYWORD_ONLY, "nnx.Rngs"),
    ]
    functional = [
        ("inputs", P.empty, P.POSITIONAL_OR_KEYWORD, "ArrayLike"),
        *_declared(TF1_POSITIONAL, P.POSITIONAL_OR_KEYWORD),
        ("name", None, P.POSITIONAL_OR_KEYWORD, "str | None"),
        ("reuse", None, P.POSITIONAL_OR_KEYWORD, "bool | _AutoReuse | None"),
        *_declared(KEYWORD_ONLY, P.KEYWORD_ONLY),
    ]
    return {
        **{cls: nnx_constructor for cls in NNX_LAYERS},
        **{function: functional for function in FUNCTIONAL_LAYERS},
    }


def signature_mismatches():
    """``(front end, what differs)`` for every front end whose signature is not the declaration."""
    found = []
    for obj, expected in expected_signatures().items():
        target = obj.__init__ if isinstance(obj, type) else obj
        actual = _listed(inspect.signature(target).parameters.values())
        if actual != expected:
            missing = [e[0] for e in expected if e[0] not in {a[0] for a in actual}]
            found.append((obj.__qualname__, missing or [a for a in actual if a not in expected]))
    return found


NNX_LAYERS = [jdeconv.nnx.Conv1DTranspose, jdeconv.nnx.Conv2DTranspose, jdeconv.nnx.Conv3DTranspose]
FUNCTIONAL_LAYERS = [
    jdeconv.layers.conv1d_transpose,
    jdeconv.layers.conv2d_transpose,
    jdeconv.layers.conv3d_transpose,
]


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
    assert [(p.name, p.default, p.kind) for p in signature.parameters.values()][
        : len(DECLARED)
    ] == [(name, default, P.POSITIONAL_OR_KEYWORD) for name, default in DECLARED]


@pytest.mark.parametrize("cls", NNX_LAYERS)
def test_nnx_constructor_is_the_declaration(cls):
    assert (
        _listed(inspect.signature(cls.__init__).parameters.values()) == (expected_signatures()[cls])
    )


@pytest.mark.parametrize("function", FUNCTIONAL_LAYERS)
def test_functional_signature_is_the_declaration_in_tensorflows_order(function):
    assert (
        _listed(inspect.signature(function).parameters.values())
        == (expected_signatures()[function])
    )


def test_the_checked_config_has_a_typed_field_per_argument():
    fields = [f.name for f in dataclasses.fields(_config.LayerConfig)]
    assert fields == ["function", "num_spatial", *(name for name, _ in DECLARED)]


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


# A hypothetical argument added to the declaration alone: linen takes it at
# once (its fields are the declaration); the written signatures of NNX and the
# functional layers do not, and the signature check names them and the argument.
_ONE_TRUTH = textwrap.dedent(
    """
    import dataclasses, sys
    sys.path.insert(0, {tests!r})
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

    import jdeconv
    layer = jdeconv.Conv2DTranspose(2, 3, extra_scale=2)
    assert [f.name for f in dataclasses.fields(layer)][-3:] == ["extra_scale", "parent", "name"]
    import test_layer_arguments
    for front_end, missing in test_layer_arguments.signature_mismatches():
        print(front_end, missing)
    """
)


def test_an_argument_missing_from_a_written_signature_is_found():
    script = _ONE_TRUTH.format(tests=str(Path(__file__).parent))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f"{name} ['extra_scale']"
        for name in (
            "Conv1DTranspose",
            "Conv2DTranspose",
            "Conv3DTranspose",
            "conv1d_transpose",
            "conv2d_transpose",
            "conv3d_transpose",
        )
    ]
