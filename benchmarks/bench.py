"""Transposed-convolution benchmark: jdeconv's lowerings against JAX, Flax, TF and PyTorch.

Times the forward pass and forward + backward (gradients with respect to the
input and the kernel, of the loss ``sum((y - target) ** 2) / 2``) of about ten layers
taken from real models, for every ``jdeconv`` method and for its peers, side
by side in one process. Contenders run interleaved, round after round in a
rotating order, after a warm-up; the reported time is the median. Slow
contenders get fewer rounds (a time budget per contender), never fewer than
one. Each layer runs in a fresh Python process (``--no-isolate`` runs them
all in this one): glibc's ``malloc`` adapts its thresholds to the frees it
has seen, so in a shared process the layers measured earlier change the
page faults of the later ones, for every JAX and PyTorch contender.

It also reports the achieved GFLOP/s next to a plain matmul of the same
FLOPs and to the machine's matmul peak, both measured in the same process,
the peak memory of the compiled forward + backward (XLA's memory analysis),
and, per layer, the time of each design alternative inside the phase
lowerings. It writes ``RESULTS.md`` and ``results.png`` next to this file.

Usage::

    python benchmarks/bench.py                 # the full suite, a few minutes
    python benchmarks/bench.py --layers vae_dec,audio_up --rounds 3

Peers that are not installed are skipped, with a note in the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np

import jdeconv
from jdeconv import _shapes
from jdeconv._lowerings import ConvConfig, _phase, auto_choice, select_lowering

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Layer:
    """One transposed convolution, as a model uses it."""

    name: str
    model: str
    batch: int
    input_size: tuple[int, ...]
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: str | tuple[tuple[int, int], ...]
    channels_last: bool = True
    groups: int = 1

    @property
    def rank(self) -> int:
        return len(self.input_size)

    @property
    def data_format(self) -> str:
        last = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
        first = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
        return (last if self.channels_last else first)[self.rank]

    @property
    def output_size(self) -> tuple[int, ...]:
        """Keras' default: the largest accepted size for SAME, the smallest otherwise."""
        sizes = []
        for dim, size in enumerate(self.input_size):
            padding = self.padding if isinstance(self.padding, str) else self.padding[dim]
            accepted = _shapes.accepted_output_sizes(size, self.kernel, self.stride, 1, padding)
            sizes.append(accepted[-1] if padding == "SAME" else accepted[0])
        return tuple(sizes)

    @property
    def geometry(self) -> _shapes.ConvTransposeGeometry:
        n = self.rank
        return _shapes.make_geometry(
            "bench",
            input_size=self.input_size,
            kernel_size=(self.kernel,) * n,
            output_size=self.output_size,
            strides=(self.stride,) * n,
            dilations=(1,) * n,
            padding=self.padding,
            channels_last=self.channels_last,
            groups=self.groups,
        )

    def shape(self, spatial: tuple[int, ...], channels: int) -> tuple[int, ...]:
        if self.channels_last:
            return (self.batch, *spatial, channels)
        return (self.batch, channels, *spatial)

    @property
    def flops(self) -> float:
        """Multiply-adds times two of the forward pass."""
        return (
            2.0
            * self.batch
            * math.prod(self.input_size)
            * self.kernel**self.rank
            * self.in_channels
            * self.out_channels
            / self.groups
        )

    def describe(self) -> str:
        size = "x".join(map(str, self.input_size))
        out = "x".join(map(str, self.geometry.output_size))
        pad = self.padding if isinstance(self.padding, str) else f"pad {self.padding[0]}"
        groups = f" groups {self.groups}" if self.groups > 1 else ""
        return (
            f"{self.model}: {self.data_format} {size}->{out}, k{self.kernel} s{self.stride} "
            f"{pad}, {self.in_channels}->{self.out_channels}, batch {self.batch}{groups}"
        )


