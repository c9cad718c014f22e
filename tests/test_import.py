"""``jdeconv.io``: weights written by the real libraries, loaded into Flax models.

Each test writes its files with PyTorch, safetensors, Keras 3, Keras 2
(``tf_keras``) or TensorFlow, loads them with ``jdeconv.io`` and checks that
the Flax model then computes what the source model computes on the same
input. Bad files, shape mismatches and wrong layouts must fail with clear
errors.
"""

from __future__ import annotations

import os
import warnings
import zipfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv
from jdeconv import io, torch_compat

Z = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def keras3():
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("needs Keras 3")
    return keras


def keras_save(save, path):
    """Keras 3 saving, quiet about a NumPy 2 deprecation inside Keras itself."""
    with warnings.catch_warnings():
        # Keras's TensorFlow backend calls np.array(variable) the NumPy 1 way.
        warnings.simplefilter("ignore", DeprecationWarning)
        save(path)


@pytest.fixture(scope="module")
def tf_keras(tf):
    return pytest.importorskip("tf_keras")


# --------------------------------------------------------------------------
# PyTorch


def torch_model(torch):
    torch.manual_seed(0)

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(3, 6, 4, stride=2, padding=1, groups=3)
            self.bn = torch.nn.BatchNorm2d(6)
            self.conv = torch.nn.Conv2d(6, 4, 3, padding=1)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x):
            x = torch.relu(self.bn(self.up(x)))
            return self.head(self.conv(x).permute(0, 2, 3, 1))  # Channels last at the end.

    model = Decoder()
    with torch.no_grad():  # Non-trivial statistics.
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    return model.eval()


class TorchCompatDecoder(nn.Module):
    """The PyTorch decoder with PyTorch's layouts: torch_compat and NCHW."""

    @nn.compact
    def __call__(self, x):
        x = torch_compat.ConvTranspose2d(3, 6, 4, stride=2, padding=1, groups=3, name="up")(x)
        x = nn.BatchNorm(use_running_average=True, axis=1, epsilon=1e-5, name="bn")(x)
        x = nn.relu(x).transpose(0, 2, 3, 1)
        x = nn.Conv(4, (3, 3), padding=1, name="conv")(x)
        return nn.Dense(2, name="head")(x)


class ChannelsLastDecoder(nn.Module):
    """The same decoder with jdeconv's and Flax's own layers, channels last."""

    @nn.compact
    def __call__(self, x):
        x = x.transpose(0, 2, 3, 1)
        # PyTorch k=4, s=2, p=1 is TensorFlow's "same" (both pad 1 before).
        x = jdeconv.Conv2DTranspose(6, 4, strides=2, padding="same", groups=3)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-5)(x))
        x = nn.Conv(4, (3, 3), padding=1)(x)
        return nn.Dense(2)(x)


@pytest.fixture(scope="module")
def torch_files(torch, tmp_path_factory):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    directory = tmp_path_factory.mktemp("torch")
    model = torch_model(torch)
    paths = {
        "pt": directory / "decoder.pt",
        "safetensors": directory / "decoder.safetensors",
        "checkpoint": directory / "checkpoint.pth",
    }
    torch.save(model.state_dict(), paths["pt"])
    safetensors_torch.save_file(model.state_dict(), paths["safetensors"])
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, paths["checkpoint"])
    with torch.no_grad():
        expected = model(torch.tensor(Z)).numpy()
    return model, paths, expected


