"""Each method's three maps timed on their own, per suite layer: the data behind `auto`.

`method="auto"` chooses a lowering per map (`T` the transposed convolution,
`F` its input gradient, `K` its kernel gradient). This diagnostic binds each
map's primitive alone (`jdeconv._primitives`, private) for every method,
interleaved in one process in a seeded random order per round, medians of
`--rounds`, and
writes a markdown
table (`per_map.md` beside this file, or `--out`). The lhs-dilated lowering's
slow maps stop after three rounds.

Usage::

    python benchmarks/per_map.py                  # every layer of the suite
    python benchmarks/per_map.py --layers vae_dec,audio_up
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np
from layer_suite import LAYERS, Layer

from jdeconv import METHODS, _primitives, _shapes

HERE = Path(__file__).resolve().parent
MAPS = {
    "T": _primitives.transpose_conv_p,
    "F": _primitives.forward_conv_p,
    "K": _primitives.kernel_grad_p,
}


def geometry(layer: Layer) -> _shapes.ConvTransposeGeometry:
    n = layer.rank
    padding = layer.padding if isinstance(layer.padding, str) else tuple(map(tuple, layer.padding))
    return _shapes.make_geometry(
        "per_map",
        input_size=layer.input_size,
        kernel_size=(layer.kernel,) * n,
        output_size=layer.output_size,
        strides=(layer.stride,) * n,
        dilations=(1,) * n,
        padding=padding,
        channels_last=layer.channels_last,
        groups=layer.groups,
    )


def time_layer(layer: Layer, rounds: int) -> dict[tuple[str, str], float]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(layer.input_shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(layer.kernel_shape), jnp.float32)
    g = jnp.asarray(rng.standard_normal(layer.output_shape), jnp.float32)
    operands = {"T": (x, w), "F": (g, w), "K": (x, g)}
    params = dict(
        geometry=geometry(layer), precision=None, preferred_element_type=None, partitioned=False
    )
    calls = {}
    for name, primitive in MAPS.items():
        for method in METHODS:
            f = jax.jit(lambda a, b, p=primitive, m=method: p.bind(a, b, method=m, **params))
            f(*operands[name]).block_until_ready()
            calls[name, method] = (f, operands[name])
    times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    keys = list(calls)
    order = random.Random(0)
    for round_ in range(rounds):
        # A fresh order each round (seeded): a call right after one with the
        # same operands finds them in cache, so no method may always come
        # first for its map.
        order.shuffle(keys)
        for key in keys:
            f, args = calls[key]
            if round_ >= 3 and key[1] == "lhs_dilation":
                peers = [statistics.median(t) for k, t in times.items() if k[0] == key[0]]
                if statistics.median(times[key]) > 5 * min(peers):
                    continue
            start = time.perf_counter()
            f(*args).block_until_ready()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) * 1e3 for key, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", help="comma-separated layer names (default: all)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "per_map.md")
    args = parser.parse_args()
    names = set(args.layers.split(",")) if args.layers else None
    header = "| layer | map | " + " | ".join(METHODS) + " | fastest |"
    lines = [
        "# Per-map timings (ms)",
        "",
        "Command: `python benchmarks/per_map.py"
        + (f" --layers {args.layers}`" if args.layers else "`"),
        "",
        f"Versions: jax {jax.__version__}; medians of {args.rounds} interleaved rounds, float32.",
        "",
        header,
        "| --- | --- | " + " | ".join("---" for _ in METHODS) + " | --- |",
    ]
    for layer in LAYERS:
        if names and layer.name not in names:
            continue
        result = time_layer(layer, args.rounds)
        for name in MAPS:
            row = {m: result[name, m] for m in METHODS}
            fastest = min((m for m in METHODS if m != "auto"), key=row.__getitem__)
            cells = " | ".join(f"{row[m]:.2f}" for m in METHODS)
            lines.append(f"| {layer.name} | {name} | {cells} | {fastest} |")
        print(lines[-3:], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