LAYERS = (
    Layer("dcgan_g1", "DCGAN generator", 64, (4, 4), 512, 256, 5, 2, "SAME"),
    Layer("dcgan_g2", "DCGAN generator", 64, (8, 8), 256, 128, 5, 2, "SAME"),
    Layer("dcgan_pt", "DCGAN generator (PyTorch style)", 32, (16, 16), 128, 64, 4, 2,
          ((1, 1), (1, 1))),
    Layer("unet_up", "U-Net decoder", 8, (32, 32), 128, 64, 2, 2, "VALID"),
    Layer("vae_dec", "VAE decoder", 32, (16, 16), 64, 32, 3, 2, "SAME"),
    Layer("fcn8s_up", "FCN-8s upsampling", 1, (32, 32), 21, 21, 16, 8, ((4, 4), (4, 4))),
    Layer("fcn32s_up", "FCN-32s upsampling", 1, (8, 8), 21, 21, 64, 32, ((16, 16), (16, 16))),
    Layer("audio_up", "1-D audio upsampler", 8, (1024,), 128, 64, 16, 8, "SAME"),
    Layer("volume_dec", "3-D volume decoder", 2, (8, 8, 8), 64, 32, 3, 2, "SAME"),
    Layer("volume_up", "3-D U-Net decoder", 2, (16, 16, 16), 32, 16, 2, 2, "VALID"),
    Layer("unet_nchw", "U-Net decoder, channels-first", 8, (32, 32), 64, 32, 4, 2, "SAME",
          channels_last=False),
    Layer("depthwise_up", "depthwise upsampling", 8, (32, 32), 64, 64, 4, 2, "SAME", groups=64),
)  # fmt: skip


# ---------------------------------------------------------------- contenders


@dataclasses.dataclass
class Contender:
    """A callable to time; ``run()`` returns once the result is computed."""

    name: str
    run: Callable[[], object]
    group: str = "peer"  # "jdeconv", "peer" or "reference"


def _jax_block(function, *args):
    def run():
        return jax.block_until_ready(function(*args))

    return run


def _loss_grad(forward, target):
    """Gradient in (x, w) of ``sum((y - target) ** 2) / 2``, as in training."""

    def loss(x, w):
        return 0.5 * jnp.sum(jnp.square(forward(x, w) - target))

    return jax.grad(loss, argnums=(0, 1))


def jdeconv_forward(layer: Layer, method: str):
    geometry = layer.geometry
    output_shape = layer.shape(geometry.output_size, layer.out_channels)

    def forward(x, w):
        return jdeconv.conv_transpose(
            x,
            w,
            output_shape,
            layer.stride,
            layer.padding if isinstance(layer.padding, str) else _full_padding(layer),
            layer.data_format,
            groups=layer.groups,
            method=method,
        )

    return forward


def _full_padding(layer: Layer) -> list[list[int]]:
    pairs = [list(p) for p in layer.padding]
    return [[0, 0], *pairs, [0, 0]] if layer.channels_last else [[0, 0], [0, 0], *pairs]


def lax_forward(layer: Layer):
    """``jax.lax.conv_transpose`` with TF's kernel: transpose_kernel=True."""
    if layer.groups > 1:
        return None, "no groups in jax.lax.conv_transpose"
    geometry = layer.geometry
    n = layer.rank
    spatial = "DHW"[3 - n :]
    act = f"N{spatial}C" if layer.channels_last else f"NC{spatial}"

    def forward(x, w):
        return jax.lax.conv_transpose(
            x,
            w,
            (layer.stride,) * n,
            geometry.lhs_dilated_padding,
            dimension_numbers=(act, f"{spatial}IO", act),
            transpose_kernel=True,
        )

    return forward, None


