"""Layer kinds decide matching by order where shapes cannot.

A small U-Net whose convolutions and transposed convolutions all have kernels of one
shape (3, 3, 4, 4) is saved by Keras 3 (``.weights.h5``, ``.keras``), tf_keras
(``.h5`` weights and whole model, ``.weights.h5``) and TensorFlow
(``tf.train.Checkpoint``) and loaded into its Flax port with no ``mapping``. In the
files that number each class of layer apart (Keras 3's), every convolution could
fill every module by shape: only the kinds tell them apart. The gallery of
``examples/ported`` never builds this model.
"""

from __future__ import annotations

import warnings

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv
from jdeconv import io
from jdeconv.io import _kinds

X = np.random.default_rng(2121).standard_normal((2, 8, 8, 4)).astype(np.float32)


def unet(keras):
    """Two strided convolutions down, two transposed ones up, a skip added, a norm.

    The layers are named (Keras numbers default names per process), and not after
    their classes: the kinds come from the files.
    """
    keras.utils.set_random_seed(21)
    layers = keras.layers
    inputs = keras.Input((8, 8, 4))
    skip = layers.Conv2D(4, 3, strides=2, padding="same", name="down1")(inputs)
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="down2")(layers.LeakyReLU()(skip))
    x = layers.BatchNormalization(name="norm")(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="up1")(x)
    x = layers.Add()([x, skip])
    outputs = layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="up2")(x)
    model = keras.Model(inputs, outputs)
    norm = model.get_layer("norm")
    rng = np.random.default_rng(3)
    norm.set_weights(
        [rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)]
    )
    return model


class UNet(nn.Module):
    """The port, with modules that Flax names after their classes."""

    @nn.compact
    def __call__(self, x):
        skip = nn.Conv(4, (3, 3), strides=2, padding="SAME")(x)
        x = nn.Conv(4, (3, 3), strides=2, padding="SAME")(nn.leaky_relu(skip, 0.3))
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3)(x)
        x = jdeconv.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
        return jdeconv.Conv2DTranspose(4, 3, strides=2, padding="same")(x + skip)


def save(save_function, path, **kwargs):
    with warnings.catch_warnings():  # Keras's own deprecation warnings.
        warnings.simplefilter("ignore")
        save_function(str(path), **kwargs)
    return path


@pytest.fixture(scope="module")
def saved(tf, tmp_path_factory):
    """Each format's file, with the output of the model that wrote it."""
    keras = pytest.importorskip("keras")
    tf_keras = pytest.importorskip("tf_keras")
    directory = tmp_path_factory.mktemp("unet")
    files = {}
    model = unet(keras)
    files["keras3 .weights.h5"] = save(model.save_weights, directory / "k3.weights.h5")
    files["keras3 .keras"] = save(model.save, directory / "k3.keras")
    files["keras3 tf.train.Checkpoint"] = tf.train.Checkpoint(model=model).write(
        str(directory / "k3" / "ckpt")
    )
    keras3_output = np.asarray(model(X, training=False))
    model = unet(tf_keras)
    files["tf_keras .weights.h5"] = save(model.save_weights, directory / "k2.weights.h5")
    files["tf_keras .h5 weights"] = save(model.save_weights, directory / "k2w.h5")
    files["tf_keras .h5 model"] = save(model.save, directory / "k2.h5", save_format="h5")
    files["tf_keras tf.train.Checkpoint"] = tf.train.Checkpoint(model=model).save(
        str(directory / "k2" / "ckpt")
    )
    tf_keras_output = model(X, training=False).numpy()
    return files, {"keras3": keras3_output, "tf_keras": tf_keras_output}


FORMATS = [
    "keras3 .weights.h5",
    "keras3 .keras",
    "keras3 tf.train.Checkpoint",
    "tf_keras .weights.h5",
    "tf_keras .h5 weights",
    "tf_keras .h5 model",
    "tf_keras tf.train.Checkpoint",
]


@pytest.mark.parametrize("file_format", FORMATS)
def test_kinds_decide_the_match(saved, file_format):
    files, outputs = saved
    expected = outputs[file_format.split()[0]]
    model = UNet()
    target = io.abstract_variables(model, X)
    load = io.load_tf_checkpoint if "Checkpoint" in file_format else io.load_keras_weights
    variables = load(files[file_format], target)
    np.testing.assert_allclose(model.apply(variables, X), expected, rtol=1e-5, atol=1e-5)


def test_read_lists_kinds(saved):
    files, _ = saved
    arrays, kinds = io.read_keras_weights(files["keras3 .weights.h5"], return_kinds=True)
    assert arrays.keys() == io.read_keras_weights(files["keras3 .weights.h5"]).keys()
    assert sorted(kinds.values()) == [
        "conv", "conv", "conv_transpose", "conv_transpose", "norm",
    ]  # fmt: skip
    assert kinds["up1"] == "conv_transpose"  # Keras 3's group path says.
    # tf_keras's weights-only .h5 holds no classes, and these names say nothing.
    _, kinds = io.read_keras_weights(files["tf_keras .h5 weights"], return_kinds=True)
    assert kinds["up1"] == kinds["down1"] == "conv or conv_transpose"
    # A whole-model file's config names the classes, whatever the layers' names.
    _, kinds = io.read_keras_weights(files["tf_keras .h5 model"], return_kinds=True)
    assert sorted(kinds.values()) == ["conv", "conv", "conv_transpose", "conv_transpose", "norm"]
    # An object graph numbers layers without classes: kernels say "a convolution".
    _, kinds = io.read_tf_checkpoint(files["tf_keras tf.train.Checkpoint"], return_kinds=True)
    assert kinds["model/layer_with_weights-0"] == "conv or conv_transpose"
    assert kinds["model/layer_with_weights-2"] == "norm"


