"""``jdeconv.io`` without files: the dtype policy, ``strict=False``, the report,
and loads that fail without touching the target.

The sources here are in-memory state dicts, so these tests need neither
PyTorch nor TensorFlow; the formats' readers have their own test files.
"""

from __future__ import annotations

import copy
import logging
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import freeze

from jdeconv import io

X = np.ones((1, 4, 4, 3), np.float32)


class Net(nn.Module):
    """A convolution and a dense head, named like the state dict's layers."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(2, (3, 3), name="up", param_dtype=self.dtype)(x)
        return nn.Dense(5, name="head", param_dtype=self.dtype)(x)


def state_dict(dtype=np.float32):
    """Net's weights as PyTorch stores them: distinct values, in PyTorch's layouts."""
    rng = np.random.default_rng(0)
    shapes = {"up.weight": (2, 3, 3, 3), "up.bias": (2,), "head.weight": (5, 2), "head.bias": (5,)}
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}


def make_variables(dtype=jnp.float32):
    """Net's variables, built without compiling anything (values from a seed)."""
    rng = np.random.default_rng(1)
    shapes = {
        "up": {"kernel": (3, 3, 3, 2), "bias": (2,)},
        "head": {"kernel": (2, 5), "bias": (5,)},
    }
    return {
        "params": {
            module: {
                name: jnp.asarray(rng.standard_normal(shape), dtype)
                for name, shape in leaves.items()
            }
            for module, leaves in shapes.items()
        }
    }


@pytest.fixture(scope="module")
def target():
    return make_variables()


def test_variables_are_nets():
    shapes = jax.eval_shape(Net().init, jax.random.key(0), X)
    assert jax.tree_util.tree_map(lambda leaf: leaf.shape, shapes) == jax.tree_util.tree_map(
        lambda leaf: leaf.shape, make_variables()
    )


def leaves(variables):
    return {
        "/".join(str(k.key) for k in path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables)
    }


# --------------------------------------------------------------------------
# Dtypes


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float64, jnp.bfloat16], ids=lambda d: np.dtype(d).name
)
def test_floats_are_cast_to_the_target_dtype(target, dtype):
    source = state_dict(dtype)
    variables = io.load_torch_state_dict(source, target)
    kernel = variables["params"]["up"]["kernel"]
    assert kernel.dtype == jnp.float32
    np.testing.assert_array_equal(
        kernel, np.asarray(source["up.weight"], np.float32).transpose(2, 3, 1, 0)
    )


def test_floats_into_a_low_precision_target():
    target = make_variables(jnp.bfloat16)
    variables = io.load_torch_state_dict(state_dict(np.float64), target)
    assert variables["params"]["head"]["kernel"].dtype == jnp.bfloat16


def test_infinities_and_nans_are_kept(target):
    source = state_dict(np.float64)
    source["up.bias"] = np.array([np.inf, np.nan])
    bias = io.load_torch_state_dict(source, target)["params"]["up"]["bias"]
    assert np.isposinf(bias[0]) and np.isnan(bias[1])


@pytest.mark.parametrize(
    ("value", "dtype", "target_dtype", "largest"),
    [
        (1e300, np.float64, jnp.float32, "3.40282e+38"),
        (1e5, np.float32, jnp.float16, "65504"),
        (-1e39, np.float64, jnp.bfloat16, "3.38953e+38"),
    ],
    ids=["float64-to-float32", "float32-to-float16", "float64-to-bfloat16"],
)
def test_overflow_is_an_error(value, dtype, target_dtype, largest):
    target = make_variables(target_dtype)
    source = state_dict(dtype)
    source["head.bias"][3] = value
    name = np.dtype(target_dtype).name
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"load_torch_state_dict: `source`, entry 'head.bias': cannot fill target "
            f"'params/head/bias': its value {float(dtype(value))!r} does not fit the target's "
            f"dtype {name} (largest {largest})."
        ),
    ):
        io.load_torch_state_dict(source, target)


