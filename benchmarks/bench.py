"""Transposed-convolution benchmark: jdeconv against JAX, TensorFlow and PyTorch, as users run it.

Four parts, each a section of ``RESULTS.md``:

- ``layers``: the forward pass and forward + backward of about fifteen layers
  taken from real models (``layer_suite.py``), for every jdeconv method,
  ``jax.lax.conv_transpose``, TensorFlow and PyTorch, and the peak memory of
  each compiled forward + backward.
- ``models``: one optimizer step of four whole models, each written for
  jdeconv (Flax + optax), Keras and PyTorch (``models.py``).
- ``compile``: trace + lower + compile time of ``auto``'s forward + backward
  against lax's, per layer, for a 10-layer decoder and per model
  (``compile_costs.py``).

By default everything runs in this one process, as training does: the
layers one after another in every round, contenders interleaved, medians
over rounds (``timing.py``). ``--isolate`` runs each layer and each model in
a fresh process instead, a diagnostic (glibc's malloc and the frameworks'
thread pools carry state from one call to the next; see README.md).

Usage::

    python benchmarks/bench.py            # the full report: RESULTS.md, results.png
    python benchmarks/bench.py --quick    # a few minutes, end to end, into scratch/
    python benchmarks/bench.py --layers vae_dec,audio_up --parts layers

Peers that are not installed are skipped, with a note in the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import compile_costs
import layer_suite
import models
import report
from timing import TimingSettings, in_fresh_process, matmul_peak
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
PARTS = ("layers", "models", "compile")

# glibc serves blocks above its mmap threshold (at most 32 MiB once adapted)
# with fresh pages and returns them on free, so a program whose temporaries
# exceed it page-faults them in on every call. TensorFlow has its own
# allocator; JAX and PyTorch use malloc. These settings keep freed blocks.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"}


@dataclasses.dataclass(frozen=True)
class Preset:
    """Defaults that the command line can override."""

    timing: TimingSettings
    compile_repeats: int
    layers: tuple[str, ...]
    tiny_models: bool


FULL = Preset(
    TimingSettings(rounds=7, warmup=1, budget=1.5),
    3,
    tuple(layer.name for layer in layer_suite.LAYERS),
    tiny_models=False,
)
QUICK = Preset(
    TimingSettings(rounds=3, warmup=1, budget=0.3), 1, layer_suite.QUICK_LAYERS, tiny_models=True
)


def _names(text: str | None, known: list[str], what: str, parser) -> list[str] | None:
    if text is None:
        return None
    wanted = text.split(",")
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        parser.error(f"unknown {what} {unknown}; known: {known}")
    return [name for name in known if name in wanted]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    layer_names = [layer.name for layer in layer_suite.LAYERS]
    model_names = [spec.name for spec in models.ARCHITECTURES]
    parser.add_argument(
        "--quick",
        action="store_true",
        help="three small layers, tiny models, few rounds: a smoke test",
    )
    parser.add_argument("--parts", help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--layers", help="comma-separated layer names (default: all)")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 7; 3 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed calls after compiling (default 1)")
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds of timed calls after which a slow contender (over 4x the fastest) "
        "stops (default 1.5)",
    )
    parser.add_argument(
        "--compile-repeats",
        type=int,
        help="compilations per function for compile times (default 3)",
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="each layer and each model in a fresh process (a diagnostic)",
    )
    parser.add_argument(
        "--steady-malloc",
        action="store_true",
        help="keep glibc from returning large blocks to the OS (see README)",
    )
    parser.add_argument(
        "--tf-xla", action="store_true", help="also time the Keras models with jit_compile=True"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for RESULTS.md and results.png (default: benchmarks/ "
        "for a full run, benchmarks/scratch/ for a partial one)",
    )
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.partial = bool(args.quick or args.parts or args.layers or args.models)
    args.parts = _names(args.parts, list(PARTS), "parts", parser) or list(PARTS)
    args.layers = _names(args.layers, layer_names, "layers", parser) or list(preset.layers)
    args.models = _names(args.models, model_names, "models", parser) or model_names
    args.timing = TimingSettings(
        rounds=args.rounds or preset.timing.rounds,
        warmup=preset.timing.warmup if args.warmup is None else args.warmup,
        budget=args.budget or preset.timing.budget,
    )
    args.compile_repeats = args.compile_repeats or preset.compile_repeats
    args.tiny_models = preset.tiny_models
    if args.out is None:
        args.out = HERE / (
            "scratch" if args.partial else "steady_malloc" if args.steady_malloc else ""
        )
    return args


def main(argv: list[str] | None = None) -> list[report.Target]:
    """Runs the benchmark, writes the report and returns its targets."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.steady_malloc and any(os.environ.get(k) != v for k, v in STEADY_MALLOC.items()):
        # glibc reads these when the process starts: start again with them.
        script = str(Path(__file__).resolve())
        os.execve(sys.executable, [sys.executable, script, *argv], {**os.environ, **STEADY_MALLOC})

    layers = [layer for layer in layer_suite.LAYERS if layer.name in args.layers]
    architectures = [
        spec.tiny() if args.tiny_models else spec
        for spec in models.ARCHITECTURES
        if spec.name in args.models
    ]
    decoder = models.StackedDecoder().tiny() if args.tiny_models else models.StackedDecoder()
    settings = args.timing
    load_before = os.getloadavg()
    peak = matmul_peak(settings)

    layer_results = model_results = compile_results = None
    if "layers" in args.parts:
        layer_results = _measure("layers", layer_suite.measure_layers, layers, args, 2)
    if "models" in args.parts:
        model_results = _measure(
            "models", models.measure_models, architectures, args, 1, tf_xla=args.tf_xla
        )
    if "compile" in args.parts:
        with tqdm(total=len(layers) + 1 + len(architectures), desc="compile times") as bar:
            compile_results = compile_costs.measure_compile_costs(
                layers, decoder, architectures, args.compile_repeats, bar.update
            )

    info = report.RunInfo(
        command=" ".join(["python", "benchmarks/bench.py", *argv]),
        isolated=args.isolate,
        steady_malloc=args.steady_malloc,
        settings=(
            f"medians of {settings.rounds} interleaved rounds after {settings.warmup} "
            f"warm-up call(s); a contender over {settings.slow_factor:g}x the fastest of its "
            f"group stops after {settings.budget:g} s of timed calls; compile times: medians "
            f"of {args.compile_repeats}"
        ),
        matmul_peak=peak,
        load_before=load_before,
        load_after=os.getloadavg(),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    # The hand-written analysis is about the default report (glibc's malloc settings).
    analysis = None if args.partial or args.steady_malloc else HERE / "analysis.md"
    report.write_markdown(
        args.out / "RESULTS.md", info, layer_results, model_results, compile_results, analysis
    )
    report.write_chart(args.out / "results.png", layer_results, model_results)
    if layer_results is not None:
        (args.out / "layers.json").write_text(
            json.dumps(report.layers_json(layer_results), indent=1) + "\n"
        )
    found = report.targets(layer_results, model_results, compile_results)
    for target in found:
        print(target.summary())
    print(f"Wrote {args.out / 'RESULTS.md'}, {args.out / 'results.png'} and layers.json")
    return found


def _measure(label, measure, items, args, groups_per_item, **options):
    """``measure(items, settings, ...)`` in this process, or one item per fresh process.

    ``groups_per_item``: the timing groups each item makes (for the progress bar).
    """
    if args.isolate:
        results = []
        for item in tqdm(items, desc=f"{label} (fresh processes)"):
            results += in_fresh_process(measure, [item], args.timing, **options)
        return results
    total = groups_per_item * len(items) + args.timing.rounds
    with tqdm(total=total, desc=f"{label} (warm-ups, then rounds)") as bar:
        return measure(items, args.timing, on_progress=bar.update, **options)


if __name__ == "__main__":
    main()