def test_read_torch_lists_kinds(torch):
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(4, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ConvTranspose2d(4, 4, 3),
        torch.nn.Linear(4, 2),
    )
    _, kinds = io.read_torch_state_dict(module, return_kinds=True)
    assert kinds == {"0": "conv", "1": "norm", "2": "conv_transpose", "3": "dense"}
    _, kinds = io.read_torch_state_dict(module.state_dict(), return_kinds=True)
    assert kinds == {
        "0": "conv or conv_transpose",
        "1": "norm",
        "2": "conv or conv_transpose",
        "3": "dense or embedding",
    }


def test_a_module_from_torch_gives_its_classes(torch):
    """A transposed convolution whose weight fits an nn.Conv does not fill it."""
    torch.manual_seed(0)
    module = torch.nn.ModuleDict(
        {"up": torch.nn.ConvTranspose2d(4, 4, 3), "down": torch.nn.Conv2d(4, 4, 3)}
    )

    class Port(nn.Module):  # The other order: a mistake that shapes cannot see.
        @nn.compact
        def __call__(self, x):
            return jdeconv.Conv2DTranspose(4, 3)(nn.Conv(4, (3, 3), padding="VALID")(x))

    target = io.abstract_variables(Port(), X)
    with pytest.raises(
        ValueError,
        match=r"target module 'Conv_0' .* fits no next source layer: 'up': it is a "
        r"conv_transpose layer, the target a conv module",
    ):
        io.load_torch_state_dict(module, target)
    # A state dict holds no classes: the weights decide, and both fit.
    io.load_torch_state_dict(module.state_dict(), target)


def test_truly_ambiguous_still_errors(saved):
    """Modules named by hand keep no class: a conv and a conv transpose both fit."""
    files, outputs = saved

    class Named(nn.Module):
        @nn.compact
        def __call__(self, x):
            skip = nn.Conv(4, (3, 3), strides=2, padding="SAME", name="a")(x)
            x = nn.Conv(4, (3, 3), strides=2, padding="SAME", name="b")(nn.leaky_relu(skip, 0.3))
            x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="norm")(x)
            x = jdeconv.Conv2DTranspose(4, 3, strides=2, padding="same", name="c")(x)
            return jdeconv.Conv2DTranspose(4, 3, strides=2, padding="same", name="d")(x + skip)

    target = io.abstract_variables(Named(), X)
    with pytest.raises(
        ValueError,
        match=r"load_keras_weights: '.*k3\.weights\.h5': matching by order is ambiguous for "
        r"target module 'a': source layers \['down1', 'up1'\] all fit \(their "
        r"kinds: conv, conv_transpose; the module's: conv or conv_transpose\)\. Pass `mapping`, "
        r"e\.g\. mapping=\{'down1': 'a'\}",
    ):
        io.load_keras_weights(files["keras3 .weights.h5"], target)
    mapping = {"down1": "a", "down2": "b", "up1": "c"}
    variables = io.load_keras_weights(files["keras3 .weights.h5"], target, mapping)
    np.testing.assert_allclose(Named().apply(variables, X), outputs["keras3"], rtol=1e-5, atol=1e-5)


def test_kind_mismatch_is_reported(tmp_path):
    """A transposed convolution never fills a plain one, and the error says so."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "up.weights.h5"
    with h5py.File(path, "w") as file:  # What Keras 3 writes for one Conv2DTranspose.
        group = file.create_group("layers/conv2d_transpose/vars")
        group["0"], group["1"] = np.ones((3, 3, 4, 4), np.float32), np.zeros(4, np.float32)

    class Port(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Conv(4, (3, 3))(x)

    target = io.abstract_variables(Port(), X)
    with pytest.raises(
        ValueError,
        match=r"target module 'Conv_0' \(params/bias \(4,\), params/kernel \(3, 3, 4, 4\)\) "
        r"fits no next source layer: 'conv2d_transpose': it is a conv_transpose layer, the "
        r"target a conv module",
    ):
        io.load_keras_weights(path, target)
    # A mapping says what the user means: it is not second-guessed.
    variables = io.load_keras_weights(path, target, {"conv2d_transpose": "Conv_0"})
    assert variables["params"]["Conv_0"]["kernel"].shape == (3, 3, 4, 4)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sequential_2/conv2d_transpose_3", "conv_transpose"),
        ("layers/conv1d", "conv"),
        ("Down_4/Conv_0", "conv"),
        ("Up_0/ConvTranspose_1", "conv_transpose"),
        ("Conv2DTranspose_0", "conv_transpose"),
        ("BatchNorm_0", "norm"),
        ("dense_1", "dense"),
        ("Embed_0", "embedding"),
        ("up", "unknown"),
        ("conv", "unknown"),  # Not a default name: a user's.
    ],
)
def test_kind_of_names(name, kind):
    assert _kinds.describe(_kinds.of_name(name)) == kind


def test_kind_of_variables():
    conv = np.ones((3, 3, 4, 4))
    assert _kinds.of_source_variables("keras", {"kernel": np.ones((4, 2))}) == {"dense"}
    assert _kinds.of_source_variables("torch", {"weight": conv}) == {"conv", "conv_transpose"}
    assert _kinds.of_source_variables("torch", {"weight": np.ones(4), "bias": np.ones(4)}) == {
        "norm"
    }
    # A name that the variables contradict is ignored.
    assert _kinds.combine(frozenset({"dense"}), _kinds.of_name("conv2d_3")) == {"dense"}
    assert _kinds.of_target_leaves({("params", "weight"): jnp.ones((4, 4, 3, 3))}) == {
        "conv_transpose"
    }
