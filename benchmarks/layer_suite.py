"""The layer suite: transposed convolutions with the shapes of real models.

Each :class:`Layer` is timed forward and forward + backward (gradients in
the input and the kernel of ``sum((y - target) ** 2) / 2``, so that the
forward pass is part of the step and the cotangent is a fresh array) for
every ``jdeconv`` method and for ``jax.lax.conv_transpose``, TensorFlow and
PyTorch. Only jdeconv's public API is used; output sizes and paddings are
computed here, by TensorFlow's rules.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from timing import Contender, TimingSettings, interleaved_medians, jax_call

import jdeconv

PEERS = ("tensorflow", "pytorch")
LAX = "jax.lax"
AUTO = "jdeconv:auto"
AUTOTUNE = "jdeconv:autotune"
#: jdeconv's columns: every method, then autotune.
METHODS = (*jdeconv.METHODS, "autotune")
#: The fixed methods that autotune is compared with (auto's rules are not one).
FIXED = tuple(f"jdeconv:{m}" for m in jdeconv.METHODS if m != "auto")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One transposed convolution, as a model uses it; dilation 1, square kernel."""

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
        spatial = "DHW"[3 - self.rank :]
        return f"N{spatial}C" if self.channels_last else f"NC{spatial}"

    def _padding_of(self, dim: int) -> str | tuple[int, int]:
        return self.padding if isinstance(self.padding, str) else self.padding[dim]

    @property
    def output_size(self) -> tuple[int, ...]:
        """Keras' sizes: ``I * s`` for SAME, the smallest TF accepts otherwise."""
        sizes = []
        for dim, size in enumerate(self.input_size):
            padding = self._padding_of(dim)
            if padding == "SAME":
                sizes.append(size * self.stride)
            else:
                before, after = (0, 0) if padding == "VALID" else padding
                sizes.append((size - 1) * self.stride + self.kernel - before - after)
        return tuple(sizes)

    @property
    def forward_padding(self) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` per dimension of the forward convolution (TF's rule)."""
        pairs = []
        for dim, (size, out) in enumerate(zip(self.input_size, self.output_size)):
            padding = self._padding_of(dim)
            need = (size - 1) * self.stride + self.kernel - out
            if padding == "SAME":
                before = max(need, 0) // 2
            elif padding == "VALID":
                before = 0
            else:
                before = padding[0]
            pairs.append((before, need - before))
        return tuple(pairs)

    @property
    def op_padding(self) -> str | list[tuple[int, int]]:
        """The ``padding`` argument of TF's op: a string, or pairs for every axis."""
        if isinstance(self.padding, str):
            return self.padding
        pairs = list(self.padding)
        return [(0, 0), *pairs, (0, 0)] if self.channels_last else [(0, 0), (0, 0), *pairs]

    @property
    def lhs_dilated_padding(self) -> tuple[tuple[int, int], ...]:
        """The padding of the equivalent convolution of the stride-dilated input."""
        k = self.kernel
        return tuple((k - 1 - before, k - 1 - after) for before, after in self.forward_padding)

    def shape(self, spatial: tuple[int, ...], channels: int) -> tuple[int, ...]:
        if self.channels_last:
            return (self.batch, *spatial, channels)
        return (self.batch, channels, *spatial)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shape(self.input_size, self.in_channels)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shape(self.output_size, self.out_channels)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """TensorFlow's ``[*k, C_out / groups, C_in]``."""
        return (*(self.kernel,) * self.rank, self.out_channels // self.groups, self.in_channels)

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
        out = "x".join(map(str, self.output_size))
        pad = self.padding if isinstance(self.padding, str) else f"pad {self.padding[0]}"
        groups = f" groups {self.groups}" if self.groups > 1 else ""
        return (
            f"{self.model}: {self.data_format} {size}->{out}, k{self.kernel} s{self.stride} "
            f"{pad}, {self.in_channels}->{self.out_channels}, batch {self.batch}{groups}"
        )


LAYERS = (
    Layer("dcgan_g1", "DCGAN generator", 64, (4, 4), 512, 256, 5, 2, "SAME"),
    Layer("dcgan_g2", "DCGAN generator", 64, (8, 8), 256, 128, 5, 2, "SAME"),
    Layer("dcgan_g3", "DCGAN generator (64 base filters)", 16, (8, 8), 512, 256, 5, 2, "SAME"),
    Layer("dcgan_g4", "DCGAN generator (64 base filters)", 16, (16, 16), 256, 128, 5, 2, "SAME"),
    Layer("dcgan_pt", "DCGAN generator (PyTorch style)", 32, (16, 16), 128, 64, 4, 2,
          ((1, 1), (1, 1))),
    Layer("dcgan_rgb", "DCGAN generator, image layer", 16, (32, 32), 64, 3, 5, 2, "SAME"),
    Layer("unet_up", "U-Net decoder", 8, (32, 32), 128, 64, 2, 2, "VALID"),
    Layer("vae_dec", "VAE decoder", 32, (16, 16), 64, 32, 3, 2, "SAME"),
    Layer("stride1_k3", "decoder layer at stride 1", 16, (32, 32), 128, 64, 3, 1, "SAME"),
    Layer("seg_up4", "segmentation head, x4 upsampling", 2, (64, 64), 64, 32, 8, 4, "SAME"),
    Layer("sr_k4s3", "x3 upsampling, odd kernel", 8, (32, 32), 64, 32, 4, 3, "VALID"),
    Layer("fcn8s_up", "FCN-8s upsampling", 1, (32, 32), 21, 21, 16, 8, ((4, 4), (4, 4))),
    Layer("fcn32s_up", "FCN-32s upsampling", 1, (8, 8), 21, 21, 64, 32, ((16, 16), (16, 16))),
    Layer("audio_up", "1-D audio upsampler", 8, (1024,), 128, 64, 16, 8, "SAME"),
    Layer("volume_dec", "3-D volume decoder", 2, (8, 8, 8), 64, 32, 3, 2, "SAME"),
    Layer("volume_up", "3-D U-Net decoder", 2, (16, 16, 16), 32, 16, 2, 2, "VALID"),
    Layer("unet_nchw", "U-Net decoder, channels-first", 8, (32, 32), 64, 32, 4, 2, "SAME",
          channels_last=False),
    Layer("depthwise_up", "depthwise upsampling", 8, (32, 32), 64, 64, 4, 2, "SAME", groups=64),
)  # fmt: skip

#: A 1-D, a 2-D and a 3-D layer, small: ``--quick``.
QUICK_LAYERS = ("vae_dec", "audio_up", "volume_dec")


# ------------------------------------------------------------ the functions

Forward = Callable[[jax.Array, jax.Array], jax.Array]


def jdeconv_forward(layer: Layer, method: str) -> Forward:
    def forward(x, w):
        return jdeconv.conv_transpose(
            x,
            w,
            layer.output_shape,
            layer.stride,
            layer.op_padding,
            layer.data_format,
            groups=layer.groups,
            method=method,
        )

    return forward


def lax_forward(layer: Layer) -> Forward | None:
    """``jax.lax.conv_transpose`` on TF's kernel (``transpose_kernel=True``); None without."""
    if layer.groups > 1:
        return None
    spatial = "DHW"[3 - layer.rank :]
    dimension_numbers = (layer.data_format, f"{spatial}IO", layer.data_format)

    def forward(x, w):
        return jax.lax.conv_transpose(
            x,
            w,
            (layer.stride,) * layer.rank,
            layer.lhs_dilated_padding,
            dimension_numbers=dimension_numbers,
            transpose_kernel=True,
        )

    return forward


def loss_grad(forward: Forward) -> Callable:
    """``grad(x, w, target)``: the gradient in ``(x, w)`` of ``sum((y - target) ** 2) / 2``."""

    def loss(x, w, target):
        return 0.5 * jnp.sum(jnp.square(forward(x, w) - target))

    return jax.grad(loss, argnums=(0, 1))


def jax_functions(layer: Layer) -> tuple[dict[str, Forward], list[str]]:
    """jdeconv's methods and ``jax.lax`` (where it has the layer), and notes."""
    functions = {f"jdeconv:{m}": jdeconv_forward(layer, m) for m in METHODS}
    lax = lax_forward(layer)
    if lax is None:
        return functions, [f"{LAX}: no groups in jax.lax.conv_transpose"]
    return {**functions, LAX: lax}, []


def reference_name(functions: dict[str, object]) -> str:
    """The reference: ``jax.lax.conv_transpose``, or jdeconv's lhs-dilated lowering where lax
    has no groups (the program lax would build)."""
    return LAX if LAX in functions else "jdeconv:lhs_dilation"


def layer_arrays(layer: Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input, kernel (TF layout, unit-variance output) and loss target, float32."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.input_shape, np.float32)
    fan_in = layer.kernel**layer.rank * layer.in_channels // layer.groups
    w = (rng.standard_normal(layer.kernel_shape) / math.sqrt(fan_in)).astype(np.float32)
    target = rng.standard_normal(layer.output_shape, np.float32)
    return x, w, target


def tf_runs(layer: Layer, x: np.ndarray, w: np.ndarray, target: np.ndarray):
    """``tf.nn.conv*_transpose`` in ``tf.function``: (forward, forward+backward, note)."""
    try:
        import tensorflow as tf
    except ImportError:
        return None, None, "TensorFlow not installed"
    if layer.groups > 1:
        return None, None, "tf.nn.conv_transpose has no groups"
    op = {1: tf.nn.conv1d_transpose, 2: tf.nn.conv2d_transpose, 3: tf.nn.conv3d_transpose}
    op = op[layer.rank]
    # TF's own CPU kernels refuse channels-first; its XLA path computes it.
    jit_compile = not layer.channels_last
    note = "TF with jit_compile=True (its CPU kernel refuses NCHW)" if jit_compile else None
    xt, wt, tt = tf.constant(x), tf.constant(w), tf.constant(target)

    @tf.function(jit_compile=jit_compile)
    def forward(x, w):
        return op(
            x, w, layer.output_shape, layer.stride, layer.op_padding, data_format=layer.data_format
        )

    @tf.function(jit_compile=jit_compile)
    def forward_backward(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = 0.5 * tf.reduce_sum(tf.square(forward(x, w) - tt))
        return tape.gradient(loss, [x, w])

    def run_forward():
        return forward(xt, wt).numpy()

    def run_forward_backward():
        return [g.numpy() for g in forward_backward(xt, wt)]

    return run_forward, run_forward_backward, note


def torch_padding(layer: Layer) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """PyTorch's ``(padding, output_padding)`` for the layer's output size, or None.

    PyTorch pads both sides equally and adds ``output_padding`` at the end; an
    uneven TF padding takes the larger side (the same work, the output shifted
    by one).
    """
    pads, extras = [], []
    for size, out, (before, after) in zip(
        layer.input_size, layer.output_size, layer.forward_padding
    ):
        pad = max(before, after)
        extra = out - ((size - 1) * layer.stride - 2 * pad + layer.kernel)
        if not 0 <= extra < layer.stride:
            return None
        pads.append(pad)
        extras.append(extra)
    return tuple(pads), tuple(extras)


def torch_runs(layer: Layer, x: np.ndarray, w: np.ndarray, target: np.ndarray):
    """``torch.nn.functional.conv_transpose*d`` on channels-first tensors."""
    try:
        import torch
    except ImportError:
        return None, None, "PyTorch not installed"
    paddings = torch_padding(layer)
    if paddings is None:
        return None, None, f"no PyTorch padding for {layer.padding}"
    padding, output_padding = paddings
    uneven = any(before != after for before, after in layer.forward_padding)
    note = "PyTorch pads symmetrically (output shifted by one)" if uneven else None
    functional = torch.nn.functional
    conv = (functional.conv_transpose1d, functional.conv_transpose2d, functional.conv_transpose3d)[
        layer.rank - 1
    ]

    def channels_first(a):
        return torch.from_numpy(np.moveaxis(a, -1, 1).copy() if layer.channels_last else a.copy())

    n = layer.rank
    xp, tp = channels_first(x), channels_first(target)
    # TF [*k, C_out / G, C_in] -> PyTorch (C_in, C_out / G, *k).
    wp = torch.from_numpy(np.ascontiguousarray(np.moveaxis(w, (n, n + 1), (1, 0))))
    xp.requires_grad_(True)
    wp.requires_grad_(True)
    options = dict(
        stride=layer.stride, padding=padding, output_padding=output_padding, groups=layer.groups
    )

    def run_forward():
        with torch.no_grad():
            return conv(xp, wp, **options)

    def run_forward_backward():
        y = conv(xp, wp, **options)
        return torch.autograd.grad(0.5 * ((y - tp) ** 2).sum(), [xp, wp])

    return run_forward, run_forward_backward, note


# ------------------------------------------------------------- measurement


@dataclasses.dataclass
class LayerResult:
    """What one layer measured: seconds, bytes, agreement and notes."""

    layer: Layer
    forward: dict[str, float]
    forward_backward: dict[str, float]
    peak_bytes: dict[str, int]
    reference: str
    max_error: dict[str, float]
    notes: list[str]
    #: Seconds of the first forward + backward call (trace, lower, tune, compile, run)
    #: of auto and of autotune, and autotune's tuning time within it.
    first_call: dict[str, float] = dataclasses.field(default_factory=dict)
    tuning_seconds: float = 0.0


def peak_bytes(compiled: jax.stages.Compiled) -> int:
    """Arguments + outputs + XLA's temporary buffer, less what donated arguments alias.

    XLA:CPU allocates all temporaries of a call in one buffer of
    ``temp_size_in_bytes``, so this is the call's peak footprint.
    """
    stats = compiled.memory_analysis()
    return int(
        stats.temp_size_in_bytes
        + stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        - stats.alias_size_in_bytes
    )


def measure_layers(
    layers: list[Layer], settings: TimingSettings, on_progress: Callable[[], object] | None = None
) -> list[LayerResult]:
    """Times every layer's contenders, all in this process, rounds spanning all layers."""
    groups, setups = [], []
    for layer in layers:
        x, w, target = layer_arrays(layer)
        xj, wj, tj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(target)
        functions, notes = jax_functions(layer)
        forwards = {n: jax.jit(f) for n, f in functions.items()}
        grads = {n: jax.jit(loss_grad(f)) for n, f in functions.items()}
        first_call, tuning_seconds = _first_calls(grads, (xj, wj, tj))
        forward = [Contender(n, jax_call(f, xj, wj)) for n, f in forwards.items()]
        forward_backward = [Contender(n, jax_call(g, xj, wj, tj)) for n, g in grads.items()]
        outputs = {n: np.asarray(f(xj, wj), np.float64) for n, f in forwards.items()}
        for peer, make in zip(PEERS, (tf_runs, torch_runs)):
            run_forward, run_forward_backward, note = make(layer, x, w, target)
            if note:
                notes.append(f"{peer}: {note}")
            if run_forward is None:
                continue
            forward.append(Contender(peer, run_forward))
            forward_backward.append(Contender(peer, run_forward_backward))
            if peer == "tensorflow":
                outputs[peer] = np.asarray(run_forward(), np.float64)
        groups += [forward, forward_backward]
        setups.append((layer, grads, (xj, wj, tj), outputs, notes, first_call, tuning_seconds))

    medians = interleaved_medians(groups, settings, on_progress)

    results = []
    for i, (layer, grads, args, outputs, notes, first_call, tuning) in enumerate(setups):
        reference = reference_name(grads)
        expected = outputs[reference]
        scale = float(np.max(np.abs(expected))) or 1.0
        results.append(
            LayerResult(
                layer=layer,
                forward=medians[2 * i],
                forward_backward=medians[2 * i + 1],
                # Compiled already: the jit cache answers.
                peak_bytes={n: peak_bytes(g.lower(*args).compile()) for n, g in grads.items()},
                reference=reference,
                max_error={
                    n: float(np.max(np.abs(y - expected))) / scale
                    for n, y in outputs.items()
                    if n != reference
                },
                notes=notes,
                first_call=first_call,
                tuning_seconds=tuning,
            )
        )
    return results


def _first_calls(grads: dict[str, Callable], args: tuple) -> tuple[dict[str, float], float]:
    """The first forward + backward call of auto and of autotune, in seconds; the tuning's.

    Each is traced, lowered (where autotune measures its candidates), compiled
    and run once; autotune's tuning time is the sum over the maps it tuned.
    """
    first_call = {}
    tuned_before = len(jdeconv.autotune.choices())
    for name in (AUTO, AUTOTUNE):
        start = time.perf_counter()
        jax.block_until_ready(grads[name](*args))
        first_call[name] = time.perf_counter() - start
    tuning = sum(c.tuning_seconds for c in jdeconv.autotune.choices()[tuned_before:])
    return first_call, tuning
