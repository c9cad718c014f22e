"""Three ports end to end, as docs/porting.md tells a new user to do them.

The guide's own code blocks run here too, so that they cannot rot.

* A trained PyTorch decoder, with a grouped layer and ``output_padding``,
  from its saved state dict into :mod:`jdeconv.torch_compat` modules.
* A trained Keras decoder, from its ``.weights.h5`` into jdeconv's Keras-style
  layers.
* A ``flax.linen.ConvTranspose`` model, whose kernels are converted to
  jdeconv's layout.

Each port must reproduce the source model's output on the same input.
"""

from __future__ import annotations

import pathlib
import re
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv
import jdeconv.io
from jdeconv import convert, torch_compat


def test_pytorch_decoder(torch, tmp_path):
    # --- The PyTorch side: a decoder, trained a little, then saved.
    torch.manual_seed(0)

    class TorchDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 32 * 4 * 4)
            self.up1 = torch.nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
            self.bn1 = torch.nn.BatchNorm2d(16)
            self.up2 = torch.nn.ConvTranspose2d(16, 16, 4, stride=2, padding=1, groups=4)
            self.out = torch.nn.ConvTranspose2d(16, 3, 5, stride=1, padding=4, dilation=2)

        def forward(self, z):
            x = self.fc(z).view(-1, 32, 4, 4)
            x = torch.relu(self.bn1(self.up1(x)))
            x = torch.relu(self.up2(x))
            return torch.tanh(self.out(x))

    decoder = TorchDecoder()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    target_images = torch.rand(8, 3, 16, 16) * 2 - 1
    for _ in range(5):
        loss = (decoder(torch.randn(8, 16)) - target_images).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoder.eval()
    torch.save(decoder.state_dict(), tmp_path / "decoder.pt")

    z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    with torch.no_grad():
        expected = decoder(torch.tensor(z)).numpy()

    # --- The port: the same modules, names and arguments.
    class Decoder(nn.Module):
        @nn.compact
        def __call__(self, z):
            x = nn.Dense(32 * 4 * 4, name="fc")(z).reshape(-1, 32, 4, 4)
            x = torch_compat.ConvTranspose2d(
                32, 16, 3, stride=2, padding=1, output_padding=1, name="up1"
            )(x)
            x = nn.BatchNorm(use_running_average=True, axis=1, epsilon=1e-5, name="bn1")(x)
            x = nn.relu(x)
            x = torch_compat.ConvTranspose2d(16, 16, 4, stride=2, padding=1, groups=4, name="up2")(
                x
            )
            x = nn.relu(x)
            x = torch_compat.ConvTranspose2d(16, 3, 5, padding=4, dilation=2, name="out")(x)
            return jnp.tanh(x)

    model = Decoder()
    variables = jdeconv.io.load_torch_state_dict(
        tmp_path / "decoder.pt", jdeconv.io.abstract_variables(model, z)
    )
    y = jax.jit(model.apply)(variables, z)

    assert y.shape == expected.shape == (4, 3, 16, 16)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_keras_decoder(tf, tmp_path):
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("needs Keras 3")
    # --- The Keras side: a decoder, trained a little, then saved.
    keras.utils.set_random_seed(0)
    decoder = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(4 * 4 * 16, activation="relu"),
            keras.layers.Reshape((4, 4, 16)),
            keras.layers.Conv2DTranspose(12, 4, strides=2, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2DTranspose(6, 3, strides=2, padding="valid", output_padding=1),
            keras.layers.Conv2DTranspose(3, 3, padding="same", activation="sigmoid"),
        ]
    )
    decoder.compile("adam", "mse")
    rng = np.random.default_rng(0)
    decoder.fit(rng.standard_normal((32, 8)), rng.random((32, 18, 18, 3)), epochs=2, verbose=0)
    with warnings.catch_warnings():  # Inside Keras: np.array(variable) the NumPy 1 way.
        warnings.simplefilter("ignore", DeprecationWarning)
        decoder.save_weights(tmp_path / "decoder.weights.h5")

    z = rng.standard_normal((4, 8)).astype(np.float32)
    expected = np.asarray(decoder(z, training=False))

    # --- The port: jdeconv's layers take Keras's arguments.
    class Decoder(nn.Module):
        @nn.compact
        def __call__(self, z):
            x = nn.relu(nn.Dense(4 * 4 * 16)(z)).reshape(-1, 4, 4, 16)
            x = jdeconv.Conv2DTranspose(12, 4, strides=2, padding="same", activation="relu")(x)
            x = nn.BatchNorm(use_running_average=True, epsilon=1e-3)(x)
            x = jdeconv.Conv2DTranspose(6, 3, strides=2, padding="valid", output_padding=1)(x)
            return jdeconv.Conv2DTranspose(3, 3, padding="same", activation="sigmoid")(x)

    model = Decoder()
    variables = jdeconv.io.load_keras_weights(
        tmp_path / "decoder.weights.h5", jdeconv.io.abstract_variables(model, z)
    )
    y = jax.jit(model.apply)(variables, z)

    assert y.shape == expected.shape == (4, 18, 18, 3)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_flax_conv_transpose_model():
    # --- The Flax side: nn.ConvTranspose, flax's default transpose_kernel=False.
    class FlaxDecoder(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.ConvTranspose(16, (4, 4), strides=(2, 2), padding="SAME")(x))
            x = nn.ConvTranspose(
                8, (3, 3), strides=(2, 2), padding="VALID", kernel_dilation=(2, 2)
            )(x)
            x = nn.relu(x)
            return nn.ConvTranspose(3, (3, 3), padding="SAME", transpose_kernel=True)(x)

    x = np.random.default_rng(0).standard_normal((2, 5, 5, 4)).astype(np.float32)
    flax_model = FlaxDecoder()
    flax_variables = jax.jit(flax_model.init)(jax.random.key(0), x)
    expected = jax.jit(flax_model.apply)(flax_variables, x)

    # --- The port: jdeconv's layers, "SAME"/"VALID" unchanged, kernels converted.
    class Decoder(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jdeconv.Conv2DTranspose(16, 4, strides=2, padding="same", activation="relu")(x)
            x = jdeconv.Conv2DTranspose(
                8, 3, strides=2, padding="valid", dilation_rate=2, activation="relu"
            )(x)
            return jdeconv.Conv2DTranspose(3, 3, padding="same")(x)

    transpose_kernel = {"ConvTranspose_0": False, "ConvTranspose_1": False, "ConvTranspose_2": True}
    params = {
        f"Conv2DTranspose_{i}": {
            "kernel": convert.kernel_from_flax(layer["kernel"], transpose_kernel[name]),
            "bias": layer["bias"],
        }
        for i, (name, layer) in enumerate(flax_variables["params"].items())
    }
    y = jax.jit(Decoder().apply)({"params": params}, x)

    assert y.shape == expected.shape == (2, 23, 23, 3)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


GUIDE = pathlib.Path(__file__).parent.parent / "docs" / "porting.md"
GUIDE_BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(GUIDE_BLOCKS)))
def test_porting_guide_examples_run(index, torch, tf, tmp_path, monkeypatch):
    block = GUIDE_BLOCKS[index]
    if "import keras" in block:
        keras = pytest.importorskip("keras")
        if not keras.__version__.startswith("3."):
            pytest.skip("needs Keras 3")
    monkeypatch.chdir(tmp_path)  # The examples write their weight files here.
    exec(compile(block, f"{GUIDE.name}[block {index}]", "exec"), {"__name__": "guide"})


def test_porting_guide_has_the_examples():
    assert len(GUIDE_BLOCKS) >= 6
    for text in (
        "torch.save",
        "load_torch_state_dict",
        "save_weights",
        "load_keras_weights",
        "nn.ConvTranspose",
        "kernel_from_flax",
        "jax.lax.conv_transpose",
    ):
        assert any(text in block for block in GUIDE_BLOCKS), text