def flax_forward(layer: Layer):
    """``flax.linen.ConvTranspose(transpose_kernel=True)``: TF's kernel layout."""
    try:
        import flax.linen as nn
    except ImportError:
        return None, "flax not installed"
    if layer.groups > 1:
        return None, "no groups in flax.linen.ConvTranspose"
    if not layer.channels_last:
        return None, "flax.linen.ConvTranspose is channels-last only"
    module = nn.ConvTranspose(
        features=layer.out_channels,
        kernel_size=(layer.kernel,) * layer.rank,
        strides=(layer.stride,) * layer.rank,
        padding=layer.geometry.lhs_dilated_padding,
        transpose_kernel=True,
        use_bias=False,
    )

    def forward(x, w):
        return module.apply({"params": {"kernel": w}}, x)

    return forward, None


def tf_contenders(layer: Layer, x: np.ndarray, w: np.ndarray, target: np.ndarray):
    """``tf.nn.conv*_transpose`` in ``tf.function``; (forward, forward+backward, note)."""
    try:
        import tensorflow as tf
    except ImportError:
        return None, None, "TensorFlow not installed"
    if layer.groups > 1:
        return None, None, "tf.nn.conv_transpose has no groups"
    op = {1: tf.nn.conv1d_transpose, 2: tf.nn.conv2d_transpose, 3: tf.nn.conv3d_transpose}
    op = op[layer.rank]
    geometry = layer.geometry
    output_shape = layer.shape(geometry.output_size, layer.out_channels)
    padding = layer.padding if isinstance(layer.padding, str) else _full_padding(layer)
    # TF's own CPU kernels refuse channels-first; its XLA path computes it.
    jit_compile = not layer.channels_last
    note = "TF with jit_compile=True (its CPU kernel refuses NCHW)" if jit_compile else None
    xt, wt = tf.constant(x), tf.constant(w)

    @tf.function(jit_compile=jit_compile)
    def forward(x, w):
        return op(x, w, output_shape, layer.stride, padding, data_format=layer.data_format)

    @tf.function(jit_compile=jit_compile)
    def forward_backward(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = forward(x, w)
            loss = 0.5 * tf.reduce_sum(tf.square(y - target))
        return tape.gradient(loss, [x, w])

    def run_forward():
        return forward(xt, wt).numpy()

    def run_forward_backward():
        return [g.numpy() for g in forward_backward(xt, wt)]

    return run_forward, run_forward_backward, note


def torch_contenders(layer: Layer, x: np.ndarray, w: np.ndarray, target: np.ndarray):
    """``torch.nn.functional.conv_transpose*d`` on channels-first tensors."""
    try:
        import torch
    except ImportError:
        return None, None, "PyTorch not installed"
    n = layer.rank
    geometry = layer.geometry
    (before, after), k, s = geometry.padding[0], layer.kernel, layer.stride
    # PyTorch pads both sides equally and adds `output_padding` at the end:
    # take the larger side (same work; a SAME output shifts by one).
    pad = max(before, after)
    output_padding = geometry.output_size[0] - ((layer.input_size[0] - 1) * s - 2 * pad + k)
    if not 0 <= output_padding < s:
        return None, None, f"no PyTorch padding for {layer.padding}"
    note = "PyTorch pads symmetrically (output shifted by one)" if before != after else None
    conv = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
            3: torch.nn.functional.conv_transpose3d}[n]  # fmt: skip

    def channels_first(a):
        return torch.from_numpy(np.moveaxis(a, -1, 1).copy() if layer.channels_last else a.copy())

    xp, tp = channels_first(x), channels_first(target)
    # TF [*k, C_out / G, C_in] -> PyTorch (C_in, C_out / G, *k).
    wp = torch.from_numpy(np.ascontiguousarray(np.moveaxis(w, (n, n + 1), (1, 0))))
    xp.requires_grad_(True)
    wp.requires_grad_(True)
    options = dict(stride=s, padding=pad, output_padding=output_padding, groups=layer.groups)

    def run_forward():
        with torch.no_grad():
            return conv(xp, wp, **options)

    def run_forward_backward():
        y = conv(xp, wp, **options)
        return torch.autograd.grad(0.5 * ((y - tp) ** 2).sum(), [xp, wp])

    return run_forward, run_forward_backward, note


# ------------------------------------------------------------------- timing