@pytest.mark.parametrize("kind", ["pt", "safetensors", "checkpoint", "dict", "module"])
def test_torch_into_torch_compat(torch_files, kind):
    model, paths, expected = torch_files
    source = {"dict": model.state_dict(), "module": model}.get(kind) or paths[kind]
    target = io.abstract_variables(TorchCompatDecoder(), Z)
    variables = io.load_torch_state_dict(source, target)
    assert set(variables) == {"params", "batch_stats"}
    np.testing.assert_allclose(
        TorchCompatDecoder().apply(variables, Z), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_torch_into_channels_last_layers(torch_files, kind):
    _, paths, expected = torch_files
    model = ChannelsLastDecoder()
    # Auto-named modules (Conv2DTranspose_0, ...): matched by order.
    variables = io.load_torch_state_dict(paths[kind], model.init(jax.random.key(0), Z))
    np.testing.assert_allclose(model.apply(variables, Z), expected, rtol=1e-5, atol=1e-5)


def test_torch_prefix_mapping_and_strict(torch):
    encoder = torch.nn.Conv2d(3, 3, 3)
    decoder = torch.nn.ConvTranspose2d(3, 2, 3)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
    layer = torch_compat.ConvTranspose2d(3, 2, 3)
    target = layer.init(jax.random.key(0), Z)
    # The prefix selects the decoder and strips its name.
    loaded = io.load_torch_state_dict(state, target, prefix="decoder.")
    np.testing.assert_array_equal(loaded["params"]["weight"], decoder.weight.detach().numpy())
    # mapping: "" is the root module of the target; None skips a source layer.
    loaded = io.load_torch_state_dict(state, target, {"encoder": None, "decoder": ""})
    np.testing.assert_array_equal(loaded["params"]["bias"], decoder.bias.detach().numpy())
    with pytest.raises(ValueError, match=r"unmatched source layers: \['encoder'\]"):
        io.load_torch_state_dict(state, target, {"decoder": ""})
    loaded = io.load_torch_state_dict(state, target, {"decoder": ""}, strict=False)
    np.testing.assert_array_equal(loaded["params"]["bias"], decoder.bias.detach().numpy())


def test_torch_bfloat16_safetensors(torch, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    layer = torch.nn.ConvTranspose2d(3, 2, 3, stride=2).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    safetensors_torch.save_file(layer.state_dict(), path)
    target = torch_compat.ConvTranspose2d(3, 2, 3, stride=2, param_dtype=jnp.bfloat16).init(
        jax.random.key(0), Z
    )
    loaded = io.load_torch_state_dict(path, target)
    assert loaded["params"]["weight"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(
        np.asarray(loaded["params"]["weight"], np.float32), layer.weight.float().detach().numpy()
    )


def test_torch_pickled_code_is_refused(torch, tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(2), "payload": Payload()}, path)
    with pytest.raises(
        ValueError, match=r"load_torch_state_dict: cannot read .*evil\.pt.*weights_only=True"
    ):
        io.load_torch_state_dict(path, {"params": {"bias": jnp.zeros(2)}})
    assert not marker.exists()


def test_torch_errors(torch, tmp_path):
    layer = torch_compat.ConvTranspose2d(3, 2, 3, stride=2)
    target = layer.init(jax.random.key(0), Z)
    weight = np.ones((3, 2, 3, 3), np.float32)
    bias = np.ones(2, np.float32)

    with pytest.raises(
        FileNotFoundError, match=r"load_torch_state_dict: no such file: '.*missing\.pt'"
    ):
        io.load_torch_state_dict(tmp_path / "missing.pt", target)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match=r"cannot read .* as a safetensors file"):
        io.load_torch_state_dict(garbage, target)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"holds a list, not a state dict"):
        io.load_torch_state_dict(tmp_path / "list.pt", target)
    with pytest.raises(
        ValueError, match="is not a state dict: expected a mapping of names to tensors"
    ):
        io.load_torch_state_dict({"epoch": 3, "lr": 0.1}, target)

    # A shape mismatch names the variable, the target and both shapes.
    message = (
        r"load_torch_state_dict: source layer '<root>' cannot fill target module '<root>': "
        r"shape mismatch: source variable 'weight' has shape \(3, 4, 3, 3\), but target "
        r"'params/weight' has shape \(3, 2, 3, 3\)\."
    )
    with pytest.raises(ValueError, match=message):
        io.load_torch_state_dict({"weight": np.ones((3, 4, 3, 3)), "bias": bias}, target)
    # A kernel already in jdeconv's layout, loaded into a PyTorch-layout module...
    mixed_up = {"up.weight": np.ones((3, 3, 2, 3)), "up.bias": bias}
    with pytest.raises(ValueError, match=r"shape mismatch: source variable 'up.weight'"):
        io.load_torch_state_dict(mixed_up, target)
    # ...or a PyTorch kernel whose target is a jdeconv layer but in which the
    # source is already converted: the message says the raw shape fits.
    jdeconv_layer = jdeconv.Conv2DTranspose(2, 3, strides=2)
    jdeconv_target = jdeconv_layer.init(jax.random.key(0), Z.transpose(0, 2, 3, 1))
    converted = {"weight": np.ones((3, 3, 2, 3)), "bias": bias}
    with pytest.raises(
        ValueError,
        match="the source's own shape matches: is the source already in the target's layout",
    ):
        io.load_torch_state_dict(converted, jdeconv_target)

    state = {"up.weight": weight, "up.bias": bias}
    with pytest.raises(
        ValueError,
        match=r"`mapping` names source layer 'down', which the source does not have; its layers are \['up'\]",
    ):
        io.load_torch_state_dict(state, target, {"down": ""})
    with pytest.raises(
        ValueError,
        match=r"`mapping` sends 'up' to target module 'Conv_0', which the target does not have",
    ):
        io.load_torch_state_dict(state, target, {"up": "Conv_0"})
    with pytest.raises(ValueError, match=r"no variable name starts with prefix 'decoder\.'"):
        io.load_torch_state_dict(state, target, prefix="decoder.")
    with pytest.raises(
        TypeError, match=r"`target` must be Flax variables with a 'params' collection"
    ):
        io.load_torch_state_dict(state, target["params"])
    with pytest.raises(ValueError, match=r"its 'running_mean' has no place in the target"):
        io.load_torch_state_dict(state | {"up.running_mean": bias}, target)


