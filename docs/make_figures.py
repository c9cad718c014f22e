"""Draws the figures of the documentation: ``python docs/make_figures.py``.

``docs/images/transposed_conv.png`` shows, for one spatial dimension, how
``conv1d_transpose`` maps its input to its output, in the two equivalent ways
the semantics page describes: each input element scattering a copy of the
kernel into the output, and a stride-1 convolution of the stride-dilated,
padded input with the flipped kernel. The numbers printed in the output cells
are computed by jdeconv itself, and the script checks them against both
drawings before it writes the file.
"""

from __future__ import annotations

import pathlib

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

import jdeconv

HERE = pathlib.Path(__file__).parent

# The example: I = 4, k = 3, s = 2, "SAME", O = 8. Then p = 0, and the
# equivalent convolution pads the dilated input by 2 before and 1 after.
X = np.array([1.0, 2.0, 3.0, 4.0])
W = np.array([1.0, 10.0, 100.0])
STRIDE, OUT = 2, 8
COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52")


def _cell(axes, x, y, text, colour="white", width=0.9, height=0.9, size=9, edge="0.3"):
    axes.add_patch(Rectangle((x, y), width, height, facecolor=colour, edgecolor=edge, lw=1))
    axes.text(x + width / 2, y + height / 2, text, ha="center", va="center", fontsize=size)


def _result() -> np.ndarray:
    x = X.reshape(1, -1, 1)
    w = W.reshape(-1, 1, 1)  # [width, out_channels, in_channels]
    y = jdeconv.conv1d_transpose(x, w, (1, OUT, 1), strides=STRIDE, padding="SAME")
    return np.asarray(y).reshape(-1)


def _check(y: np.ndarray) -> tuple[int, int, int]:
    """Checks jdeconv against the two constructions drawn; returns (p, before, after)."""
    k = len(W)
    need = max(0, (len(X) - 1) * STRIDE + k - OUT)
    p = need // 2
    scatter = np.zeros(OUT)
    for j, xj in enumerate(X):
        for t, wt in enumerate(W):
            if 0 <= j * STRIDE + t - p < OUT:
                scatter[j * STRIDE + t - p] += xj * wt
    dilated = np.zeros((len(X) - 1) * STRIDE + 1)
    dilated[::STRIDE] = X
    before = k - 1 - p
    after = OUT + k - 1 - len(dilated) - before
    padded = np.concatenate([np.zeros(before), dilated, np.zeros(after)])
    gather = np.array([padded[i : i + k] @ W[::-1] for i in range(OUT)])
    np.testing.assert_allclose(y, scatter)
    np.testing.assert_allclose(y, gather)
    return p, before, after


def transposed_conv(path: pathlib.Path) -> None:
    """Draws the 1-d transposed convolution in its scatter and gather forms."""
    y = _result()
    p, before, after = _check(y)
    k = len(W)
    figure = Figure(figsize=(10, 6.4), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=(1, 1))

    # Scatter form: y[j*s + t - p] += x[j] * w[t].
    top.set_title(
        "Scatter form:  y[j·s + t - p] += x[j] · w[t]     "
        f"(I = {len(X)}, k = {k}, s = {STRIDE}, padding 'SAME', O = {OUT}, so p = {p})",
        fontsize=10,
        loc="left",
    )
    for j, xj in enumerate(X):
        _cell(top, j * STRIDE + 0.5, 3.0, f"x[{j}]\n{xj:g}", COLOURS[j])
    for i in range(OUT + 1):
        inside = i < OUT
        _cell(
            top,
            i,
            0.0,
            f"y[{i}]\n{y[i]:g}" if inside else "cropped",
            "white" if inside else "0.92",
            edge="0.3" if inside else "0.7",
            size=9 if inside else 7,
        )
    for j in range(len(X)):
        for t in range(k):
            target = j * STRIDE + t - p
            start = (j * STRIDE + 0.95, 3.0)
            end = (target + 0.45, 0.9)
            top.add_patch(
                FancyArrowPatch(
                    start,
                    end,
                    arrowstyle="-|>",
                    mutation_scale=9,
                    color=COLOURS[j],
                    lw=1.2,
                    alpha=0.35 if target >= OUT else 0.9,
                )
            )
            middle = (0.55 * start[0] + 0.45 * end[0], 1.95 + 0.12 * (t - 1))
            top.text(
                *middle,
                f"w[{t}]",
                color=COLOURS[j],
                fontsize=7,
                ha="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
            )
    top.text(OUT + 1.2, 3.45, "input x", fontsize=9, va="center")
    top.text(OUT + 1.2, 0.45, "output y", fontsize=9, va="center")
    top.set_xlim(-0.3, OUT + 2.6)
    top.set_ylim(-0.2, 4.1)

    # Gather form: a stride-1 convolution of the dilated, padded input with flip(w).
    bottom.set_title(
        "Gather form:  insert s - 1 zeros between inputs, pad by "
        f"k_eff - 1 - p = {before} before and {after} after,\n"
        "then slide the flipped kernel over it (a stride-1 convolution)",
        fontsize=10,
        loc="left",
    )
    dilated = [0.0] * before
    owners = [None] * before
    for j, xj in enumerate(X):
        dilated += [xj] + ([0.0] * (STRIDE - 1) if j < len(X) - 1 else [])
        owners += [j] + ([None] * (STRIDE - 1) if j < len(X) - 1 else [])
    dilated += [0.0] * after
    owners += [None] * after
    for i, (value, owner) in enumerate(zip(dilated, owners)):
        label = f"x[{owner}]\n{value:g}" if owner is not None else "0"
        _cell(bottom, i, 3.0, label, COLOURS[owner] if owner is not None else "0.92")
    shown = 3
    for t in range(k):
        _cell(bottom, shown + t, 1.7, f"w[{k - 1 - t}]", "#F2E6A0", height=0.6, size=8)
    bottom.text(shown + k + 0.2, 2.0, f"flipped kernel at y[{shown}]", fontsize=8, va="center")
    for i in range(OUT):
        _cell(bottom, i, 0.0, f"y[{i}]\n{y[i]:g}", "#F2E6A0" if i == shown else "white")
    bottom.add_patch(
        Rectangle((shown - 0.05, 2.95), k - 0.0, 1.0, fill=False, edgecolor="black", lw=1.6)
    )
    bottom.text(len(dilated) + 0.3, 3.45, "dilated, padded x", fontsize=9, va="center")
    bottom.text(len(dilated) + 0.3, 0.45, "output y", fontsize=9, va="center")
    bottom.text(
        0.0,
        -0.55,
        f"y[{shown}] = "
        + " + ".join(f"{dilated[shown + t]:g}·w[{k - 1 - t}]" for t in range(k))
        + f" = {y[shown]:g}      (w = {W.astype(int).tolist()}, x = {X.astype(int).tolist()})",
        fontsize=9,
    )
    bottom.set_xlim(-0.3, OUT + 2.6 + 2)
    bottom.set_ylim(-0.9, 4.1)
    for axes in (top, bottom):
        axes.set_aspect("equal")
        axes.axis("off")
    figure.savefig(path, dpi=110)


def main() -> None:
    """Writes every figure into ``docs/images``."""
    images = HERE / "images"
    images.mkdir(exist_ok=True)
    transposed_conv(images / "transposed_conv.png")
    print(f"wrote {images / 'transposed_conv.png'}")


if __name__ == "__main__":
    main()