def interleaved_medians(
    contenders: list[Contender],
    rounds: int,
    budget: float,
    warmup: int,
    progress=None,
    settle: float = 0.02,
) -> dict[str, float]:
    """Median seconds per contender, timed round-robin in a rotating order.

    A contender stops taking rounds once its timed total passes ``budget``
    seconds (after at least one round). Before each call the process sleeps
    ``settle`` seconds, so that the worker threads of the previous framework
    (OpenMP, Eigen) have stopped spinning and do not steal the cores.
    """
    for contender in contenders:
        for _ in range(warmup):
            contender.run()
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for contender in order:
            taken = samples[contender.name]
            if taken and sum(taken) > budget:
                continue
            time.sleep(settle)
            start = time.perf_counter()
            contender.run()
            taken.append(time.perf_counter() - start)
        if progress is not None:
            progress.update(1)
    return {name: statistics.median(times) for name, times in samples.items()}


def matmul_peak(rounds: int) -> float:
    """GFLOP/s of a 2048^3 float32 matmul, median of ``rounds``."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((2048, 2048)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    run = _jax_block(f, a)
    seconds = interleaved_medians([Contender("matmul", run)], rounds, 10.0, 2)["matmul"]
    return 2 * 2048**3 / seconds / 1e9


def same_flops_matmul(layer: Layer, dtype) -> Callable[[], object]:
    """A matmul with the forward's FLOPs: (N * I, C_in / G) @ (C_in / G, k^N * C_out / G)."""
    rng = np.random.default_rng(1)
    rows = layer.batch * math.prod(layer.input_size)
    depth = layer.in_channels // layer.groups
    cols = layer.kernel**layer.rank * layer.out_channels // layer.groups
    a = jnp.asarray(rng.standard_normal((layer.groups, rows, depth)), dtype)
    b = jnp.asarray(rng.standard_normal((layer.groups, depth, cols)), dtype)
    return _jax_block(jax.jit(lambda a, b: jnp.einsum("grk,gkc->grc", a, b)), a, b)


def peak_bytes(function, *args) -> int:
    """Arguments + outputs + XLA's temporary buffer of the compiled function.

    XLA:CPU allocates all temporaries of a call in one buffer of
    ``temp_size_in_bytes``, so this is the call's peak footprint.
    """
    stats = jax.jit(function).lower(*args).compile().memory_analysis()
    return int(
        stats.temp_size_in_bytes
        + stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        - stats.alias_size_in_bytes
    )


# ---------------------------------------------------------------- the suite


@dataclasses.dataclass
class LayerResult:
    layer: Layer
    forward: dict[str, float]
    forward_backward: dict[str, float]
    parts: dict[str, float]
    memory: dict[str, int]
    notes: list[str]
    max_error: dict[str, float]
    auto: dict[str, str]


# glibc serves blocks above its mmap threshold (at most 32 MiB once adapted)
# with fresh pages and returns them on free, so a program whose temporaries
# exceed it page-faults them in on every call. TensorFlow has its own
# allocator; JAX and PyTorch use malloc. These settings keep freed blocks.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"}


def run_layer_isolated(layer: Layer, args) -> LayerResult:
    """:func:`run_layer` in a fresh Python process (see the module docstring)."""
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_run_layer_on_backend, (layer, args))


def _run_layer_on_backend(layer: Layer, args) -> LayerResult:
    with jax.default_device(jax.devices(args.backend)[0]):
        return run_layer(layer, args, None)


