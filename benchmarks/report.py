"""RESULTS.md and results.png: targets, per-layer and per-model tables, compile costs, memory.

Every number comes from the run; the only hand-written part is the
analysis section, copied from ``analysis.md`` next to this file when that
exists (why a target is missed, in words).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
from compile_costs import CompileCost, CompileResults
from layer_suite import AUTO, AUTOTUNE, FIXED, LAX, METHODS, PEERS, LayerResult
from models import JDECONV, TF, TF_XLA, TORCH, ModelResult

import jdeconv

MiB = 2**20
#: The target on peak memory against lax's, which the memory table flags too.
MEMORY_GOAL = 1.2
#: The target on autotune against the fastest fixed method, per layer.
AUTOTUNE_GOAL = 1.15
#: Where other runs' layer results are kept, one folder per jaxlib release
#: (``python benchmarks/bench.py --parts layers --out benchmarks/releases/jaxlib-X``).
RELEASES = Path(__file__).resolve().parent / "releases"


@dataclasses.dataclass
class RunInfo:
    """How the run was made: for the report's header."""

    command: str
    isolated: bool
    steady_malloc: bool
    settings: str
    matmul_peak: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


# ----------------------------------------------------------------- targets


@dataclasses.dataclass
class Target:
    """A goal on a median, a maximum or a single value.

    ``items`` are the per-layer values behind a median or a maximum;
    ``detail`` says what a single value was measured against.
    """

    what: str
    goal: float
    at_most: bool
    measured: float | None
    items: dict[str, float] = dataclasses.field(default_factory=dict)
    detail: str = ""

    def beyond(self, value: float) -> bool:
        return value > self.goal if self.at_most else value < self.goal

    @property
    def holds(self) -> bool | None:
        return None if self.measured is None else not self.beyond(self.measured)

    @property
    def margin(self) -> str:
        if self.holds is not False:
            return ""
        assert self.measured is not None
        if self.at_most:
            return f"{self.measured / self.goal - 1:.0%} over"
        return f"{1 - self.measured / self.goal:.0%} short"

    def summary(self) -> str:
        """One line: what, measured, goal, verdict."""
        goal = f"{'<=' if self.at_most else '>='} {self.goal:g}"
        verdict = {None: "not measured", True: "holds", False: f"missed, {self.margin}"}
        return f"{self.what}: {_num(self.measured)} (goal {goal}) {verdict[self.holds]}"

    @property
    def where(self) -> str:
        """The items on the wrong side of the goal, worst first; or the detail."""
        bad = sorted((v, n) for n, v in self.items.items() if self.beyond(v))
        if self.at_most:
            bad.reverse()
        return ", ".join(f"{n} {v:.2f}" for v, n in bad) or self.detail


def best_peer(times: dict[str, float]) -> tuple[str, float] | None:
    """The faster of TensorFlow and PyTorch, where either was timed."""
    timed = [(times[p], p) for p in PEERS if p in times]
    if not timed:
        return None
    seconds, name = min(timed)
    return name, seconds


def against_best_peer(times: dict[str, float], contender: str) -> float | None:
    peer = best_peer(times)
    return None if peer is None else times[contender] / peer[1]


def layer_ratios(results: Sequence[LayerResult], key: str) -> dict[str, float]:
    ratios = {r.layer.name: against_best_peer(getattr(r, key), AUTO) for r in results}
    return {name: ratio for name, ratio in ratios.items() if ratio is not None}


def fastest_fixed(times: dict[str, float]) -> tuple[str, float]:
    """The fastest of jdeconv's fixed methods (the lowerings, not auto's rules)."""
    seconds, name = min((times[m], m) for m in FIXED if m in times)
    return name, seconds


def autotune_ratios(results: Sequence[LayerResult]) -> dict[str, float]:
    """Autotune's time over the fastest fixed method's, the worse of the two passes."""
    return {
        r.layer.name: max(
            getattr(r, key)[AUTOTUNE] / fastest_fixed(getattr(r, key))[1]
            for key in ("forward", "forward_backward")
        )
        for r in results
        if AUTOTUNE in r.forward
    }


