"""What every ported model of the gallery does: save, load, compare, train one step.

The scripts beside this file each port one published model to Flax. They share:

* :func:`keras_adam`: Keras's Adam as an optax transformation. Keras adds
  ``epsilon`` to ``sqrt(v)`` before the bias correction, optax after it, so
  ``optax.adam(eps=1e-7)`` is not Keras's step; PyTorch's Adam is
  ``optax.adam`` exactly.
* :func:`save_tf_formats`: a TensorFlow model saved every way TensorFlow saves
  one (``tf.train.Checkpoint`` with the optimizers, ``save_weights`` to
  ``.weights.h5``, ``save`` to ``.keras``, tf_keras's ``save`` to ``.h5``),
  with a loader of each into Flax variables, with no ``mapping``.
* :func:`save_torch_formats`: a PyTorch model's ``state_dict`` as ``.pt`` and
  ``.safetensors``, and the state dict in memory.
* :func:`keras_tree` and :func:`torch_tree`: per-variable values of the source
  framework (gradients, say) as a Flax tree, placed by ``jdeconv.io`` as it
  places the weights.
* :func:`assert_close`: comparison to float32 rounding, naming what differs.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jdeconv.io

Loader = Callable[[Any], dict]

# float32 rounding, summed over a few layers: relative to each value, and to the
# largest magnitude of its array (for entries near zero).
RTOL, ATOL = 2e-4, 2e-5


def keras_adam(
    learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7
) -> optax.GradientTransformation:
    """Keras's (and tf_keras's) Adam: ``lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``."""

    def init(params: Any) -> Any:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return {"count": jnp.zeros((), jnp.int32), "m": zeros, "v": zeros}

    def update(grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        count = state["count"] + 1
        m = jax.tree.map(lambda m, g: beta_1 * m + (1 - beta_1) * g, state["m"], grads)
        v = jax.tree.map(lambda v, g: beta_2 * v + (1 - beta_2) * g * g, state["v"], grads)
        t = count.astype(jnp.float32)
        alpha = learning_rate * jnp.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        updates = jax.tree.map(lambda m, v: -alpha * m / (jnp.sqrt(v) + epsilon), m, v)
        return updates, {"count": count, "m": m, "v": v}

    return optax.GradientTransformation(init, update)


def quietly(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Calls a Keras saving function without its own deprecation warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def save_tf_formats(
    directory: str | os.PathLike,
    keras3_models: Mapping[str, Any],
    optimizers: Mapping[str, Any],
    tf_keras_models: Mapping[str, Any],
) -> dict[str, dict[str, Loader]]:
    """Saves Keras 3 and tf_keras models every way TensorFlow saves them.

    Args:
      directory: where the files go.
      keras3_models: Keras 3 models by name (``"generator"``), as ``tf.keras``
        builds them in TensorFlow 2.16 and later.
      optimizers: their optimizers by name, saved in the checkpoint too.
      tf_keras_models: the same models built with tf_keras, for the ``.h5``
        format that only Keras 2 writes.

    Returns:
      ``{format: {model name: loader}}``; a loader takes the target variables
      of the model's port and returns them filled, by ``jdeconv.io`` with no
      ``mapping``. Formats whose name starts with ``tf_keras`` hold the
      tf_keras models.
    """
    import tensorflow as tf

    directory = pathlib.Path(directory)
    formats: dict[str, dict[str, Loader]] = {}
    checkpoint = tf.train.Checkpoint(**keras3_models, **optimizers)
    prefix = checkpoint.save(str(directory / "checkpoint" / "ckpt"))
    formats["tf.train.Checkpoint"] = {
        name: _loader(jdeconv.io.load_tf_checkpoint, prefix, prefix=f"{name}/")
        for name in keras3_models
    }
    formats[".weights.h5"], formats[".keras"], formats["tf_keras .h5"] = {}, {}, {}
    for name, model in keras3_models.items():
        path = directory / f"{name}.weights.h5"
        quietly(model.save_weights, path)
        formats[".weights.h5"][name] = _loader(jdeconv.io.load_keras_weights, path)
        path = directory / f"{name}.keras"
        quietly(model.save, path)
        formats[".keras"][name] = _loader(jdeconv.io.load_keras_weights, path)
    for name, model in tf_keras_models.items():
        path = directory / f"{name}.h5"
        quietly(model.save, str(path), save_format="h5")
        formats["tf_keras .h5"][name] = _loader(jdeconv.io.load_keras_weights, path)
    return formats


def save_torch_formats(directory: str | os.PathLike, model: Any) -> dict[str, Loader]:
    """Saves a PyTorch model's state dict every way PyTorch users do.

    Returns:
      ``{format: loader}`` for ``.pt`` (``torch.save``), ``.safetensors`` and
      the ``state_dict`` in memory.
    """
    import safetensors.torch
    import torch

    directory = pathlib.Path(directory)
    state = model.state_dict()
    torch.save(state, directory / "model.pt")
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in state.items()}, directory / "model.safetensors"
    )
    load = jdeconv.io.load_torch_state_dict
    return {
        ".pt": _loader(load, directory / "model.pt"),
        ".safetensors": _loader(load, directory / "model.safetensors"),
        "state_dict": _loader(load, {k: v.clone() for k, v in state.items()}),
    }


def _loader(load: Callable, source: Any, **kwargs: Any) -> Loader:
    return lambda target: load(source, target, **kwargs)


def keras_tree(model: Any, values: Sequence[Any], target: Any) -> dict:
    """``values``, one per trainable variable of a Keras model, as a Flax params tree.

    The values are written into the model's variables, saved with
    ``save_weights`` and loaded by ``jdeconv.io`` into ``target``, which places
    them as it places the weights; the model then gets its own values back.
    """
    saved = [variable.numpy() for variable in model.trainable_variables]
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "values.weights.h5")
        try:
            for variable, value in zip(model.trainable_variables, values, strict=True):
                variable.assign(np.asarray(value))
            quietly(model.save_weights, path)
        finally:
            for variable, value in zip(model.trainable_variables, saved, strict=True):
                variable.assign(value)
        return jdeconv.io.load_keras_weights(path, target)["params"]


def keras_variables(model: Any, target: Any) -> dict:
    """A Keras model's current weights as Flax variables shaped like ``target``."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.weights.h5")
        quietly(model.save_weights, path)
        return jdeconv.io.load_keras_weights(path, target)