def run_layer(layer: Layer, args, progress) -> LayerResult:
    rng = np.random.default_rng(0)
    geometry = layer.geometry
    x = rng.standard_normal(layer.shape(layer.input_size, layer.in_channels)).astype(np.float32)
    w_shape = (*(layer.kernel,) * layer.rank, layer.out_channels // layer.groups, layer.in_channels)
    w = rng.standard_normal(w_shape) / math.sqrt(layer.kernel**layer.rank * layer.in_channels)
    w = w.astype(np.float32)
    y_shape = layer.shape(geometry.output_size, layer.out_channels)
    target = rng.standard_normal(y_shape).astype(np.float32)
    xj, wj, tj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(target)
    notes: list[str] = []

    forward, forward_backward = [], []
    outputs = {}
    for method in jdeconv.METHODS:
        f = jdeconv_forward(layer, method)
        group = "reference" if method == "lhs_dilation" else "jdeconv"
        forward.append(Contender(f"jdeconv:{method}", _jax_block(jax.jit(f), xj, wj), group))
        fb = jax.jit(_loss_grad(f, tj))
        forward_backward.append(Contender(f"jdeconv:{method}", _jax_block(fb, xj, wj), group))
        outputs[f"jdeconv:{method}"] = jax.jit(f)(xj, wj)
    for name, (f, note) in (("jax.lax", lax_forward(layer)), ("flax", flax_forward(layer))):
        if f is None:
            notes.append(f"{name}: {note}")
            continue
        forward.append(Contender(name, _jax_block(jax.jit(f), xj, wj)))
        forward_backward.append(Contender(name, _jax_block(jax.jit(_loss_grad(f, tj)), xj, wj)))
        outputs[name] = jax.jit(f)(xj, wj)
    for name, maker in (("tensorflow", tf_contenders), ("pytorch", torch_contenders)):
        if args.backend != "cpu":
            notes.append(f"{name}: not timed on {args.backend} (CPU peers only)")
            continue
        run_f, run_fb, note = maker(layer, x, w, target)
        if note:
            notes.append(f"{name}: {note}")
        if run_f is None:
            continue
        forward.append(Contender(name, run_f))
        forward_backward.append(Contender(name, run_fb))
        if name == "tensorflow":
            outputs[name] = np.asarray(run_f())
    forward.append(Contender("matmul (same FLOPs)", same_flops_matmul(layer, jnp.float32)))

    reference = np.asarray(outputs["jdeconv:lhs_dilation"], np.float64)
    scale = float(np.max(np.abs(reference))) or 1.0
    max_error = {
        name: float(np.max(np.abs(np.asarray(y, np.float64) - reference))) / scale
        for name, y in outputs.items()
    }

    # The design alternatives inside the phase lowerings, one map at a time.
    config = ConvConfig(geometry, select_lowering("bench", "phase", geometry))
    gj = jnp.asarray(rng.standard_normal(y_shape), jnp.float32)
    parts = [
        ("T sub-pixel, phases split", _phase.transpose_conv, (xj, wj)),
        ("F strided conv", _phase.forward_conv_strided, (gj, wj)),
        ("F phase space", _phase.forward_conv_phase, (gj, wj)),
        ("K backprop-filter conv", _phase.kernel_grad_conv, (xj, gj)),
        ("K phase matmuls", _phase.kernel_grad_matmul, (xj, gj)),
    ]
    if layer.kernel % layer.stride:
        parts.insert(
            1,
            (
                "T sub-pixel, short phases zero-padded",
                lambda a, b, c: _phase.transpose_conv(a, b, c, split_short=False),
                (xj, wj),
            ),
        )
    part_contenders = [
        Contender(name, _jax_block(jax.jit(lambda a, b, f=f: f(a, b, config)), *arrays), "part")
        for name, f, arrays in parts
    ]

    budget = args.budget
    results = {}
    for label, contenders in (
        ("forward", forward),
        ("forward_backward", forward_backward),
        ("parts", part_contenders),
    ):
        if progress is not None:
            progress.set_postfix_str(f"{layer.name} {label}")
        results[label] = interleaved_medians(contenders, args.rounds, budget, args.warmup)
        if progress is not None:
            progress.update(1)

    memory = {}
    for method in jdeconv.METHODS:
        memory[f"jdeconv:{method}"] = peak_bytes(
            _loss_grad(jdeconv_forward(layer, method), tj), xj, wj
        )
    in_channels, out_channels = layer.in_channels, layer.out_channels
    auto = {
        bilinear_map: auto_choice(geometry, bilinear_map, in_channels, out_channels, "cpu")
        for bilinear_map in ("transpose_conv", "forward_conv", "kernel_grad")
    }
    return LayerResult(
        layer,
        results["forward"],
        results["forward_backward"],
        results["parts"],
        memory,
        notes,
        max_error,
        auto,
    )


# ------------------------------------------------------------------ reports


def _peers_min(times: dict[str, float]) -> float | None:
    peers = [times[p] for p in ("tensorflow", "pytorch") if p in times]
    return min(peers) if peers else None


def summarize(results: list[LayerResult]) -> list[tuple[str, str, float | None, bool | None]]:
    """The targets: (what, goal, median, holds)."""

    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    auto = "jdeconv:auto"
    fwd = [r.forward[auto] / m for r in results if (m := _peers_min(r.forward))]
    fb = [r.forward_backward[auto] / m for r in results if (m := _peers_min(r.forward_backward))]
    lax = [r.forward_backward["jax.lax"] / r.forward_backward[auto] for r in results
           if "jax.lax" in r.forward_backward]  # fmt: skip
    tf3 = [r.forward[auto] / r.forward["tensorflow"] for r in results
           if r.layer.rank == 3 and "tensorflow" in r.forward]  # fmt: skip
    matmul = [r.forward["matmul (same FLOPs)"] / r.forward[auto] for r in results]
    memory = [r.memory[auto] / r.memory["jdeconv:lhs_dilation"] for r in results]
    rows = [
        ("jdeconv / min(TF, PyTorch), forward", "<= 1.0", median(fwd), lambda v: v <= 1.0),
        ("jdeconv / min(TF, PyTorch), forward + backward", "<= 1.0", median(fb),
         lambda v: v <= 1.0),
        ("speedup over jax.lax.conv_transpose, forward + backward", ">= 10x", median(lax),
         lambda v: v >= 10),
        ("3-D forward, jdeconv / TF", "<= 1.0 (no slower)", max(tf3) if tf3 else None,
         lambda v: v <= 1.0),
        ("forward throughput / same-FLOPs matmul throughput", ">= 60%", median(matmul),
         lambda v: v >= 0.6),
        ("peak memory fwd+bwd / lhs_dilation's", "<= 1.2", median(memory), lambda v: v <= 1.2),
    ]  # fmt: skip
    return [(what, goal, value, None if value is None else bool(check(value)))
            for what, goal, value, check in rows]  # fmt: skip


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    import importlib.metadata as metadata

    for package in ("jax", "jaxlib", "flax", "numpy", "tensorflow", "tensorflow-cpu", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    versions["jdeconv"] = jdeconv.__version__
    return versions


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


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _ratio(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_markdown(
    results, peak, summary, path: Path, command: str, backend: str, isolated: bool
) -> None:
    methods = [f"jdeconv:{m}" for m in jdeconv.METHODS]
    peers = ["jax.lax", "flax", "tensorflow", "pytorch"]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/bench.py`; see `benchmarks/README.md` for what is measured",
        "and why the `auto` policy is what it is.",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- Backend: {backend}",
        f"- Machine: {_machine()}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()),
        f"- Matmul peak (2048^3 float32, same process): {peak:.0f} GFLOP/s",
        "- Times are medians of interleaved rounds, in milliseconds, float32. Forward +",
        "  backward is the gradient of `sum((y - target)**2)/2` in the input and the kernel.",
        "- Each layer ran in a fresh Python process, its contenders interleaved there."
        if isolated
        else "- All layers ran in this one process.",
        "- glibc malloc: "
        + (
            ", ".join(f"`{k}={v}`" for k, v in STEADY_MALLOC.items())
            if all(os.environ.get(k) == v for k, v in STEADY_MALLOC.items())
            else "default settings"
        )
        + ".",
        "",
        "## Targets (medians over the suite)",
        "",
        "| target | goal | measured | holds |",
        "| --- | --- | --- | --- |",
    ]
    for what, goal, value, holds in summary:
        shown = "-" if value is None else (f"{value:.2f}" if "%" not in goal else f"{value:.0%}")
        verdict = "-" if holds is None else ("yes" if holds else "no")
        lines.append(f"| {what} | {goal} | {shown} | {verdict} |")
    for label, key in (("Forward", "forward"), ("Forward + backward", "forward_backward")):
        names = methods + peers
        lines += [
            "",
            f"## {label} (ms)",
            "",
            "| layer | " + " | ".join(names) + " | auto / min(TF, PyTorch) | auto GFLOP/s |",
            "| --- |" + " --- |" * (len(names) + 2),
        ]
        for r in results:
            times = getattr(r, key)
            best_peer = _peers_min(times)
            auto = times["jdeconv:auto"]
            flops = r.layer.flops * (1 if key == "forward" else 3)
            lines.append(
                f"| {r.layer.name} | "
                + " | ".join(_ms(times.get(n)) for n in names)
                + f" | {_ratio(auto / best_peer if best_peer else None)}"
                + f" | {flops / auto / 1e9:.0f} |"
            )
    lines += [
        "",
        "## Throughput against a matmul of the same FLOPs (forward)",
        "",
        f"Matmul peak: {peak:.0f} GFLOP/s. The same-FLOPs matmul is",
        "`(N * prod(I), C_in / G) @ (C_in / G, k^N * C_out / G)`, timed in the same rounds.",
        "",
        "| layer | GFLOP | auto GFLOP/s | matmul GFLOP/s | auto / matmul | auto / peak |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        auto = r.forward["jdeconv:auto"]
        matmul = r.forward["matmul (same FLOPs)"]
        lines.append(
            f"| {r.layer.name} | {r.layer.flops / 1e9:.2f} | {r.layer.flops / auto / 1e9:.0f} | "
            f"{r.layer.flops / matmul / 1e9:.0f} | {matmul / auto:.0%} | "
            f"{r.layer.flops / auto / 1e9 / peak:.0%} |"
        )
    lines += [
        "",
        "## Peak memory of the compiled forward + backward (MiB, XLA memory analysis)",
        "",
        "| layer | " + " | ".join(methods) + " | auto / lhs_dilation |",
        "| --- |" + " --- |" * (len(methods) + 1),
    ]
    for r in results:
        lines.append(
            f"| {r.layer.name} | "
            + " | ".join(f"{r.memory[m] / 2**20:.1f}" for m in methods)
            + f" | {r.memory['jdeconv:auto'] / r.memory['jdeconv:lhs_dilation']:.2f} |"
        )
    part_names = sorted({name for r in results for name in r.parts}, key=_part_order)
    lines += [
        "",
        "## Design alternatives inside the phase lowerings (ms, one map alone)",
        "",
        "`T`: transposed convolution; `F`: input gradient; `K`: kernel gradient.",
        "The last columns are the lowerings whose maps `auto` uses on CPU.",
        "",
        "| layer | " + " | ".join(part_names) + " | auto T | auto F | auto K |",
        "| --- |" + " --- |" * (len(part_names) + 3),
    ]
    for r in results:
        lines.append(
            f"| {r.layer.name} | "
            + " | ".join(_ms(r.parts.get(n)) for n in part_names)
            + "".join(f" | {r.auto[m]}" for m in ("transpose_conv", "forward_conv", "kernel_grad"))
            + " |"
        )
    lines += ["", "## Layers", ""]
    for r in results:
        lines.append(f"- `{r.layer.name}`: {r.layer.describe()}")
    lines += [
        "",
        "## Agreement with the reference lowering (forward, max |diff| / max |y|)",
        "",
    ]
    for r in results:
        errors = ", ".join(f"{n} {e:.1e}" for n, e in r.max_error.items() if n != methods[1])
        lines.append(f"- `{r.layer.name}`: {errors}")
    notes = sorted({f"`{r.layer.name}`: {n}" for r in results for n in r.notes})
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    path.write_text("\n".join(lines) + "\n")


def _part_order(name: str) -> tuple[int, str]:
    return ("TFK".index(name[0]) if name[0] in "TFK" else 3, name)


def write_chart(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contenders = ["jdeconv:auto", "jdeconv:lhs_dilation", "jax.lax", "flax", "tensorflow",
                  "pytorch"]  # fmt: skip
    fig, axes = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    width = 0.8 / len(contenders)
    positions = np.arange(len(results))
    for ax, key, title in (
        (axes[0], "forward", "Forward"),
        (axes[1], "forward_backward", "Forward + backward"),
    ):
        for i, name in enumerate(contenders):
            values = []
            for r in results:
                times = getattr(r, key)
                best = _peers_min(times)
                values.append(times[name] / best if name in times and best else np.nan)
            ax.bar(positions + (i - len(contenders) / 2 + 0.5) * width, values, width,
                   label=name)  # fmt: skip
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("time / min(TF, PyTorch)")
        ax.set_title(f"{title}: lower is faster; 1 = the faster of TF and PyTorch")
    axes[1].set_xticks(positions, [r.layer.name for r in results], rotation=30, ha="right")
    axes[0].legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", help="comma-separated layer names (default: all)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per contender")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
    parser.add_argument("--budget", type=float, default=1.5,
                        help="seconds of timed calls after which a contender stops")  # fmt: skip
    parser.add_argument("--out", type=Path,
                        help="directory for the results (default: benchmarks/, or "
                        "benchmarks/steady_malloc/ with --steady-malloc)")  # fmt: skip
    parser.add_argument(
        "--steady-malloc",
        action="store_true",
        help="keep glibc from returning large blocks to the OS (see README)",
    )
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="run all layers in this process, not each in a new one")  # fmt: skip
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = HERE / "steady_malloc" if args.steady_malloc else HERE
    if args.steady_malloc:
        if not args.isolate:
            parser.error("--steady-malloc needs fresh processes; drop --no-isolate")
        os.environ.update(STEADY_MALLOC)
    from tqdm import tqdm

    layers = LAYERS
    if args.layers:
        wanted = args.layers.split(",")
        unknown = sorted(set(wanted) - {layer.name for layer in LAYERS})
        if unknown:
            parser.error(f"unknown layers {unknown}; known: {[layer.name for layer in LAYERS]}")
        layers = tuple(layer for layer in LAYERS if layer.name in wanted)
    backends = ["cpu"] + (["gpu"] if any(d.platform == "gpu" for d in jax.devices()) else [])
    command = " ".join(
        ["python", "benchmarks/bench.py", *(argv if argv is not None else sys.argv[1:])]
    )
    for backend in backends:
        args.backend = backend
        with jax.default_device(jax.devices(backend)[0]):
            peak = matmul_peak(args.rounds)
            results = []
            if args.isolate:
                with tqdm(total=len(layers), desc=f"bench ({backend})", unit="layer") as progress:
                    for layer in layers:
                        progress.set_postfix_str(layer.name)
                        results.append(run_layer_isolated(layer, args))
                        progress.update(1)
            else:
                with tqdm(total=len(layers) * 3, desc=f"bench ({backend})", unit="step") as bar:
                    for layer in layers:
                        results.append(run_layer(layer, args, bar))
            summary = summarize(results)
        suffix = "" if backend == "cpu" else f"_{backend}"
        args.out.mkdir(parents=True, exist_ok=True)
        write_markdown(
            results, peak, summary, args.out / f"RESULTS{suffix}.md", command, backend, args.isolate
        )
        write_chart(results, args.out / f"results{suffix}.png")
        for what, goal, value, holds in summary:
            shown = "-" if value is None else f"{value:.2f}"
            verdict = "" if holds is None else ("holds" if holds else "does not hold")
            print(f"{what}: {shown} (goal {goal}) {verdict}")


if __name__ == "__main__":
    main()