def memory_ratios(results: Sequence[LayerResult]) -> dict[str, float]:
    """``auto``'s peak memory over the reference's, per layer."""
    return {r.layer.name: r.peak_bytes[AUTO] / r.peak_bytes[r.reference] for r in results}


def _median(values: dict[str, float]) -> float | None:
    return statistics.median(values.values()) if values else None


def _max(values: dict[str, float]) -> float | None:
    return max(values.values()) if values else None


def targets(
    layers: Sequence[LayerResult] | None,
    model_results: Sequence[ModelResult] | None,
    compile_results: CompileResults | None,
) -> list[Target]:
    rows = []
    if layers is not None:
        forward = layer_ratios(layers, "forward")
        forward_backward = layer_ratios(layers, "forward_backward")
        speedup = {
            r.layer.name: r.forward_backward[LAX] / r.forward_backward[AUTO]
            for r in layers
            if LAX in r.forward_backward
        }
        memory = memory_ratios(layers)
        tuned = autotune_ratios(layers)
        rows += [
            Target(
                "forward, jdeconv / best peer, median over the layers",
                1.0,
                True,
                _median(forward),
                forward,
            ),
            Target(
                "forward + backward, jdeconv / best peer, median over the layers",
                1.0,
                True,
                _median(forward_backward),
                forward_backward,
            ),
            Target(
                "slowest layer, forward + backward",
                1.5,
                True,
                _max(forward_backward),
                forward_backward,
            ),
            Target(
                "autotune / fastest fixed method, every layer (forward and forward + backward)",
                AUTOTUNE_GOAL,
                True,
                _max(tuned),
                tuned,
            ),
        ]
    if model_results is not None:
        for m in model_results:
            peer = best_peer(m.step)
            rows.append(
                Target(
                    f"training step / best peer's: {m.name}",
                    1.0,
                    True,
                    against_best_peer(m.step, JDECONV),
                    detail=f"best peer: {peer[0]}" if peer else "",
                )
            )
    if compile_results is not None:
        decoder = compile_results.decoder
        per_layer = {name: _compile_ratio(costs) for name, costs in compile_results.layers.items()}
        rows += [
            Target(
                "compile time of auto, fwd + bwd / lax's, worst layer",
                1.5,
                True,
                _max(per_layer),
                per_layer,
            ),
            Target(
                f"compile time of auto, fwd + bwd / lax's, {_decoder_name(compile_results)}",
                1.5,
                True,
                _compile_ratio(decoder),
                detail=f"auto {decoder[AUTO].total:.2f} s, lax {decoder[LAX].total:.2f} s",
            ),
        ]
    if layers is not None:
        rows += [
            Target(
                "peak memory of auto, fwd + bwd / lax's, worst layer",
                MEMORY_GOAL,
                True,
                _max(memory),
                memory,
            ),
            Target(
                "forward + backward speedup over lax, median",
                10.0,
                False,
                _median(speedup),
                speedup,
            ),
        ]
    return rows


def _decoder_name(results: CompileResults) -> str:
    return f"{len(results.decoder_spec.stack)}-layer decoder"


def _compile_ratio(costs: dict[str, CompileCost]) -> float:
    """``auto``'s total over the reference's (lax, or the lhs-dilated lowering)."""
    auto, reference = _auto_and_reference(costs)
    return costs[auto].total / costs[reference].total


def _auto_and_reference(costs: dict[str, CompileCost]) -> tuple[str, str]:
    auto = AUTO if AUTO in costs else JDECONV
    reference = LAX if LAX in costs else next(n for n in costs if n != auto)
    return auto, reference


# ------------------------------------------------------------------ tables


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _section(title: str, command: str, *body: str) -> list[str]:
    return ["", f"## {title}", "", f"Command: `{command}`", "", *body]


