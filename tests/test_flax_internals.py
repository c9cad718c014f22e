"""Pins each private Flax access of ``jdeconv._layers._flax_internals``.

A Flax release that renames or changes one of them fails here, by name.
"""

from __future__ import annotations

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jdeconv._layers import _flax_internals

X = jnp.ones((1, 3))


def test_running_linen_module():
    seen = {}
    assert _flax_internals.running_linen_module() is None

    class Inner(nn.Module):
        @nn.compact
        def __call__(self, x):
            seen["inner"] = _flax_internals.running_linen_module()
            return x

    class Outer(nn.Module):
        @nn.compact
        def __call__(self, x):
            seen["outer"] = _flax_internals.running_linen_module()
            y = Inner(name="inner")(x)
            seen["after"] = _flax_internals.running_linen_module()
            return y

    Outer().init(jax.random.key(0), X)
    assert type(seen["outer"]) is Outer and seen["outer"].scope is not None
    assert type(seen["inner"]) is Inner and seen["inner"].name == "inner"
    assert seen["after"] is seen["outer"]
    assert _flax_internals.running_linen_module() is None


def test_in_compact_method():
    seen = {}

    class Compact(nn.Module):
        @nn.compact
        def __call__(self, x):
            seen["compact"] = _flax_internals.in_compact_method(self)
            return x

    class Setup(nn.Module):
        def setup(self):
            self.dense = nn.Dense(2)

        def __call__(self, x):
            seen["setup"] = _flax_internals.in_compact_method(self)
            return self.dense(x)

    Compact().init(jax.random.key(0), X)
    Setup().init(jax.random.key(0), X)
    assert seen == {"compact": True, "setup": False}


def test_child_and_name_reserved():
    seen = {}

    class Parent(nn.Module):
        @nn.compact
        def __call__(self, x):
            before = _flax_internals.name_reserved(self, "dense")
            nn.Dense(2, name="dense")(x)
            self.param("w", nn.initializers.zeros, (1,))
            seen.update(
                before=before,
                dense=_flax_internals.name_reserved(self, "dense"),
                w=_flax_internals.name_reserved(self, "w"),
                other=_flax_internals.name_reserved(self, "other"),
                child=_flax_internals.child(self, "dense"),
                no_child=_flax_internals.child(self, "w"),
            )
            return x

    Parent().init(jax.random.key(0), X)
    assert (seen["before"], seen["dense"], seen["w"], seen["other"]) == (False, True, True, False)
    assert type(seen["child"]) is nn.Dense and seen["child"].features == 2
    assert seen["no_child"] is None  # a variable's name: Flax records its collection


def test_capturing():
    class Model(nnx.Module):
        def __call__(self, x):
            seen.append(_flax_internals.capturing(self))
            return x

    seen = []
    model = Model()
    model(X)
    nnx.capture(model, nnx.Intermediate)(X)
    assert seen == [False, True]


def test_sow_outside_capture_is_what_capturing_avoids():
    """The reason for the check: ``sow`` outside ``nnx.capture`` warns."""

    class Model(nnx.Module):
        def __call__(self, x):
            self.sow(nnx.Intermediate, "y", x)
            return x

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DeprecationWarning, match=r"outside of 'nnx.capture\(\)' is deprecated"):
            Model()(X)
        _, state = nnx.capture(Model(), nnx.Intermediate)(X)
    assert "y" in state
