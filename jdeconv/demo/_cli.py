"""``python -m jdeconv.demo``: train the autoencoder, report the loss, write the PNG."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

from jdeconv._lowerings import ACCEPTED_METHODS, check_method
from jdeconv.demo._data import make_dataset
from jdeconv.demo._model import Autoencoder
from jdeconv.demo._plot import save_figure
from jdeconv.demo._train import train

DEFAULT_STEPS = 2000
_HELD_OUT_SEED = 10_000  # the held-out images come from a seed of their own


class DemoResult(NamedTuple):
    """What :func:`run` returns."""

    losses: np.ndarray
    """The training loss of every step."""
    held_out_loss: float
    """The reconstruction error on images not seen in training."""
    seconds: float
    """Wall-clock time of the training loop, compilation included."""
    path: str
    """Where the PNG was written."""


def run(
    *,
    steps: int = DEFAULT_STEPS,
    method: str = "auto",
    out: str | os.PathLike[str] = "demo.png",
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    num_images: int = 8192,
    latent_dim: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> DemoResult:
    """Trains the demo's :class:`~jdeconv.demo.Autoencoder` and writes its PNG.

    The images come from :func:`~jdeconv.demo.make_dataset`; 256 more, drawn
    with another seed, measure the held-out error, and 8 of them are shown in
    the PNG with their reconstructions, above the loss curve.

    Args:
      steps: the number of training steps.
      method: the lowering of the transposed convolutions: ``"auto"``,
        ``"autotune"`` or one of :data:`jdeconv.METHODS`.
      out: where to write the PNG.
      batch_size: images per step.
      learning_rate: the peak learning rate.
      num_images: the number of training images.
      latent_dim: the size of the autoencoder's code.
      seed: seed of the data, the initialisation and the shuffling.
      progress: whether to show the progress bar.

    Returns:
      A :class:`DemoResult`.

    Raises:
      ValueError: if ``method`` is not one of those, or a size is out of range.

    Example:
      >>> import os, tempfile
      >>> from jdeconv.demo import run
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     result = run(steps=30, out=os.path.join(folder, "demo.png"), batch_size=16,
      ...                  num_images=64, latent_dim=16, progress=False)
      ...     print(os.path.exists(result.path))
      True
      >>> bool(result.losses[-5:].mean() < result.losses[:5].mean())
      True
    """
    check_method("run", "method", method)
    images = make_dataset(num_images, seed=seed)
    held_out = make_dataset(256, seed=_HELD_OUT_SEED + seed)
    model = Autoencoder(latent_dim=latent_dim, method=method)
    result = train(
        model,
        images,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        progress=progress,
    )
    reconstructions = np.asarray(jax.jit(model.apply)({"params": result.params}, held_out))
    held_out_loss = float(np.mean((reconstructions - held_out) ** 2))
    path = os.fspath(out)
    save_figure(
        path,
        held_out[:8],
        reconstructions[:8],
        result.losses,
        held_out_loss=held_out_loss,
        title=(
            f"jdeconv demo: autoencoder with Conv2DTranspose decoder (method={method!r}), "
            f"{steps} steps, held-out images"
        ),
    )
    return DemoResult(result.losses, held_out_loss, result.seconds, path)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m jdeconv.demo``.

    Example:
      >>> from jdeconv.demo import build_parser
      >>> build_parser().parse_args(["--steps", "100"]).steps
      100
    """
    parser = argparse.ArgumentParser(
        prog="python -m jdeconv.demo",
        description=(
            "Train a small convolutional autoencoder, whose decoder is made of "
            "jdeconv.Conv2DTranspose layers, on procedurally drawn shapes and digits "
            "(no download). Shows a progress bar, reports the loss and writes a PNG of "
            "held-out images, their reconstructions and the loss curve. Runs on the "
            "accelerator JAX sees (GPU or TPU), else on the CPU."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--steps", type=_positive_int, default=DEFAULT_STEPS, help="number of training steps"
    )
    parser.add_argument(
        "--method",
        choices=ACCEPTED_METHODS,
        default="auto",
        help="lowering of the transposed convolutions: auto, autotune (measured on this "
        "machine) or one of jdeconv.METHODS",
    )
    parser.add_argument("--out", default="demo.png", metavar="PATH", help="where to write the PNG")
    parser.add_argument(
        "--batch-size", type=_positive_int, default=64, help="images per training step"
    )
    parser.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=3e-3,
        help="peak learning rate of Adam (warm-up, then cosine decay)",
    )
    parser.add_argument(
        "--num-images", type=_positive_int, default=8192, help="number of training images to draw"
    )
    parser.add_argument(
        "--latent-dim", type=_positive_int, default=128, help="size of the autoencoder's code"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the data, the initialisation and the shuffling"
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the demo with command-line arguments; returns the exit status.

    Args:
      argv: the arguments, without the program name; ``None`` reads
        ``sys.argv``.

    Returns:
      0 on success.
    """
    args = build_parser().parse_args(argv)
    if args.num_images < args.batch_size:
        build_parser().error(
            f"--num-images ({args.num_images}) must be at least --batch-size ({args.batch_size})"
        )
    device = jax.devices()[0]
    print(
        f"jdeconv demo: training an autoencoder on {args.num_images} drawn 32x32 images "
        f"for {args.steps} steps on {device.platform.upper()} ({device.device_kind}), "
        f"method={args.method!r}.",
        flush=True,
    )
    start = time.perf_counter()
    result = run(
        steps=args.steps,
        method=args.method,
        out=args.out,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        num_images=args.num_images,
        latent_dim=args.latent_dim,
        seed=args.seed,
        progress=not args.no_progress,
    )
    losses = result.losses
    window = max(1, min(50, len(losses) // 10))
    first, final = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    print(
        f"loss (mean squared error, mean of {window} steps): first {first:.5f} -> "
        f"final {final:.5f} ({first / final:.1f}x lower); held-out {result.held_out_loss:.5f}."
    )
    print(
        f"trained in {result.seconds:.1f} s ({len(losses) * args.batch_size / result.seconds:.0f} "
        f"images/s, compilation included); total {time.perf_counter() - start:.1f} s."
    )
    print(f"wrote {result.path}")
    sys.stdout.flush()
    return 0