@pytest.mark.parametrize(
    ("dtype", "family"),
    [
        (np.int32, "int"),
        (np.int64, "int"),
        (np.uint8, "int"),
        (np.bool_, "bool"),
        (np.complex64, "complex"),
    ],
    ids=lambda value: value if isinstance(value, str) else np.dtype(value).name,
)
def test_non_float_weights_need_allow_cast(target, dtype, family):
    source = state_dict()
    source["up.bias"] = np.array([1, 0]).astype(dtype)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"load_torch_state_dict: `source`, entry 'up.bias': cannot fill target "
            f"'params/up/bias': its dtype is {np.dtype(dtype).name}, and the target's is "
            f"float32: jdeconv does not convert {family} weights silently; pass "
            f"allow_cast=True to convert it."
        ),
    ):
        io.load_torch_state_dict(source, target)
    variables = io.load_torch_state_dict(source, target, allow_cast=True)
    np.testing.assert_array_equal(variables["params"]["up"]["bias"], [1.0, 0.0])


def test_allow_cast_keeps_every_value_or_fails():
    source = state_dict()
    source["up.bias"] = np.array([1 + 2j, 3], np.complex64)
    target = make_variables()
    with pytest.raises(
        ValueError, match=r"entry 'up\.bias': .* complex64 with nonzero imaginary parts"
    ):
        io.load_torch_state_dict(source, target, allow_cast=True)
    source["up.bias"] = np.array([70000, 1], np.int64)  # Beyond float16's range.
    target16 = make_variables(jnp.float16)
    with pytest.raises(
        ValueError, match=r"its value 70000 does not fit the target's dtype float16"
    ):
        io.load_torch_state_dict(source, target16, allow_cast=True)


@pytest.mark.parametrize(
    "value",
    [np.array(["a", "b"]), np.array([b"a", b"b"]), np.array([1.0, "x"], dtype=object)],
    ids=["str", "bytes", "object"],
)
@pytest.mark.parametrize("allow_cast", [False, True])
def test_strings_and_objects_are_never_weights(target, value, allow_cast):
    source = state_dict() | {"up.bias": value}
    with pytest.raises(
        ValueError,
        match=rf"load_torch_state_dict: `source`, entry 'up\.bias': cannot fill target "
        rf"'params/up/bias': its dtype {value.dtype} is not numeric, so it cannot be a weight\.",
    ):
        io.load_torch_state_dict(source, target, allow_cast=allow_cast)


# --------------------------------------------------------------------------
# strict=False and the report


def test_report_lists_what_was_loaded_and_skipped(target, caplog):
    source = state_dict() | {"up.num_batches_tracked": np.array(7)}
    with caplog.at_level(logging.INFO, logger="jdeconv.io"):
        variables, report = io.load_torch_state_dict(source, target, return_report=True)
    assert report == io.LoadReport(
        loaded=(
            ("up.weight", "params/up/kernel"),
            ("up.bias", "params/up/bias"),
            ("head.weight", "params/head/kernel"),
            ("head.bias", "params/head/bias"),
        ),
        skipped=("up.num_batches_tracked",),
    )
    assert set(variables) == {"params"}
    assert caplog.messages == [
        "load_torch_state_dict: `source`: loaded 4 weights; skipped 1 entry: up.num_batches_tracked"
    ]


def test_checkpoint_wrapper_entries_are_skipped(target):
    checkpoint = {"epoch": 3, "optimizer": {"lr": 0.1}, "model_state_dict": state_dict()}
    _, report = io.load_torch_state_dict(checkpoint, target, return_report=True)
    assert report.skipped == ("epoch", "optimizer")
    assert len(report.loaded) == 4


def test_mapping_to_none_skips_a_layer(target):
    source = state_dict() | {"aux.weight": np.ones((2, 2), np.float32)}
    _, report = io.load_torch_state_dict(source, target, {"aux": None}, return_report=True)
    assert report.skipped == ("aux.weight",)


def test_strict_false_keeps_missing_variables_and_reports_them(target):
    source = state_dict()
    del source["head.bias"]
    with pytest.raises(
        ValueError,
        match=r"source layer 'head' cannot fill target module 'head': it has no variable for "
        r"the target's \['params/bias'\]",
    ):
        io.load_torch_state_dict(source, target)
    variables, report = io.load_torch_state_dict(source, target, strict=False, return_report=True)
    assert report.kept == ("params/head/bias",)
    assert variables["params"]["head"]["bias"] is target["params"]["head"]["bias"]
    np.testing.assert_array_equal(variables["params"]["head"]["kernel"], source["head.weight"].T)


