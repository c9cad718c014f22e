"""The demo: it trains for a few steps, the loss falls, the PNG is written."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("optax")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

import jdeconv
from jdeconv import demo


def _read_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_demo_trains_and_writes_png(tmp_path, capsys):
    out = tmp_path / "sub.png"
    status = demo.main(
        ["--steps", "40", "--num-images", "128", "--batch-size", "32", "--out", str(out)]
    )
    assert status == 0
    captured = capsys.readouterr()
    match = re.search(r"first (\d+\.\d+) -> final (\d+\.\d+)", captured.out)
    assert match, captured.out
    first, final = float(match.group(1)), float(match.group(2))
    assert final < 0.7 * first, (first, final)
    held_out = float(re.search(r"held-out (\d+\.\d+)", captured.out).group(1))
    assert held_out < first
    assert f"wrote {out}" in captured.out
    assert "40/40" in captured.err  # the progress bar reached the last step
    image = _read_png(out)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--steps",
        "--method",
        "--out",
        "--batch-size",
        "--learning-rate",
        "--num-images",
        "--latent-dim",
        "--seed",
        "--no-progress",
    ):
        assert option in text
    for method in jdeconv.METHODS:
        assert method in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "fft"], r"invalid choice: 'fft'"),
        (["--steps", "0"], r"--steps: must be a positive integer, got 0"),
        (["--num-images", "8", "--batch-size", "16"], r"--num-images \(8\) must be at least"),
    ],
    ids=["method", "steps", "too-few-images"],
)
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_python_dash_m_runs_the_package():
    result = subprocess.run(
        [sys.executable, "-m", "jdeconv.demo", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m jdeconv.demo")


def test_dataset_is_deterministic_and_varied():
    a = demo.make_dataset(16, seed=3)
    b = demo.make_dataset(16, seed=3)
    c = demo.make_dataset(16, seed=4)
    assert a.shape == (16, 32, 32, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0
    # Every image holds a figure brighter than its background.
    assert np.all(a.reshape(16, -1).max(axis=1) > 0.5)
    # The images differ from one another.
    assert np.all(np.std(a, axis=0).mean() > 0.1)


def test_dataset_errors():
    with pytest.raises(ValueError, match=r"make_dataset: `image_size` must be an int >= 8, got 4"):
        demo.make_dataset(2, image_size=4)
    with pytest.raises(ValueError, match=r"make_dataset: `num_images` must be an int >= 0"):
        demo.make_dataset(-1)


def test_autoencoder_errors():
    import jax
    import jax.numpy as jnp

    with pytest.raises(ValueError, match=r"Autoencoder: `image_size` must be a positive multiple"):
        demo.Autoencoder(image_size=20).init(jax.random.key(0), jnp.zeros((1, 20, 20, 3)))
    model = demo.Autoencoder(image_size=16, features=(4, 8), latent_dim=2)
    with pytest.raises(ValueError, match=r"Autoencoder: `images` must have shape"):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_decoder_is_made_of_jdeconv_layers():
    model = demo.Autoencoder(image_size=16, features=(4, 8), latent_dim=2, method="lhs_dilation")
    params = demo.init_params(model, np.zeros((1, 16, 16, 3), np.float32))
    assert params["deconv0"]["kernel"].shape == (4, 4, 4, 8)  # [kh, kw, filters, in]
    assert params["deconv1"]["kernel"].shape == (4, 4, 3, 4)


def test_train_step_is_pure_and_composable():
    """The step the data-parallel example reuses: unjitted, it composes with jit."""
    import jax
    import jax.numpy as jnp

    model = demo.Autoencoder(image_size=16, features=(4, 8), latent_dim=4)
    images = jnp.asarray(demo.make_dataset(8, image_size=16))
    params = demo.init_params(model, images)
    optimizer = demo.make_optimizer(1e-2, steps=20)
    step = jax.jit(demo.make_train_step(model, optimizer, jit=False))
    opt_state = optimizer.init(params)
    losses = []
    for _ in range(20):
        params, opt_state, loss = step(params, opt_state, images)
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]
    expected = demo.make_loss_fn(model)(params, images)
    np.testing.assert_allclose(step(params, opt_state, images)[2], expected, rtol=1e-5)


def test_train_errors():
    model = demo.Autoencoder(image_size=16, features=(4, 8), latent_dim=4)
    images = demo.make_dataset(4, image_size=16)
    with pytest.raises(ValueError, match=r"train: `steps` must be a positive int, got 0"):
        demo.train(model, images, steps=0)
    with pytest.raises(ValueError, match=r"train: `images` must hold at least `batch_size` = 8"):
        demo.train(model, images, steps=1, batch_size=8)
    with pytest.raises(
        ValueError,
        match=r"run: `method` must be None \(the default, 'auto'\) or one of .*'autotune'\), got 'fft'",
    ):
        demo.run(method="fft")
