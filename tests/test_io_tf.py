"""``jdeconv.io`` and TensorFlow checkpoints, as TensorFlow and Keras write them.

Each kind of checkpoint users have is built here with TensorFlow itself:
``tf.train.Checkpoint.save()`` and ``.write()``, a ``CheckpointManager``,
Keras ``save_weights`` in TensorFlow's format (with the optimizer's state of a
trained model), a Keras 3 model inside a ``tf.train.Checkpoint``, and
``tf.compat.v1`` name-based checkpoints with Adam's slots. Each must load with
the defaults, skip what is not a weight and say what it skipped. Damaged and
hostile checkpoints are in ``test_io_corpus.py``.
"""

from __future__ import annotations

import logging
import os
import warnings

import flax.linen as nn
import jax
import keras_ports
import numpy as np
import pytest

import jdeconv
from jdeconv import io

X = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
Y = np.zeros((2, 19, 19, 2), np.float32)


@pytest.fixture(scope="module")
def tf_keras(tf):
    return pytest.importorskip("tf_keras")


def keras2_model(keras):
    model = keras_ports.keras2_decoder(keras)
    model.compile(keras.optimizers.Adam(), "mse")
    model.fit(X, Y, epochs=1, verbose=0)  # Optimizer state and non-trivial statistics.
    return model


@pytest.fixture(scope="module")
def trained(tf, tf_keras, tmp_path_factory):
    """A trained tf_keras model, saved as each kind of object-based checkpoint."""
    directory = tmp_path_factory.mktemp("tf")
    model = keras2_model(tf_keras)
    paths = {}
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    paths["Checkpoint.save"] = checkpoint.save(str(directory / "save" / "ckpt"))
    paths["Checkpoint.write"] = tf.train.Checkpoint(model=model).write(
        str(directory / "write" / "ckpt")
    )
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(step=tf.Variable(7, dtype=tf.int64), model=model, opt=model.optimizer),
        str(directory / "manager"),
        max_to_keep=2,
    )
    manager.save()
    manager.save()
    paths["CheckpointManager"] = str(directory / "manager")  # The directory: its latest.
    model.save_weights(str(directory / "save_weights" / "ckpt"))  # TensorFlow's format.
    paths["save_weights"] = str(directory / "save_weights" / "ckpt")
    return paths, model(X, training=False).numpy()


@pytest.mark.parametrize(
    "kind", ["Checkpoint.save", "Checkpoint.write", "CheckpointManager", "save_weights"]
)
def test_object_based_checkpoints_load_with_defaults(trained, kind):
    paths, expected = trained
    target = io.abstract_variables(keras_ports.Port(), X)
    variables, report = io.load_tf_checkpoint(paths[kind], target, return_report=True)
    np.testing.assert_allclose(
        keras_ports.Port().apply(variables, X), expected, rtol=1e-5, atol=1e-5
    )
    assert len(report.loaded) == 10
    assert report.unused == report.kept == ()
    skipped = set(report.skipped)
    bookkeeping = {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    bookkeeping |= {"save_counter"} if kind in ("Checkpoint.save", "CheckpointManager") else set()
    bookkeeping |= {"step"} if kind == "CheckpointManager" else set()
    assert bookkeeping <= skipped
    # The optimizer's variables, by their shortest path (a compiled model tracks its optimizer).
    optimizer = skipped - bookkeeping
    root = {"Checkpoint.write": "model/optimizer/", "CheckpointManager": "opt/"}.get(
        kind, "optimizer/"
    )
    assert f"{root}_iterations" in optimizer
    assert all(name.startswith(root) for name in optimizer), optimizer


def test_checkpoint_names_and_prefix(trained):
    paths, expected = trained
    names = io.read_tf_checkpoint(paths["Checkpoint.save"])
    assert list(names)[:2] == [
        "model/layer_with_weights-0/bias",
        "model/layer_with_weights-0/kernel",
    ]
    assert len(names) == 10  # The model's variables only.
    target = io.abstract_variables(keras_ports.Port(), X)
    index = paths["Checkpoint.save"] + ".index"
    for path in (index, os.path.dirname(index)):  # The .index file and the directory work too.
        variables = io.load_tf_checkpoint(path, target, prefix="model/")
        np.testing.assert_allclose(
            keras_ports.Port().apply(variables, X), expected, rtol=1e-5, atol=1e-5
        )


def test_skipped_entries_are_logged(trained, caplog):
    paths, _ = trained
    with caplog.at_level(logging.INFO, logger="jdeconv.io"):
        io.load_tf_checkpoint(
            paths["Checkpoint.save"], io.abstract_variables(keras_ports.Port(), X)
        )
    (message,) = caplog.messages
    assert message.startswith(
        f"load_tf_checkpoint: {paths['Checkpoint.save']!r}: loaded 10 weights; skipped 20 "
        f"entries: _CHECKPOINTABLE_OBJECT_GRAPH, optimizer/_iterations, "
    )
    assert message.endswith(", and 10 more")


def test_optimizer_slots_are_skipped(tf, tf_keras, tmp_path):
    """Optimizers that keep slot variables (``.OPTIMIZER_SLOT`` in the keys)."""
    layer = tf_keras.layers.Dense(2)
    layer.build((None, 4))
    optimizer = tf_keras.optimizers.legacy.Adam()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.ones((1, 4))) ** 2)
    optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.weights))
    prefix = tf.train.Checkpoint(model=layer, optimizer=optimizer).save(str(tmp_path / "ckpt"))
    target = nn.Dense(2).init(jax.random.key(0), np.ones((1, 4), np.float32))
    variables, report = io.load_tf_checkpoint(prefix, target, return_report=True)
    np.testing.assert_array_equal(variables["params"]["kernel"], layer.kernel.numpy())
    slots = [name for name in report.skipped if "/.OPTIMIZER_SLOT/" in name]
    assert sorted(slots) == [
        f"model/{variable}/.OPTIMIZER_SLOT/optimizer/{slot}"
        for variable in ("bias", "kernel")
        for slot in ("m", "v")
    ]
    assert "optimizer/iter" in report.skipped