def _median_and_max(width: int, column: int, values: dict[str, float]) -> list[list[str]]:
    """Two closing rows of a table ``width`` wide: the median and the maximum in ``column``."""
    rows = []
    for label, value in (("**median**", _median(values)), ("**max**", _max(values))):
        row = [label] + [""] * (width - 1)
        row[column] = _num(value)
        rows.append(row)
    return rows


def _timing_table(results: Sequence[LayerResult], key: str) -> list[str]:
    names = [f"jdeconv:{m}" for m in METHODS] + [LAX, *PEERS]
    header = ["layer", *names, "auto / best peer", "best peer", "auto GFLOP/s"]
    if key == "forward_backward":
        header.append("jax.lax / auto")
    rows = []
    for r in results:
        times = getattr(r, key)
        peer = best_peer(times)
        flops = r.layer.flops * (1 if key == "forward" else 3)
        row = [
            r.layer.name,
            *(_ms(times.get(n)) for n in names),
            _num(against_best_peer(times, AUTO)),
            peer[0] if peer else "-",
            f"{flops / times[AUTO] / 1e9:.0f}",
        ]
        if key == "forward_backward":
            row.append(_num(times[LAX] / times[AUTO], 1) if LAX in times else "-")
        rows.append(row)
    rows += _median_and_max(len(header), len(names) + 1, layer_ratios(results, key))
    return _table(header, rows)


def _model_table(results: Sequence[ModelResult]) -> list[str]:
    names = [n for n in (JDECONV, LAX, TF, TORCH, TF_XLA) if any(n in m.step for m in results)]
    header = [
        "model",
        "batch",
        "parameters",
        *names,
        "jdeconv / best peer",
        "best peer",
        "jax.lax / jdeconv",
    ]
    rows = []
    for m in results:
        peer = best_peer(m.step)
        rows.append(
            [
                m.name,
                str(m.batch),
                f"{m.parameters:,}",
                *(_ms(m.step.get(n)) for n in names),
                _num(against_best_peer(m.step, JDECONV)),
                peer[0] if peer else "-",
                _num(m.step[LAX] / m.step[JDECONV], 1),
            ]
        )
    return _table(header, rows)


def _cost_row(cost: CompileCost, reference: CompileCost) -> list[str]:
    return [
        f"{cost.trace_lower:.2f}",
        f"{cost.compile:.2f}",
        f"{cost.total:.2f}",
        f"{cost.total / reference.total:.2f}",
        f"{cost.hlo_instructions:,}",
        f"{cost.jaxpr_equations:,}",
        f"{cost.peak_bytes / MiB:.1f}",
        f"{cost.peak_bytes / reference.peak_bytes:.2f}",
    ]


_COST_HEADER = [
    "trace + lower",
    "compile",
    "total",
    "total / lax's",
    "HLO instructions",
    "jaxpr equations",
    "peak MiB",
    "peak / lax's",
]


def _layer_compile_table(results: CompileResults) -> list[str]:
    rows, ratios = [], {}
    for layer, costs in results.layers.items():
        auto_name, reference_name = _auto_and_reference(costs)
        auto, reference = costs[auto_name], costs[reference_name]
        ratios[layer] = _compile_ratio(costs)
        rows.append(
            [
                layer,
                reference_name,
                f"{auto.trace_lower:.2f}",
                f"{auto.compile:.2f}",
                f"{auto.total:.2f}",
                f"{reference.total:.2f}",
                f"{ratios[layer]:.2f}",
                f"{auto.hlo_instructions:,} / {reference.hlo_instructions:,}",
                f"{auto.jaxpr_equations:,} / {reference.jaxpr_equations:,}",
            ]
        )
    header = [
        "layer",
        "reference",
        "auto: trace + lower",
        "auto: compile",
        "auto: total",
        "reference: total",
        "auto / reference",
        "HLO instructions, auto / reference",
        "jaxpr equations, auto / reference",
    ]
    return _table(header, rows + _median_and_max(len(header), 6, ratios))


