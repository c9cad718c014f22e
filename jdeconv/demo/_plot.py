"""The demo's picture: inputs, reconstructions and the loss curve, in one PNG."""

from __future__ import annotations

import os

import numpy as np


def save_figure(
    path: str | os.PathLike[str],
    inputs: np.ndarray,
    reconstructions: np.ndarray,
    losses: np.ndarray,
    *,
    held_out_loss: float | None = None,
    title: str = "",
) -> None:
    """Writes a PNG with images over their reconstructions, and the loss curve.

    Args:
      path: where to write the PNG; its folder must exist.
      inputs: images ``(n, H, W, 3)`` (or ``(n, H, W, 1)``) with values in
        ``[0, 1]``; up to 8 of them are shown, one per column.
      reconstructions: the model's outputs for ``inputs``, same shape.
      losses: the training loss of every step.
      held_out_loss: if given, drawn as a horizontal line on the loss plot.
      title: the figure's title.

    Raises:
      ValueError: if ``inputs`` and ``reconstructions`` differ in shape.

    Example:
      >>> import pathlib, tempfile, numpy as np
      >>> from jdeconv.demo import save_figure
      >>> images = np.zeros((4, 8, 8, 3))
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = pathlib.Path(folder, "figure.png")
      ...     save_figure(path, images, images, np.linspace(1.0, 0.1, 50))
      ...     print(path.read_bytes()[1:4])
      b'PNG'
    """
    # The object-oriented API draws without pyplot's global state or a GUI backend.
    from matplotlib.figure import Figure

    inputs, reconstructions = np.asarray(inputs), np.asarray(reconstructions)
    if inputs.shape != reconstructions.shape:
        raise ValueError(
            f"save_figure: `inputs` and `reconstructions` must have the same shape, "
            f"got {inputs.shape} and {reconstructions.shape}."
        )
    losses = np.asarray(losses, np.float64)
    columns = max(1, min(8, len(inputs)))
    figure = Figure(figsize=(1.1 * max(columns, 6), 5.0), layout="constrained")
    grid = figure.add_gridspec(3, columns, height_ratios=(1, 1, 2.1))
    for row, (label, batch) in enumerate((("input", inputs), ("reconstruction", reconstructions))):
        for column in range(columns):
            axes = figure.add_subplot(grid[row, column])
            image = np.clip(batch[column], 0.0, 1.0)
            axes.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(label, fontsize=9)
    axes = figure.add_subplot(grid[2, :])
    steps = np.arange(1, len(losses) + 1)
    axes.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss per step")
    window = min(50, len(losses))
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axes.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"mean of {window} steps")
    if held_out_loss is not None:
        axes.axhline(held_out_loss, color="tab:orange", linestyle="--", label="held-out loss")
    if len(losses) and np.all(losses > 0):
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("mean squared error")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper right", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)