def test_matching_by_order_reports_sorted_targets(torch):
    """jax.eval_shape sorts modules by name; the message says what to do."""

    class Two(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2, name="a_second")(nn.Dense(3, name="z_first")(x))

    x = jnp.ones((1, 4))
    state = {
        "0.weight": np.ones((3, 4)),
        "0.bias": np.ones(3),
        "1.weight": np.ones((2, 3)),
        "1.bias": np.ones(2),
    }
    loaded = io.load_torch_state_dict(state, io.abstract_variables(Two(), x))
    assert loaded["params"]["z_first"]["kernel"].shape == (4, 3)
    with pytest.raises(ValueError, match=r"`jax\.eval_shape` and `jax\.jit` sort them by name"):
        io.load_torch_state_dict(state, jax.eval_shape(Two().init, jax.random.key(0), x))


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
    weights, archive = directory / "model.weights.h5", directory / "model.keras"
    keras_save(model.save_weights, weights)
    keras_save(model.save, archive)
    x = Z.transpose(0, 2, 3, 1)
    return weights, archive, np.asarray(model(x, training=False)), x


@pytest.mark.parametrize("which", ["weights", "keras"])
def test_keras3_nested_model(keras3_files, which):
    weights, archive, expected, x = keras3_files
    path = weights if which == "weights" else archive
    names = io.read_keras_weights(path)
    assert {"stem/proj/0", "block/up/0", "block/norm/3", "rgb/1"} <= set(names)
    target = io.abstract_variables(KerasPort(), x)
    # Names differ in nesting, so they are mapped; "rgb" matches by name.
    mapping = {"stem/proj": "proj", "block/up": "up", "block/norm": "norm"}
    variables = io.load_keras_weights(path, target, mapping)
    np.testing.assert_allclose(KerasPort().apply(variables, x), expected, rtol=1e-5, atol=1e-5)
    # The HDF5 group path names a layer too, and the order decides the rest.
    variables = io.load_keras_weights(path, target, {"layers/sequential/layers/dense": "proj"})
    np.testing.assert_allclose(KerasPort().apply(variables, x), expected, rtol=1e-5, atol=1e-5)


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
    with pytest.raises(ValueError, match=r"matching by order is ambiguous for target module 'a'"):
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


def test_keras_file_errors(keras3_files, tmp_path):
    weights, _, _, x = keras3_files
    target = io.abstract_variables(KerasPort(), x)
    with pytest.raises(FileNotFoundError, match="load_keras_weights: no such file"):
        io.load_keras_weights(tmp_path / "nothing.weights.h5", target)
    not_hdf5 = tmp_path / "text.weights.h5"
    not_hdf5.write_text("hello")
    with pytest.raises(ValueError, match=r"is neither an HDF5 weights file nor a \.keras archive"):
        io.load_keras_weights(not_hdf5, target)
    archive = tmp_path / "empty.keras"
    with zipfile.ZipFile(archive, "w") as file:
        file.writestr("config.json", "{}")
    with pytest.raises(ValueError, match=r"is a zip archive without model.weights.h5"):
        io.load_keras_weights(archive, target)
    h5py = pytest.importorskip("h5py")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["data"] = np.zeros(3)
    with pytest.raises(ValueError, match="has neither Keras 3's layout"):
        io.load_keras_weights(other, target)
    with pytest.raises(ValueError, match=r"source layer 'rgb' cannot fill target module 'up'"):
        io.load_keras_weights(weights, target, {"rgb": "up"})