def _compile_tables(results: CompileResults, command: str) -> list[str]:
    lines = _section(
        "Compile time: layers, forward + backward (s)",
        command,
        "Trace + lower + compile of the jitted gradient in the input and the kernel, JAX's",
        "caches cleared before each; medians of the repeats. The reference is",
        "`jax.lax.conv_transpose`, or jdeconv's lhs-dilated lowering where lax has no",
        "groups. HLO instructions: the module handed to XLA; jaxpr equations: nested",
        "jaxprs included.",
        "",
        *_layer_compile_table(results),
    )
    lax = results.decoder[LAX]
    lines += _section(
        f"Compile time: a {_decoder_name(results)}, forward + backward (s)",
        command,
        "The parameter gradient of stacked layers (`models.StackedDecoder`), built with each",
        "jdeconv method and with `flax.linen.ConvTranspose` (`jax.lax.conv_transpose`):",
        f"{results.decoder_spec.describe()}.",
        "",
        *_table(
            ["layers", *_COST_HEADER], [[n, *_cost_row(c, lax)] for n, c in results.decoder.items()]
        ),
    )
    rows = [
        [model, n, *_cost_row(c, costs[LAX])]
        for model, costs in results.models.items()
        for n, c in costs.items()
    ]
    lines += _section(
        "Compile time: whole-model training steps (s)",
        command,
        "The jitted optimizer step, built with jdeconv's layers and with lax's.",
        "",
        *_table(["model", "layers", *_COST_HEADER], rows),
    )
    return lines


def _autotune_table(results: Sequence[LayerResult]) -> list[str]:
    header = [
        "layer",
        "forward: autotune / fastest fixed",
        "fastest fixed",
        "fwd + bwd: autotune / fastest fixed",
        "fastest fixed",
        "first fwd + bwd call: auto (s)",
        "autotune (s)",
        "of which tuning (s)",
    ]
    rows = []
    for r in results:
        if AUTOTUNE not in r.forward:
            continue
        row = [r.layer.name]
        for key in ("forward", "forward_backward"):
            times = getattr(r, key)
            name, seconds = fastest_fixed(times)
            row += [_num(times[AUTOTUNE] / seconds), name.removeprefix("jdeconv:")]
        row += [
            _num(r.first_call.get(AUTO)),
            _num(r.first_call.get(AUTOTUNE)),
            _num(r.tuning_seconds),
        ]
        rows.append(row)
    return _table(header, rows)


def _memory_table(results: Sequence[LayerResult]) -> list[str]:
    names = [f"jdeconv:{m}" for m in METHODS] + [LAX]
    header = ["layer", *names, "auto / reference", f"over {MEMORY_GOAL}"]
    rows, ratios = [], memory_ratios(results)
    for r in results:
        ratio = ratios[r.layer.name]
        marker = "" if r.reference == LAX else " (lhs_dilation)"
        rows.append(
            [
                r.layer.name,
                *(_num(r.peak_bytes[n] / MiB, 1) if n in r.peak_bytes else "-" for n in names),
                f"{ratio:.2f}{marker}",
                "**yes**" if ratio > MEMORY_GOAL else "",
            ]
        )
    return _table(header, rows + _median_and_max(len(header), len(names) + 1, ratios))


# ------------------------------------------------------------------ output


def _versions() -> str:
    versions = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "flax", "optax", "numpy", "tensorflow", "tf_keras", "torch"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["jdeconv"] = jdeconv.__version__
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return f"{model}, {os.cpu_count()} logical CPUs; JAX devices: {devices}"


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in load)


