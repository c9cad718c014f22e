"""The demo's data set: small colour images drawn procedurally, no download."""

from __future__ import annotations

import numpy as np

#: The kinds of figure an image may hold.
SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "ring", "digit")

# The digits 0-9 of a 5 x 7 pixel font, one string per row ("#" is ink).
_FONT = (
    (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
)
_GLYPHS = np.array([[[c == "#" for c in row] for row in digit] for digit in _FONT])

_SUPERSAMPLE = 4  # sub-pixels per pixel along each axis, for smooth edges


def _coverage(
    kind: str, xs: np.ndarray, ys: np.ndarray, params: dict[str, np.ndarray]
) -> np.ndarray:
    """Whether each sub-pixel lies inside the figure: ``(n, H*ss, W*ss)`` booleans.

    ``xs``/``ys`` hold sub-pixel centres in pixel units; ``params`` holds one
    entry per figure: centre ``cx``, ``cy``, size ``r`` and ``digit``.
    """
    cx, cy, r = (params[key][:, None, None] for key in ("cx", "cy", "r"))
    dx, dy = xs - cx, ys - cy
    if kind == "disc":
        return dx**2 + dy**2 <= r**2
    if kind == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.8 * r
    if kind == "triangle":  # pointing up, apex at cy - r
        return (dy <= 0.6 * r) & (dy >= -r + 1.9 * np.abs(dx))
    if kind == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if kind == "digit":  # the glyph scaled to a height of 2 r
        scale = 2 * r / 7
        col = np.floor(dx / scale + 2.5).astype(np.int64)
        row = np.floor(dy / scale + 3.5).astype(np.int64)
        inside = (col >= 0) & (col < 5) & (row >= 0) & (row < 7)
        digit = params["digit"][:, None, None]
        return inside & _GLYPHS[digit, np.clip(row, 0, 6), np.clip(col, 0, 4)]
    raise ValueError(f"make_dataset: unknown figure kind {kind!r}.")


def make_dataset(
    num_images: int,
    *,
    image_size: int = 32,
    max_figures: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Draws colour images of discs, squares, triangles, rings and digits.

    Each image has a dark background of a random tint and one to
    ``max_figures`` figures of random kind, colour, size and place, later ones
    drawn over earlier ones. Edges are anti-aliased. The same ``seed`` gives the
    same images, on any machine.

    Args:
      num_images: how many images to draw.
      image_size: their height and width, in pixels (at least 8).
      max_figures: the largest number of figures in one image (at least 1).
      seed: seed of the NumPy random generator.

    Returns:
      A float32 array ``(num_images, image_size, image_size, 3)`` with values
      in ``[0, 1]``.

    Raises:
      ValueError: if an argument is out of range.

    Example:
      >>> from jdeconv.demo import make_dataset
      >>> images = make_dataset(4, image_size=16, seed=1)
      >>> images.shape, str(images.dtype)
      ((4, 16, 16, 3), 'float32')
      >>> bool(images.min() >= 0.0 and images.max() <= 1.0)
      True
    """
    for name, value, low in (
        ("num_images", num_images, 0),
        ("image_size", image_size, 8),
        ("max_figures", max_figures, 1),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"make_dataset: `{name}` must be an int >= {low}, got {value!r}.")
    rng = np.random.default_rng(seed)
    n, size = int(num_images), int(image_size)
    background = rng.uniform(0.0, 0.25, (n, 1, 1, 3))
    images = np.broadcast_to(background, (n, size, size, 3)).copy()
    sub = (np.arange(size * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
    ys, xs = sub[None, :, None], sub[None, None, :]
    count = rng.integers(1, max_figures + 1, n)
    for slot in range(max_figures):
        kinds = rng.integers(0, len(SHAPES), n)
        r = rng.uniform(0.18, 0.32, n) * size
        params = {
            "r": r,
            "cx": rng.uniform(r, size - r),
            "cy": rng.uniform(r, size - r),
            "digit": rng.integers(0, 10, n),
        }
        colour = rng.uniform(0.35, 1.0, (n, 3))
        colour[np.arange(n), rng.integers(0, 3, n)] = 1.0  # one bright channel
        for k, kind in enumerate(SHAPES):
            chosen = np.flatnonzero((kinds == k) & (count > slot))
            if chosen.size == 0:
                continue
            inside = _coverage(kind, xs, ys, {key: v[chosen] for key, v in params.items()})
            alpha = inside.reshape(chosen.size, size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(
                axis=(2, 4)
            )[..., None]
            images[chosen] = images[chosen] * (1 - alpha) + colour[chosen, None, None] * alpha
    return images.astype(np.float32)