# --------------------------------------------------------------------------
# Keras 2 (tf_keras) and TensorFlow checkpoints


def keras2_model(keras):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Dense(5, name="proj")(inputs)
    x = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="up")(x)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2DTranspose(2, 4, strides=2, output_padding=1, name="rgb")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(1)
    model.get_layer("norm").set_weights(
        [rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6)]
    )
    return model


class Keras2Port(nn.Module):
    """Auto-named modules: matched by order."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(5)(x)
        x = jdeconv.Conv2DTranspose(6, 3, strides=2, padding="same")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-3)(x))
        return jdeconv.Conv2DTranspose(2, 4, strides=2, output_padding=1)(x)


def test_keras2_h5_and_tf_checkpoints(tf, tf_keras, tmp_path):
    model = keras2_model(tf_keras)
    x = Z.transpose(0, 2, 3, 1)
    expected = model(x, training=False).numpy()
    model.save_weights(tmp_path / "weights.h5")
    model.save_weights(str(tmp_path / "tf_format" / "ckpt"))  # TF checkpoint format.
    checkpoint = tf.train.Checkpoint(model=model, optimizer=tf_keras.optimizers.Adam())
    checkpoint_path = checkpoint.write(str(tmp_path / "object" / "ckpt"))
    target = io.abstract_variables(Keras2Port(), x)
    loaded = {
        "h5": io.load_keras_weights(tmp_path / "weights.h5", target),
        "tf format": io.load_tf_checkpoint(tmp_path / "tf_format", target),
        "object": io.load_tf_checkpoint(checkpoint_path, target, prefix="model/"),
    }
    assert "norm/moving_variance" in io.read_keras_weights(tmp_path / "weights.h5")
    for name, variables in loaded.items():
        np.testing.assert_allclose(
            Keras2Port().apply(variables, x), expected, rtol=1e-5, atol=1e-5, err_msg=name
        )


def test_keras2_full_model_h5(tf, tf_keras, tmp_path):
    model = keras2_model(tf_keras)
    x = Z.transpose(0, 2, 3, 1)
    path = tmp_path / "model.h5"
    with warnings.catch_warnings():  # tf_keras calls HDF5 model files legacy.
        warnings.simplefilter("ignore")
        model.save(path, save_format="h5")
    variables = io.load_keras_weights(path, io.abstract_variables(Keras2Port(), x))
    np.testing.assert_allclose(
        Keras2Port().apply(variables, x), model(x, training=False).numpy(), rtol=1e-5, atol=1e-5
    )


def test_tf1_layers_checkpoint_with_optimizer_slots(tf, tmp_path):
    """tf.compat.v1.layers names (conv2d_transpose_1/kernel) and Adam slots."""
    x = Z.transpose(0, 2, 3, 1)
    graph = tf.Graph()
    with graph.as_default():
        z = tf.compat.v1.placeholder(tf.float32, x.shape)
        h = tf.compat.v1.layers.Dense(5)(z)
        h = tf.compat.v1.layers.Conv2DTranspose(6, 3, 2, "same", activation=tf.nn.relu)(h)
        h = tf.compat.v1.layers.Conv2DTranspose(2, 4, 2, "valid")(h)
        train = tf.compat.v1.train.AdamOptimizer().minimize(tf.reduce_sum(h**2))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(train, {z: x})
            expected = session.run(h, {z: x})
            prefix = saver.save(session, str(tmp_path / "v1" / "model"))

    class Port(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(5)(x)
            x = jdeconv.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(x)
            return jdeconv.Conv2DTranspose(2, 4, strides=2)(x)

    names = io.read_tf_checkpoint(prefix)
    assert sorted(names) == [
        "conv2d_transpose/bias",
        "conv2d_transpose/kernel",
        "conv2d_transpose_1/bias",
        "conv2d_transpose_1/kernel",
        "dense/bias",
        "dense/kernel",
    ]
    variables = io.load_tf_checkpoint(tmp_path / "v1", io.abstract_variables(Port(), x))
    np.testing.assert_allclose(Port().apply(variables, x), expected, rtol=1e-5, atol=1e-5)


def test_tf_checkpoint_errors(tf, tmp_path):
    with pytest.raises(ValueError, match="load_tf_checkpoint: cannot read a TensorFlow checkpoint"):
        io.load_tf_checkpoint(tmp_path / "nowhere", {"params": {}})
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="cannot read a TensorFlow checkpoint"):
        io.read_tf_checkpoint(tmp_path / "empty")