def write_markdown(
    path: Path,
    info: RunInfo,
    layers: Sequence[LayerResult] | None,
    model_results: Sequence[ModelResult] | None,
    compile_results: CompileResults | None,
    analysis: Path | None,
) -> None:
    command = info.command
    mode = (
        "each layer and each model timed in a fresh Python process (a diagnostic)"
        if info.isolated
        else "one process, as training runs: each round runs every layer (then every model) "
        "in turn, the contenders of each interleaved"
    )
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/bench.py`; `benchmarks/README.md` says what is measured and",
        "how to read it. Ratios are the claims; milliseconds depend on the machine.",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- Machine: {_machine()}",
        f"- Load average (1/5/15 min) at the start: {_load(info.load_before)}; "
        f"at the end: {_load(info.load_after)}",
        f"- Versions: {_versions()}",
        f"- Matmul (2048^3 float32) in this process: {info.matmul_peak:.0f} GFLOP/s",
        f"- Mode: {mode}",
        f"- Timing: {info.settings}; float32",
        "- glibc malloc: "
        + (
            "steady (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` set)"
            if info.steady_malloc
            else "default settings"
        ),
    ]
    rows = [
        [
            t.what,
            ("<= " if t.at_most else ">= ") + f"{t.goal:g}",
            _num(t.measured),
            {None: "-", True: "yes", False: "**no**"}[t.holds],
            t.margin,
            t.where,
        ]
        for t in targets(layers, model_results, compile_results)
    ]
    lines += _section(
        "Targets",
        command,
        "`where`: the layers on the wrong side of the goal, worst first (for a target on a",
        "median or a maximum), or what a single value was measured against.",
        "",
        *_table(["target", "goal", "measured", "holds", "missed by", "where"], rows),
    )
    if layers is not None:
        lines += _section("Layers: forward (ms)", command, *_timing_table(layers, "forward"))
        lines += _section(
            "Layers: forward + backward (ms)",
            command,
            "The gradient of `sum((y - target)**2)/2` in the input and the kernel.",
            "",
            *_timing_table(layers, "forward_backward"),
        )
    if layers is not None:
        lines += _section(
            "Layers: autotune",
            command,
            '`method="autotune"` against the fastest fixed method (`lhs_dilation`, `phase`,',
            "`phase_matmul`) of each layer, and its first-call overhead: the first forward +",
            "backward call traces, lowers (autotune times each map's candidates there),",
            "compiles and runs once.",
            "",
            *_autotune_table(layers),
        )
        lines += _releases_section(layers, command)
    if model_results is not None:
        lines += _section(
            "Whole-model training steps (ms per optimizer step)",
            command,
            "Forward, loss, backward and an Adam update. `jax.lax`: the same Flax model with",
            "`flax.linen.ConvTranspose(transpose_kernel=True)`.",
            "",
            *_model_table(model_results),
        )
    if compile_results is not None:
        lines += _compile_tables(compile_results, command)
    if layers is not None:
        lines += _section(
            "Peak memory: layers, forward + backward (MiB)",
            command,
            "Arguments + outputs + temporaries of the compiled program (XLA's memory analysis),",
            "against `jax.lax.conv_transpose`'s (the lhs-dilated lowering's where lax has no",
            "groups).",
            "",
            *_memory_table(layers),
        )
        lines += ["", "## Layers", ""]
        lines += [f"- `{r.layer.name}`: {r.layer.describe()}" for r in layers]
    if model_results is not None:
        lines += ["", "## Models", ""]
        lines += [
            f"- `{m.name}` ({m.parameters:,} parameters, batch {m.batch}): {m.description}"
            for m in model_results
        ]
    if layers is not None:
        lines += ["", "## Agreement with the reference (forward, max |diff| / max |y|)", ""]
        for r in layers:
            errors = ", ".join(f"{n} {e:.1e}" for n, e in r.max_error.items())
            lines.append(f"- `{r.layer.name}` (against {r.reference}): {errors}")
    notes = sorted(
        {f"`{r.layer.name}`: {n}" for r in layers or () for n in r.notes}
        | {f"`{m.name}`: {n}" for m in model_results or () for n in m.notes}
    )
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    if analysis is not None and analysis.exists():
        lines += ["", f"## Analysis (hand-written, `benchmarks/{analysis.name}`)", ""]
        lines += analysis.read_text().strip().splitlines()
    path.write_text("\n".join(lines) + "\n")


