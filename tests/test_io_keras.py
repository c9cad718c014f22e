"""``jdeconv.io`` and Keras: ``.weights.h5`` and ``.keras`` (Keras 3), ``.h5`` (Keras 2).

Each test writes its files with Keras itself, loads them with ``jdeconv.io``
(which reads them with h5py only) and checks that the Flax model then
computes what the Keras model computes on the same input. Damaged and hostile
files are in ``test_io_corpus.py``.
"""

from __future__ import annotations

import warnings
import zipfile

import flax.linen as nn
import jax
import keras_ports
import numpy as np
import pytest

import jdeconv
from jdeconv import io, torch_compat

Z = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def keras3():
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("needs Keras 3")
    return keras


@pytest.fixture(scope="module")
def tf_keras(tf):
    return pytest.importorskip("tf_keras")


def keras_save(save, path, **kwargs):
    """Keras saving, quiet about Keras's own deprecation warnings."""
    with warnings.catch_warnings():
        # Keras's TensorFlow backend calls np.array(variable) the NumPy 1 way,
        # and tf_keras calls HDF5 model files legacy.
        warnings.simplefilter("ignore")
        save(path, **kwargs)


# --------------------------------------------------------------------------
# Keras 3


def keras3_model(keras):
    keras.utils.set_random_seed(0)

    @keras.saving.register_keras_serializable(package="jdeconv_tests")
    class Block(keras.layers.Layer):
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.filters = filters
            self.up = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name="up")
            self.norm = keras.layers.BatchNormalization(name="norm")

        def call(self, x):
            return keras.activations.relu(self.norm(self.up(x)))

        def get_config(self):
            return super().get_config() | {"filters": self.filters}

    inner = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Dense(5, name="proj")], name="stem"
    )
    inputs = keras.Input((4, 4, 3))
    x = inner(inputs)
    x = Block(6, name="block")(x)
    x = keras.layers.Dropout(0.5)(x)  # No weights.
    x = keras.layers.Conv2DTranspose(
        2, 4, strides=2, padding="valid", output_padding=1, name="rgb"
    )(x)
    model = keras.Model(inputs, x)
    norm = model.get_layer("block").norm
    rng = np.random.default_rng(1)
    norm.set_weights(
        [rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6)]
    )
    return model


class KerasPort(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(5, name="proj")(x)
        x = jdeconv.Conv2DTranspose(6, 3, strides=2, padding="same", name="up")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="norm")(x))
        return jdeconv.Conv2DTranspose(2, 4, strides=2, output_padding=1, name="rgb")(x)


@pytest.fixture(scope="module")
def keras3_files(keras3, tmp_path_factory):
    directory = tmp_path_factory.mktemp("keras3")
    model = keras3_model(keras3)
    model.compile(keras3.optimizers.Adam(), "mse")  # Optimizer state in the .keras file.
    model.fit(Z, np.zeros((2, 19, 19, 2)), epochs=1, verbose=0)
    weights, archive = directory / "model.weights.h5", directory / "model.keras"
    keras_save(model.save_weights, weights)
    keras_save(model.save, archive)
    return weights, archive, np.asarray(model(Z, training=False))


@pytest.mark.parametrize("which", ["weights", "keras"])
def test_keras3_nested_model(keras3_files, which):
    weights, archive, expected = keras3_files
    path = weights if which == "weights" else archive
    names = io.read_keras_weights(path)
    assert {"stem/proj/0", "block/up/0", "block/norm/3", "rgb/1"} <= set(names)
    target = io.abstract_variables(KerasPort(), Z)
    # Names differ in nesting, so they are mapped; "rgb" matches by name.
    mapping = {"stem/proj": "proj", "block/up": "up", "block/norm": "norm"}
    variables, report = io.load_keras_weights(path, target, mapping, return_report=True)
    np.testing.assert_allclose(KerasPort().apply(variables, Z), expected, rtol=1e-5, atol=1e-5)
    # The HDF5 group path names a layer too, and the order decides the rest.
    variables = io.load_keras_weights(path, target, {"layers/sequential/layers/dense": "proj"})
    np.testing.assert_allclose(KerasPort().apply(variables, Z), expected, rtol=1e-5, atol=1e-5)
    # The optimizer's state is skipped, and said to be.
    member = "model.weights.h5/" if which == "keras" else ""
    assert report.skipped and all(name.startswith(f"{member}optimizer/") for name in report.skipped)
    assert (f"{member}layers/conv2d_transpose/vars/1", "params/rgb/bias") in report.loaded