def test_strict_false_reports_unused_weights(target):
    source = state_dict() | {"extra.weight": np.ones(3), "up.running_mean": np.ones(2)}
    with pytest.raises(ValueError, match=r"its 'running_mean' has no place in the target"):
        io.load_torch_state_dict(source, target)
    _, report = io.load_torch_state_dict(source, target, strict=False, return_report=True)
    assert report.unused == ("extra.weight", "up.running_mean")
    assert report.kept == ()


def test_strict_false_keeps_whole_modules(target):
    source = {name: value for name, value in state_dict().items() if name.startswith("up.")}
    _, report = io.load_torch_state_dict(source, target, strict=False, return_report=True)
    assert report.kept == ("params/head/kernel", "params/head/bias")


def test_strict_false_needs_values_to_keep():
    abstract = io.abstract_variables(Net(), X)
    source = state_dict()
    del source["head.bias"]
    with pytest.raises(
        ValueError,
        match=r"`source`: with strict=False the target variables that the source does not fill "
        r"keep their values from `target`, but `target` holds only shapes for "
        r"\['params/head/bias'\]",
    ):
        io.load_torch_state_dict(source, abstract, strict=False)


# --------------------------------------------------------------------------
# All or nothing


FAILING = {
    "dtype-of-last-entry": lambda s: s | {"head.bias": s["head.bias"].astype(np.int32)},
    "overflow": lambda s: s | {"head.bias": np.full(5, 1e300)},
    "shape": lambda s: s | {"head.weight": np.ones((5, 3))},
    "missing": lambda s: {k: v for k, v in s.items() if k != "head.bias"},
    "extra": lambda s: s | {"other.weight": np.ones(2)},
    "string": lambda s: s | {"head.bias": np.array(["x"] * 5)},
}


@pytest.mark.parametrize("case", list(FAILING))
@pytest.mark.parametrize("kind", ["numpy", "jax", "frozen"])
def test_failed_load_leaves_target_untouched(case, kind):
    built = make_variables()
    target = {
        "numpy": jax.tree_util.tree_map(np.array, built),
        "jax": built,
        "frozen": freeze(built),
    }[kind]
    before = copy.deepcopy(leaves(target))
    ids = jax.tree_util.tree_map(id, target)
    with pytest.raises(ValueError, match=r"^load_torch_state_dict: `source`"):
        io.load_torch_state_dict(FAILING[case](state_dict()), target)
    after = leaves(target)
    assert after.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert jax.tree_util.tree_map(id, target) == ids


def test_success_does_not_modify_target():
    target = jax.tree_util.tree_map(np.array, make_variables())
    before = copy.deepcopy(leaves(target))
    io.load_torch_state_dict(state_dict(), target)
    for name, value in leaves(target).items():
        np.testing.assert_array_equal(value, before[name])


# --------------------------------------------------------------------------
# Argument errors


def test_argument_errors(target):
    with pytest.raises(TypeError, match=r"load_torch_state_dict: `target` must be Flax variables"):
        io.load_torch_state_dict(state_dict(), target["params"])
    with pytest.raises(TypeError, match=r"load_torch_state_dict: `mapping` must be a dict"):
        io.load_torch_state_dict(state_dict(), target, ["up"])
    with pytest.raises(TypeError, match=r"load_torch_state_dict: `source` must be a path"):
        io.load_torch_state_dict(3, target)
    with pytest.raises(TypeError, match=r"load_keras_weights: `path` must be a str or os.PathLike"):
        io.load_keras_weights(None, target)
    with pytest.raises(
        ValueError,
        match=r"load_torch_state_dict: `source`: `mapping` names source layer 'down', which "
        r"the source does not have; its layers are \['up', 'head'\]\.",
    ):
        io.load_torch_state_dict(state_dict(), target, {"down": "up"})
    with pytest.raises(ValueError, match=r"`source`: it is an empty mapping, not a state dict\."):
        io.load_torch_state_dict({}, target)
    with pytest.raises(
        ValueError,
        match=r"`source`: it is not a state dict: .* these entries are not tensors: 'epoch' \(int\), 'lr' \(float\)\.",
    ):
        io.load_torch_state_dict({"epoch": 3, "lr": 0.1}, target)
