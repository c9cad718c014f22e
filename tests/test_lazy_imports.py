"""``import jdeconv`` loads the op only; the rest loads on first use, optax never."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import jdeconv


def _run(script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_import_loads_neither_flax_layers_nor_optax():
    loaded = _run(
        """
        import sys
        import numpy as np
        import jdeconv

        heavy = ("flax.linen", "flax.nnx", "optax", "jdeconv._layers")
        before = [name for name in heavy if name in sys.modules]
        y = jdeconv.conv2d_transpose(np.ones((1, 2, 2, 1)), np.ones((3, 3, 1, 1)), (4, 4), 2)
        assert y.shape == (1, 4, 4, 1)
        after_op = [name for name in heavy if name in sys.modules]
        jdeconv.Conv2DTranspose
        print(before, after_op, "flax.linen" in sys.modules)
        """
    )
    assert loaded == "[] [] True"


def test_the_op_and_the_linen_layers_work_without_optax():
    output = _run(
        """
        import sys
        sys.modules["optax"] = None  # as if optax were not installed

        import jax, jax.numpy as jnp
        import flax.linen as nn
        import jdeconv

        x = jnp.ones((1, 4, 4, 2))
        layer = jdeconv.Conv2DTranspose(3, 3, 2, kernel_regularizer="l2")
        variables = layer.init(jax.random.key(0), x)
        y, state = layer.apply(variables, x, mutable=["losses"])
        assert float(jdeconv.regularization_loss(state)) > 0

        class Model(nn.Module):
            @nn.compact
            def __call__(self, x):
                return jdeconv.layers.conv2d_transpose(x, 3, 3)

        Model().init(jax.random.key(0), x)
        assert "flax.nnx" not in sys.modules  # which imports optax itself
        try:
            jdeconv.apply_constraints(layer, x)
        except ImportError as error:
            print("apply_constraints:", type(error).__name__, error.name)
        """
    )
    assert output == "apply_constraints: ModuleNotFoundError optax"


@pytest.mark.parametrize("name", sorted(jdeconv._LAZY))
def test_lazy_names_resolve(name):
    value = getattr(jdeconv, name)
    assert name in dir(jdeconv)
    if jdeconv._LAZY[name] is None:
        assert value.__name__ == f"jdeconv.{name}"
    else:
        assert value.__name__ == name


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match=r"^module 'jdeconv' has no attribute 'Conv4D'$"):
        jdeconv.Conv4D  # noqa: B018