def test_keras3_ambiguous_order(keras3, tmp_path):
    """Two classes of layer whose weights fit the same module: order cannot tell."""
    keras = keras3
    model = keras.Sequential(
        [
            keras.Input((5, 4)),
            keras.layers.Conv1D(4, 3, padding="same", name="conv"),
            keras.layers.Conv1DTranspose(4, 3, padding="same", name="deconv"),
        ]
    )
    path = tmp_path / "ambiguous.weights.h5"
    keras_save(model.save_weights, path)

    class Port(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(4, (3,), padding="SAME", name="a")(x)
            return jdeconv.Conv1DTranspose(4, 3, padding="same", name="b")(x)

    x = np.random.default_rng(2).standard_normal((2, 5, 4)).astype(np.float32)
    target = io.abstract_variables(Port(), x)
    with pytest.raises(
        ValueError,
        match=r"load_keras_weights: '.*ambiguous\.weights\.h5': matching by order is "
        r"ambiguous for target module 'a'",
    ):
        io.load_keras_weights(path, target)
    variables = io.load_keras_weights(path, target, {"conv": "a", "deconv": "b"})
    np.testing.assert_allclose(Port().apply(variables, x), model(x), rtol=1e-5, atol=1e-5)


def test_keras3_into_torch_compat(keras3, tmp_path):
    """Keras kernels into a PyTorch-layout module are moved to PyTorch's layout."""
    keras = keras3
    model = keras.Sequential(
        [keras.Input((5, 5, 3)), keras.layers.Conv2DTranspose(4, 3, strides=2, name="up")]
    )
    path = tmp_path / "up.weights.h5"
    keras_save(model.save_weights, path)
    layer = torch_compat.ConvTranspose2d(3, 4, 3, stride=2)  # Keras "valid": padding 0.
    x = np.random.default_rng(5).standard_normal((2, 5, 5, 3)).astype(np.float32)
    variables = io.load_keras_weights(path, layer.init(jax.random.key(0), x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(
        variables["params"]["weight"], np.asarray(model.layers[0].kernel).transpose(3, 2, 0, 1)
    )
    y = layer.apply(variables, x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, model(x), rtol=1e-5, atol=1e-5)


def test_keras3_bias_free_layer_with_strict_false(keras3, tmp_path):
    """A layer without a bias fills the kernel; the target's bias keeps its value."""
    keras = keras3
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, use_bias=False)])
    path = tmp_path / "no_bias.weights.h5"
    keras_save(model.save_weights, path)
    target = nn.Dense(2).init(jax.random.key(0), np.ones((1, 3)))
    # Keras 3 does not name variables: one of two cannot be placed.
    with pytest.raises(
        ValueError,
        match=r"it has 1 variables, the target has 2 \(params/kernel \(3, 2\), params/bias "
        r"\(2,\)\), and Keras 3 files do not name variables to tell which one is missing",
    ):
        io.load_keras_weights(path, target)
    _, report = io.load_keras_weights(path, target, strict=False, return_report=True)
    assert report.unused == ("layers/dense/vars/0",)
    assert report.kept == ("params/kernel", "params/bias")
    target = nn.Dense(2, use_bias=False).init(jax.random.key(0), np.ones((1, 3)))
    variables = io.load_keras_weights(path, target)
    np.testing.assert_array_equal(variables["params"]["kernel"], model.layers[0].kernel)


def test_keras_file_errors(keras3_files, tmp_path):
    weights, _, _ = keras3_files
    target = io.abstract_variables(KerasPort(), Z)
    not_hdf5 = tmp_path / "text.weights.h5"
    not_hdf5.write_text("hello")
    with pytest.raises(
        ValueError,
        match=r"load_keras_weights: '.*text\.weights\.h5': h5py cannot open it as HDF5, and it "
        r"is not a \.keras zip archive: ",
    ):
        io.load_keras_weights(not_hdf5, target)
    archive = tmp_path / "empty.keras"
    with zipfile.ZipFile(archive, "w") as file:
        file.writestr("config.json", "{}")
    with pytest.raises(
        ValueError, match=r"'.*empty\.keras': a zip archive without model.weights.h5"
    ):
        io.load_keras_weights(archive, target)
    h5py = pytest.importorskip("h5py")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["data"] = np.zeros(3)
    with pytest.raises(
        ValueError, match=r"'.*other\.h5': the HDF5 file has neither Keras 3's layout"
    ):
        io.load_keras_weights(other, target)
    with pytest.raises(
        ValueError,
        match=r"'.*model\.weights\.h5', entry 'layers/conv2d_transpose/vars/0': source layer "
        r"'rgb' cannot fill target module 'up': shape mismatch",
    ):
        io.load_keras_weights(weights, target, {"rgb": "up"})
    with pytest.raises(ValueError, match=r"no layer name starts with prefix 'decoder/'"):
        io.load_keras_weights(weights, target, prefix="decoder/")


# --------------------------------------------------------------------------
# Keras 2 (tf_keras)


def keras2_model(keras):
    model = keras_ports.keras2_decoder(keras)
    rng = np.random.default_rng(1)
    model.get_layer("norm").set_weights(
        [rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6)]
    )
    return model


@pytest.mark.parametrize("kind", ["weights", "whole model"])
def test_keras2_h5(tf_keras, tmp_path, kind):
    model = keras2_model(tf_keras)
    model.compile(tf_keras.optimizers.Adam(), "mse")
    model.fit(Z, np.zeros((2, 19, 19, 2)), epochs=1, verbose=0)
    path = tmp_path / "model.h5"
    if kind == "weights":
        keras_save(model.save_weights, path)
    else:
        keras_save(model.save, path, save_format="h5")
    assert "norm/moving_variance" in io.read_keras_weights(path)
    variables, report = io.load_keras_weights(
        path, io.abstract_variables(keras_ports.Port(), Z), return_report=True
    )
    np.testing.assert_allclose(
        keras_ports.Port().apply(variables, Z),
        model(Z, training=False).numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    if kind == "whole model":  # The optimizer's weights are skipped, and said to be.
        assert report.skipped and all(n.startswith("optimizer_weights/") for n in report.skipped)
        assert report.loaded[0] == ("model_weights/proj/proj/kernel:0", "params/Dense_0/kernel")