def test_keras3_model_in_a_checkpoint(tf, tmp_path):
    """Keras 3 tracks the optimizer inside the model, and names kernels ``_kernel``."""
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("needs Keras 3")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            keras.layers.Dense(5),
            keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"),
        ]
    )
    model.compile(keras.optimizers.Adam(), "mse")
    with warnings.catch_warnings():  # Keras's own NumPy 2 deprecation warning.
        warnings.simplefilter("ignore", DeprecationWarning)
        model.fit(X, np.zeros((2, 8, 8, 2)), epochs=1, verbose=0)
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        str(tmp_path / "ckpt")
    )

    class Small(nn.Module):
        @nn.compact
        def __call__(self, x):
            return jdeconv.Conv2DTranspose(2, 3, strides=2, padding="same")(nn.Dense(5)(x))

    variables, report = io.load_tf_checkpoint(
        prefix, io.abstract_variables(Small(), X), return_report=True
    )
    np.testing.assert_allclose(Small().apply(variables, X), model(X), rtol=1e-5, atol=1e-5)
    assert report.loaded[0][0] == "model/_functional/_operations/1/_kernel"
    assert "optimizer/_iterations" in report.skipped


def test_tf1_layers_checkpoint_with_optimizer_slots(tf, tmp_path):
    """tf.compat.v1.layers names (conv2d_transpose_1/kernel) and Adam slots."""
    graph = tf.Graph()
    with graph.as_default():
        z = tf.compat.v1.placeholder(tf.float32, X.shape)
        h = tf.compat.v1.layers.Dense(5)(z)
        h = tf.compat.v1.layers.Conv2DTranspose(6, 3, 2, "same", activation=tf.nn.relu)(h)
        h = tf.compat.v1.layers.Conv2DTranspose(2, 4, 2, "valid")(h)
        step = tf.compat.v1.train.get_or_create_global_step()
        train = tf.compat.v1.train.AdamOptimizer().minimize(tf.reduce_sum(h**2), step)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(train, {z: X})
            expected = session.run(h, {z: X})
            prefix = saver.save(session, str(tmp_path / "v1" / "model"))

    class V1Port(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(5)(x)
            x = jdeconv.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(x)
            return jdeconv.Conv2DTranspose(2, 4, strides=2)(x)

    names = io.read_tf_checkpoint(prefix)
    assert list(names) == [
        "conv2d_transpose/bias",
        "conv2d_transpose/kernel",
        "conv2d_transpose_1/bias",
        "conv2d_transpose_1/kernel",
        "dense/bias",
        "dense/kernel",
    ]
    # The directory: its `checkpoint` file holds the absolute path of tf.compat.v1.
    variables, report = io.load_tf_checkpoint(
        tmp_path / "v1", io.abstract_variables(V1Port(), X), return_report=True
    )
    np.testing.assert_allclose(V1Port().apply(variables, X), expected, rtol=1e-5, atol=1e-5)
    assert {"global_step", "beta1_power", "dense/kernel/Adam_1"} <= set(report.skipped)
    # A moved directory still finds its checkpoint.
    os.rename(tmp_path / "v1", tmp_path / "moved")
    io.load_tf_checkpoint(tmp_path / "moved", io.abstract_variables(V1Port(), X))


def test_tf_checkpoint_path_errors(tf, tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"load_tf_checkpoint: no TensorFlow checkpoint at '.*nowhere': neither a "
        r"directory nor a prefix with a 'nowhere.index' file\.",
    ):
        io.load_tf_checkpoint(tmp_path / "nowhere", {"params": {}})
    os.makedirs(tmp_path / "empty")
    with pytest.raises(
        ValueError,
        match=r"read_tf_checkpoint: '.*empty': a directory without a 'checkpoint' file and "
        r"with no \.index file; pass the prefix of the checkpoint to load\.",
    ):
        io.read_tf_checkpoint(tmp_path / "empty")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match=r"'.*weights\.bin': not a TensorFlow checkpoint"):
        io.read_tf_checkpoint(tmp_path / "weights.bin")
