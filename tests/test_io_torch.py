"""``jdeconv.io`` and PyTorch: state dicts written by PyTorch and safetensors.

Each test writes its files with the real library, loads them with
``jdeconv.io`` and checks that the Flax model then computes what the PyTorch
model computes on the same input. Damaged and hostile files are in
``test_io_corpus.py``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeconv
from jdeconv import io, torch_compat

Z = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)


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
    optimizer = torch.optim.Adam(model.parameters())
    torch.save(
        {"epoch": 3, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict()},
        paths["checkpoint"],
    )
    with torch.no_grad():
        expected = model(torch.tensor(Z)).numpy()
    return model, paths, expected


@pytest.mark.parametrize("kind", ["pt", "safetensors", "checkpoint", "dict", "module"])
def test_torch_into_torch_compat(torch_files, kind):
    model, paths, expected = torch_files
    source = {"dict": model.state_dict(), "module": model}.get(kind) or paths[kind]
    target = io.abstract_variables(TorchCompatDecoder(), Z)
    variables, report = io.load_torch_state_dict(source, target, return_report=True)
    assert set(variables) == {"params", "batch_stats"}
    np.testing.assert_allclose(
        TorchCompatDecoder().apply(variables, Z), expected, rtol=1e-5, atol=1e-5
    )
    assert "bn.num_batches_tracked" in report.skipped
    if kind == "checkpoint":
        assert report.skipped[:2] == ("epoch", "optimizer")


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_torch_into_channels_last_layers(torch_files, kind):
    _, paths, expected = torch_files
    model = ChannelsLastDecoder()
    # Auto-named modules (Conv2DTranspose_0, ...): matched by order.
    variables = io.load_torch_state_dict(paths[kind], model.init(jax.random.key(0), Z))
    np.testing.assert_allclose(model.apply(variables, Z), expected, rtol=1e-5, atol=1e-5)


def test_read_torch_state_dict(torch_files):
    model, paths, _ = torch_files
    for kind in ("pt", "safetensors", "checkpoint"):
        arrays = io.read_torch_state_dict(paths[kind])
        assert set(arrays) == set(model.state_dict()), kind
        np.testing.assert_array_equal(arrays["up.weight"], model.up.weight.detach().numpy())


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
    loaded, report = io.load_torch_state_dict(
        state, target, {"decoder": ""}, strict=False, return_report=True
    )
    np.testing.assert_array_equal(loaded["params"]["bias"], decoder.bias.detach().numpy())
    assert report.unused == ("encoder.weight", "encoder.bias")


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


def test_torch_integer_and_complex_tensors_follow_the_dtype_policy(torch, tmp_path):
    layer = torch_compat.ConvTranspose2d(3, 2, 3)
    target = layer.init(jax.random.key(0), Z)
    path = tmp_path / "odd.pt"
    weight = torch.ones((3, 2, 3, 3))
    for bias in (
        torch.tensor([1, 2], dtype=torch.int64),
        torch.tensor([1 + 1j, 2], dtype=torch.complex64),
    ):
        torch.save({"weight": weight, "bias": bias}, path)
        with pytest.raises(
            ValueError,
            match=rf"load_torch_state_dict: '.*odd\.pt', entry 'bias': cannot fill target "
            rf"'params/bias': its dtype is {str(bias.dtype).removeprefix('torch.')}",
        ):
            io.load_torch_state_dict(path, target)
    torch.save({"weight": weight, "bias": torch.ones(2, dtype=torch.float8_e4m3fn)}, path)
    with pytest.raises(
        ValueError,
        match=r"'.*odd\.pt', entry 'bias': cannot convert it to a NumPy array: TypeError: ",
    ):
        io.load_torch_state_dict(path, target)


def test_torch_errors(torch, tmp_path):
    layer = torch_compat.ConvTranspose2d(3, 2, 3, stride=2)
    target = layer.init(jax.random.key(0), Z)
    bias = np.ones(2, np.float32)

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(
        ValueError,
        match=r"load_torch_state_dict: '.*list\.pt': it holds a list, not a state dict",
    ):
        io.load_torch_state_dict(tmp_path / "list.pt", target)

    # A shape mismatch names the file, the entry, the target and both shapes.
    torch.save({"weight": torch.ones((3, 4, 3, 3)), "bias": torch.ones(2)}, tmp_path / "wide.pt")
    message = (
        r"load_torch_state_dict: '.*wide\.pt', entry 'weight': source layer '<root>' cannot "
        r"fill target module '<root>': shape mismatch: it has shape \(3, 4, 3, 3\), but target "
        r"'params/weight' has shape \(3, 2, 3, 3\)\."
    )
    with pytest.raises(ValueError, match=message):
        io.load_torch_state_dict(tmp_path / "wide.pt", target)
    # A kernel already in jdeconv's layout, loaded into a PyTorch-layout module...
    mixed_up = {"up.weight": np.ones((3, 3, 2, 3)), "up.bias": bias}
    with pytest.raises(
        ValueError, match=r"fits no next source layer: 'up': entry 'up.weight': shape mismatch"
    ):
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

    state = {"up.weight": np.ones((3, 2, 3, 3)), "up.bias": bias}
    with pytest.raises(
        ValueError,
        match=r"`mapping` sends 'up' to target module 'Conv_0', which the target does not have",
    ):
        io.load_torch_state_dict(state, target, {"up": "Conv_0"})
    with pytest.raises(ValueError, match=r"no variable name starts with prefix 'decoder\.'"):
        io.load_torch_state_dict(state, target, prefix="decoder.")
    with pytest.raises(
        ValueError,
        match=r"'up': entry 'up.running_mean': its 'running_mean' has no place in the target",
    ):
        io.load_torch_state_dict(state | {"up.running_mean": bias}, target)


def test_matching_by_order_reports_sorted_targets():
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