def check_loads(
    formats: Mapping[str, Mapping[str, Loader]],
    ports: Mapping[str, tuple[Any, Any]],
    expected: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Loads each model from each format into its port and compares the outputs.

    Args:
      formats: ``{format: {model name: loader}}``, as :func:`save_tf_formats`
        returns (a PyTorch model's ``{format: loader}`` under one name).
      ports: ``{model name: (port, sample)}``: the Flax module and an input.
      expected: ``{family: {model name: output}}``, the source model's output
        on the sample; the family is ``"tf_keras"`` for formats whose name
        starts with it, else ``"source"``.

    Returns:
      One line per format and model that loaded and matched.
    """
    done = []
    for name, (port, sample) in ports.items():
        target = jdeconv.io.abstract_variables(port, sample)
        apply = jax.jit(port.apply)
        for file_format, loaders in formats.items():
            if name not in loaders:
                continue
            family = "tf_keras" if file_format.startswith("tf_keras") else "source"
            output = apply(loaders[name](target), sample)
            assert_close(output, expected[family][name], f"{name} from {file_format}:")
            done.append(f"{name} from {file_format}: output matches")
    return done


def torch_tree(values: Mapping[str, Any], target: Any) -> dict:
    """Per-parameter values of a PyTorch model (``{name: grad}``) as a Flax params tree."""
    return jdeconv.io.load_torch_state_dict(values, target, strict=False)["params"]


def check_step(
    optimizer: optax.GradientTransformation,
    learning_rate: float,
    before: Any,
    flax_grads: Any,
    flax_after: Any,
    source_grads: Any,
    source_after: Any,
) -> None:
    """Checks one training step: gradients, Adam's update, weights and statistics after.

    The gradients must agree to float32 rounding, and Adam applied to the
    source's gradients must give the source's weights to float32 rounding. The
    weights after the JAX step must then agree to a tenth of the learning rate:
    a first Adam step moves each weight by about ``learning_rate * sign(g)``,
    so an entry whose gradient is near zero (a sum that cancels) takes a step
    that its gradient's rounding decides. Moving statistics agree to rounding.
    """
    assert_close(flax_grads, source_grads, "gradient")

    @jax.jit  # One compilation, not one per operation and leaf.
    def apply_adam(params: Any, grads: Any) -> Any:
        step, _ = optimizer.update(grads, optimizer.init(params), params)
        return optax.apply_updates(params, step)

    assert_close(
        apply_adam(before["params"], source_grads),
        source_after["params"],
        "Adam on the source's gradients",
    )
    assert_close(flax_after["params"], source_after["params"], "after Adam", 0.1 * learning_rate)
    if "batch_stats" in source_after:
        assert_close(flax_after["batch_stats"], source_after["batch_stats"], "statistics")


def assert_close(actual: Any, expected: Any, what: str, atol: float | None = None) -> None:
    """Equal to float32 rounding, leaf by leaf; the message names the leaf.

    ``atol``, where given, replaces the absolute tolerance.
    """
    actual_leaves = jax.tree_util.tree_leaves_with_path(actual)
    expected_leaves = jax.tree_util.tree_leaves_with_path(expected)
    assert [p for p, _ in actual_leaves] == [p for p, _ in expected_leaves], what
    for (path, a), (_, e) in zip(actual_leaves, expected_leaves, strict=True):
        e = np.asarray(e, np.float64)
        np.testing.assert_allclose(
            np.asarray(a, np.float64),
            e,
            rtol=RTOL,
            atol=atol
            if atol is not None
            else ATOL * max(float(np.max(np.abs(e), initial=0)), 1e-3),
            err_msg=f"{what} {jax.tree_util.keystr(path)}",
        )