def layers_json(layers: Sequence[LayerResult]) -> dict:
    """The layer results, machine-readable, with the versions and machine they ran on."""
    return {
        "jaxlib": importlib.metadata.version("jaxlib"),
        "versions": _versions(),
        "machine": _machine(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "layers": {
            r.layer.name: {"forward": r.forward, "forward_backward": r.forward_backward}
            for r in layers
        },
    }


def _release_runs(layers: Sequence[LayerResult]) -> dict[str, dict]:
    """This run's layer results and those in ``RELEASES``, by jaxlib version."""
    runs = {}
    for path in sorted(RELEASES.glob("*/layers.json")):
        run = json.loads(path.read_text())
        runs[run["jaxlib"]] = run
    this = layers_json(layers)
    runs[this["jaxlib"]] = this
    return dict(sorted(runs.items(), key=lambda item: _release(item[0])))


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _releases_section(layers: Sequence[LayerResult], command: str) -> list[str]:
    """``auto`` / TensorFlow per layer, one column per jaxlib release."""
    runs = _release_runs(layers)
    names = [r.layer.name for r in layers]
    header = ["layer"]
    columns: list[dict[str, float]] = []
    for version, run in runs.items():
        for key, label in (("forward", "fwd"), ("forward_backward", "fwd + bwd")):
            header.append(f"{label}, jaxlib {version}")
            ratios = {}
            for name, result in run["layers"].items():
                times = result[key]
                if "tensorflow" in times and AUTO in times:
                    ratios[name] = times[AUTO] / times["tensorflow"]
            columns.append(ratios)
    rows = [[name, *(_num(column.get(name)) for column in columns)] for name in names]
    for label, reduce in (("**median**", _median), ("**max**", _max)):
        rows.append([label, *(_num(reduce({n: c[n] for n in names if n in c})) for c in columns)])
    sources = "; ".join(f"jaxlib {v}: {run['versions']}, {run['date']}" for v, run in runs.items())
    return _section(
        "Layers across jaxlib releases: auto / TensorFlow",
        command,
        "`jdeconv:auto`'s time over TensorFlow's, TensorFlow being the peer every",
        "environment has. Other releases' runs come from `benchmarks/releases/*/layers.json`",
        "(`python benchmarks/bench.py --parts layers --out benchmarks/releases/jaxlib-X`, run",
        "with that jaxlib, on the same machine).",
        "",
        *_table(header, rows),
        "",
        f"Runs: {sources}.",
    )


def write_chart(
    path: Path, layers: Sequence[LayerResult] | None, model_results: Sequence[ModelResult] | None
) -> None:
    """Ratios to the best peer: layers forward, forward + backward, and model steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, list[str], dict[str, Callable[[str], float | None]]]] = []
    if layers is not None:
        for key, title in (
            ("forward", "Layers, forward"),
            ("forward_backward", "Layers, forward + backward"),
        ):
            by_name = {r.layer.name: getattr(r, key) for r in layers}
            contenders = (AUTO, LAX, *PEERS)
            panels.append(
                (
                    title,
                    list(by_name),
                    {
                        c: (
                            lambda n, c=c, t=by_name: (
                                against_best_peer(t[n], c) if c in t[n] else None
                            )
                        )
                        for c in contenders
                    },
                )
            )
    if model_results is not None:
        by_name = {m.name: m.step for m in model_results}
        panels.append(
            (
                "Training steps",
                list(by_name),
                {
                    c: (
                        lambda n, c=c: against_best_peer(by_name[n], c) if c in by_name[n] else None
                    )
                    for c in (JDECONV, LAX, *PEERS)
                },
            )
        )
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 3.6 * len(panels)), squeeze=False)
    for ax, (title, names, series) in zip(axes[:, 0], panels):
        width = 0.8 / len(series)
        positions = np.arange(len(names))
        for i, (label, ratio) in enumerate(series.items()):
            values = [np.nan if (v := ratio(n)) is None else v for n in names]
            ax.bar(positions + (i - len(series) / 2 + 0.5) * width, values, width, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("time / best peer")
        ax.set_title(f"{title}: lower is faster; 1 = the faster of TF and PyTorch")
        ax.set_xticks(positions, names, rotation=30, ha="right")
        ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
