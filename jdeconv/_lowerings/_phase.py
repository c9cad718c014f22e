"""The sub-pixel (phase) lowerings: stride-1 convolutions and depth-to-space.

Per spatial axis, write every output position as ``v = m * s + r`` with block
``m`` and phase ``r < s``. The taps that reach phase ``r`` form an ordinary
stride-1 kernel, so the transposed convolution is a stride-1 convolution of
the undilated input whose output channels are ``(phase, C_out)``, followed by a
depth-to-space reshape and a crop (:func:`transpose_conv`). Nothing is
computed on the zeros that the lhs-dilated form inserts between input pixels.

Dilation: with ``c = gcd(s, d)`` only every ``c``-th output is reached, so the
decomposition runs on the coarse grid of stride ``s / c`` and dilation
``d / c`` and interleaves zeros back (one ``lax.pad``). Where ``s / c == 1`` the
single phase keeps its kernel and convolves with ``rhs_dilation = d / c``.

Kernel sizes that are not a multiple of the stride: phase ``r`` has
``ceil(k / s)`` taps when ``r < k % s`` and one fewer otherwise. Padding every
phase to ``ceil(k / s)`` taps would waste work (44% for ``k=5, s=2`` in 2-D),
so the phases split into a long and a short part per axis, and each
combination of parts gets its own exact convolution.

Alignment: the blocks start at the first output position (the phases are
rotated; the wrapped ones start one block later), so that no block row is
computed only to be cropped. This splits the phases once more where the
padding is not a multiple of the stride.

The adjoints come in two forms:

* :func:`forward_conv_strided` and :func:`kernel_grad_conv`: the forward
  strided convolution and TensorFlow's backprop-filter convolution;
* :func:`forward_conv_phase` and :func:`kernel_grad_matmul`: the same maps in
  phase space, the exact adjoints of the parts of :func:`transpose_conv` (a
  stride-1 convolution of the space-to-depth gradient, or one matmul and an
  overlap-add; one matmul per phase lag).

All convolutions go through :mod:`jdeconv._lowerings._cpu_convolutions`, which gives
XLA:CPU the shapes its fast library runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jdeconv._lowerings import _cpu_convolutions
from jdeconv._lowerings._arrays import channels_last, pad_axes
from jdeconv._lowerings._interface import BilinearMap, ConvConfig
from jdeconv._shapes import ConvTransposeGeometry


class _Part(NamedTuple):
    """A contiguous range of phases of one axis that share a tap count and offset.

    ``start``/``stop`` index the phases on the grid ``v = m * phases + r`` (of
    positions ``v = (o + pad_before) / common``); ``position`` is where the
    range sits among the phases ordered from the first output position on;
    ``first`` is the block that holds that output position's phase.
    """

    start: int
    stop: int
    lags: int
    first: int
    position: int


class _Axis(NamedTuple):
    """The phase decomposition of one spatial axis, in blocks of ``phases``."""

    input_size: int
    output_size: int
    kernel_size: int
    common: int
    phases: int
    step: int
    lags: int
    conv_dilation: int
    blocks: int
    offset: int
    parts: tuple[_Part, ...]

    def window(self, lags: int) -> int:
        """Extent of a ``lags``-tap phase kernel, in blocks."""
        return (lags - 1) * self.conv_dilation + 1

    @property
    def pad_config(self) -> tuple[int, int, int]:
        """``lax.pad`` from the interleaved phases to the output: zeros between, crop."""
        length = (self.blocks * self.phases - 1) * self.common + 1
        return self.offset, self.output_size - self.offset - length, self.common - 1


def _plan_axis(
    i: int,
    o: int,
    k: int,
    s: int,
    d: int,
    before: int,
) -> _Axis:
    """Plans one axis.

    Args are the axis' input size, output size, kernel size, stride, dilation
    and forward padding before the signal.
    """
    common = math.gcd(s, d)
    phases, step = s // common, d // common
    if phases == 1:
        lags, conv_dilation = k, step
    else:
        lags, conv_dilation = (k - 1) * step // phases + 1, 1
    # Output position 0 sits at v = before / common on the coarse grid; v0 is
    # the first position on or after it that an input reaches.
    v0 = -(-before // common)
    offset = v0 * common - before
    reached = -(-(o - offset) // common) if o > offset else 0
    blocks = -(-reached // phases)
    rotation, base = v0 % phases, v0 // phases
    long_phases = k % phases if phases > 1 and step == 1 else 0
    cuts = sorted({0, phases, long_phases, rotation})
    ranges = [(a, b) for a, b in itertools.pairwise(cuts) if a < b]
    ranges = [r for r in ranges if r[0] >= rotation] + [r for r in ranges if r[0] < rotation]
    parts, position = [], 0
    for a, b in ranges:
        part_lags = lags - 1 if long_phases and a >= long_phases else lags
        parts.append(_Part(a, b, part_lags, base + (a < rotation), position))
        position += b - a
    return _Axis(i, o, k, common, phases, step, lags, conv_dilation, blocks, offset, tuple(parts))


def _plan(geometry: ConvTransposeGeometry) -> tuple[_Axis, ...]:
    return tuple(
        _plan_axis(i, o, k, s, d, before)
        for i, o, k, s, d, (before, _) in zip(
            geometry.input_size,
            geometry.output_size,
            geometry.kernel_size,
            geometry.strides,
            geometry.dilations,
            geometry.padding,
        )
    )


def supports(geometry: ConvTransposeGeometry) -> bool:
    """Whether the decomposition applies.

    It needs a non-empty input and an output that some input position reaches
    in every dimension; otherwise the result is zeros and the reference
    lowering computes it.
    """
    return all(geometry.input_size) and all(axis.blocks for axis in _plan(geometry))


def kernel_grad_matmul_pads_input(geometry: ConvTransposeGeometry) -> bool:
    """Whether :func:`kernel_grad_matmul` pads the input with zeros for some lag.

    It aligns each lag's shifted input with the gradient's blocks; where a
    shift reaches past the input, the input is padded, and those zeros meet
    the gradient in the matmul: an Inf or NaN there gives NaN in the kernel
    gradient where the definition has no product at all.
    """
    return any(
        max(_lag_window_padding(axis, part, lag)) > 0
        for axis in _plan(geometry)
        for part in axis.parts
        for lag in range(part.lags)
    )


def _lag_window_padding(axis: _Axis, part: _Part, lag: int) -> tuple[int, int]:
    """``(low, high)`` padding that aligns the input, shifted by ``lag``, with the blocks.

    Block ``b`` meets input position ``b - low``; negative entries crop.
    """
    offset = lag * axis.conv_dilation - part.first
    return offset, axis.blocks - axis.input_size - offset


def _blocks_with_taps(axes: tuple[_Axis, ...]) -> Iterator[tuple[_Part, ...]]:
    """Every combination of one part per axis whose phases have at least one tap."""
    for block in itertools.product(*(axis.parts for axis in axes)):
        if all(p.lags for p in block):
            yield block


def _phase_taps(w: jax.Array, dim: int, axis: _Axis, phase: int, lags: int) -> jax.Array:
    """The taps of one phase along ``dim`` of ``w``, as ``lags`` stride-1 taps.

    Tap ``t`` sits at ``t * step = q * phases + phase`` on the coarse grid, so
    the phase's taps are every ``phases``-th tap of ``w`` (a strided slice),
    ``step`` lags apart (zeros between) from the first lag ``q0`` that an
    integer tap reaches. Lags that no tap reaches are zeros.
    """
    phases, step, size = axis.phases, axis.step, axis.kernel_size
    # phases and step are coprime, so some q < step reaches an integer tap.
    q0 = next(q for q in range(step) if (q * phases + phase) % step == 0)
    t0 = (q0 * phases + phase) // step
    count = min(-(-(size - t0) // phases), -(-(lags - q0) // step)) if q0 < lags else 0
    if count <= 0:
        shape = list(w.shape)
        shape[dim] = lags
        return jnp.zeros(shape, w.dtype)
    taps = lax.slice_in_dim(w, t0, t0 + (count - 1) * phases + 1, phases, axis=dim)
    return pad_axes(taps, [dim], [(q0, lags - q0 - (count - 1) * step - 1, step - 1)])


def _part_kernel(w: jax.Array, axes: tuple[_Axis, ...], block: tuple[_Part, ...]) -> jax.Array:
    """``[*k, A, B]`` to ``[*lags, *phases, A, B]`` for one part: its phases' taps.

    Each part reads its taps from ``w`` with slices, so that XLA fuses the
    selection into each consumer instead of materialising a padded copy of
    the whole kernel for all of them. Without dilation, lag ``q`` of the
    part's phases is the contiguous run of taps ``q * phases + [start, stop)``,
    one slice per lag; otherwise (and with dilation) one strided slice per
    phase; whichever makes fewer slices.
    """
    n = len(axes)
    for a, (axis, part) in enumerate(zip(axes, block)):
        dim = 2 * a  # axes before it are already (lags, phases) pairs
        if axis.phases == 1:
            w = jnp.expand_dims(w, dim + 1)
        elif axis.step == 1 and part.lags < part.stop - part.start:
            runs = [
                lax.slice_in_dim(
                    w, q * axis.phases + part.start, q * axis.phases + part.stop, axis=dim
                )
                for q in range(part.lags)
            ]
            w = jnp.stack(runs, axis=dim)
        else:
            taps = [_phase_taps(w, dim, axis, r, part.lags) for r in range(part.start, part.stop)]
            w = jnp.stack(taps, axis=dim + 1)
    return w.transpose(*range(0, 2 * n, 2), *range(1, 2 * n, 2), 2 * n, 2 * n + 1)


def _phase_kernel_adjoint(wp: jax.Array, axes: tuple[_Axis, ...]) -> jax.Array:
    """``[*lags, *phases, A, B]`` (all phases, full lags) back to ``[*k, A, B]``.

    The adjoint of gathering every part with :func:`_part_kernel`: tap ``t``
    is read at ``t * step = q * phases + r``; the other entries are dropped.
    """
    n = len(axes)
    wp = wp.transpose(*(i for a in range(n) for i in (a, n + a)), 2 * n, 2 * n + 1)
    wp = wp.reshape(*(axis.lags * axis.phases for axis in axes), *wp.shape[2 * n :])
    limit, strides = list(wp.shape), [1] * wp.ndim
    for a, axis in enumerate(axes):
        if axis.phases > 1:
            limit[a] = (axis.kernel_size - 1) * axis.step + 1
            strides[a] = axis.step
    return lax.slice(wp, [0] * wp.ndim, limit, strides)


def _phase_pad_config(axis: _Axis, phase: int) -> tuple[int, int, int]:
    """``lax.pad`` from one phase's blocks to the output axis: the phase's positions."""
    low = axis.offset + phase * axis.common
    interior = axis.phases * axis.common - 1
    return low, axis.output_size - low - (axis.blocks - 1) * (interior + 1) - 1, interior


def _interleave(
    z: jax.Array, geometry: ConvTransposeGeometry, axes: tuple[_Axis, ...]
) -> jax.Array:
    """:func:`_depth_to_space` as a sum of one interior-padded array per phase.

    A reshape of a split axis keeps it split only where the blocks divide
    evenly over the devices; XLA partitions pads and sums of a split axis
    with halo exchanges whatever the split. On one device the reshape is
    faster (its adjoint fuses with the gradient's consumers).
    """
    n = len(axes)
    channels = z.shape[n + 1] * z.shape[-1]
    pieces = []
    for phase in itertools.product(*(range(axis.phases) for axis in axes)):
        piece = z[(slice(None),) * (n + 2) + phase]  # (N, *blocks, G, C_out / G)
        piece = piece.reshape(*piece.shape[: n + 1], channels)
        if not geometry.channels_last:
            piece = jnp.moveaxis(piece, -1, 1)
        pads = [_phase_pad_config(axis, r) for axis, r in zip(axes, phase)]
        pieces.append(pad_axes(piece, geometry.spatial_axes, pads))
    return sum(pieces[1:], start=pieces[0])


def _unpad_spatial(
    g: jax.Array, geometry: ConvTransposeGeometry, pads: list[tuple[int, int, int]]
) -> jax.Array:
    """Adjoint of ``lax.pad`` with ``(low, high, interior)`` on the spatial axes."""
    strides = [1] * g.ndim
    for a, (_, _, interior) in zip(geometry.spatial_axes, pads):
        strides[a] = interior + 1
    g = pad_axes(
        g, geometry.spatial_axes, [(-low, interior - high) for low, high, interior in pads]
    )
    if any(stride > 1 for stride in strides):
        g = lax.slice(g, [0] * g.ndim, g.shape, strides)
    return g


def _deinterleave(
    g: jax.Array, geometry: ConvTransposeGeometry, axes: tuple[_Axis, ...]
) -> jax.Array:
    """Adjoint of :func:`_interleave`: one strided slice per phase, stacked."""
    n = len(axes)
    pieces = []
    for phase in itertools.product(*(range(axis.phases) for axis in axes)):
        pads = [_phase_pad_config(axis, r) for axis, r in zip(axes, phase)]
        piece = channels_last(_unpad_spatial(g, geometry, pads), geometry)
        pieces.append(piece.reshape(*piece.shape[:-1], geometry.groups, -1))
    out = jnp.stack(pieces, axis=n + 2)  # (N, *blocks, G, phase, C_out / G)
    return out.reshape(*out.shape[: n + 2], *(axis.phases for axis in axes), out.shape[-1])


def _depth_to_space(
    z: jax.Array, geometry: ConvTransposeGeometry, axes: tuple[_Axis, ...], partitioned: bool
) -> jax.Array:
    """``(N, *blocks, G, *phases, C_out / G)`` to the output, in its layout.

    Where the arrays may be split over devices, as :func:`_interleave`.
    """
    if partitioned:
        return _interleave(z, geometry, axes)
    n = len(axes)
    batch, groups, per_group = z.shape[0], z.shape[n + 1], z.shape[-1]
    interleaved = [i for a in range(n) for i in (1 + a, n + 2 + a)]
    sizes = [axis.blocks * axis.phases for axis in axes]
    if geometry.channels_last:
        z = z.transpose(0, *interleaved, n + 1, 2 * n + 2)
        z = z.reshape(batch, *sizes, groups * per_group)
    else:
        z = z.transpose(0, n + 1, 2 * n + 2, *interleaved)
        z = z.reshape(batch, groups * per_group, *sizes)
    return pad_axes(z, geometry.spatial_axes, [axis.pad_config for axis in axes])


def _space_to_depth(
    g: jax.Array, geometry: ConvTransposeGeometry, axes: tuple[_Axis, ...], partitioned: bool
) -> jax.Array:
    """Adjoint of :func:`_depth_to_space`."""
    if partitioned:
        return _deinterleave(g, geometry, axes)
    n, groups = len(axes), geometry.groups
    g = _unpad_spatial(g, geometry, [axis.pad_config for axis in axes])
    split = [size for axis in axes for size in (axis.blocks, axis.phases)]
    blocks = [1 + 2 * a for a in range(n)]
    if geometry.channels_last:
        g = g.reshape(g.shape[0], *split, groups, -1)
        return g.transpose(0, *blocks, 2 * n + 1, *(b + 1 for b in blocks), 2 * n + 2)
    g = g.reshape(g.shape[0], groups, -1, *split)
    return g.transpose(0, *(b + 2 for b in blocks), 1, *(b + 3 for b in blocks), 2)


def _gradient_part(gz: jax.Array, block: tuple[_Part, ...], partitioned: bool) -> jax.Array:
    """One part's phases of the space-to-depth gradient, as rows of channels.

    Returns ``(N * prod(blocks), G * phases * C_out / G)``. The input and the
    kernel gradients both read this matrix; giving it one shape lets XLA
    compute it once for both rather than once per consumer. Where the arrays
    may be split over devices, the rows stay ``(N, *blocks)`` axes, so that
    a split along the batch or a spatial axis carries over.
    """
    n = len(block)
    index = (slice(None),) * (n + 2) + tuple(
        slice(p.position, p.position + p.stop - p.start) for p in block
    )
    part = gz[index]
    rows = part.shape[: n + 1] if partitioned else (math.prod(part.shape[: n + 1]),)
    return part.reshape(*rows, -1)


def _assemble(part, axes: tuple[_Axis, ...], axis_offset: int, *, output_order: bool) -> jax.Array:
    """Concatenates ``part(block)`` over all blocks along the phase axes.

    Phases end up in output order (as the output needs them) or in grid order
    (as the phase kernel holds them).
    """

    def build(a: int, prefix: tuple[_Part, ...]) -> jax.Array:
        if a == len(axes):
            return part(prefix)
        parts = axes[a].parts if output_order else sorted(axes[a].parts)
        pieces = [build(a + 1, (*prefix, p)) for p in parts]
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=axis_offset + a)

    return build(0, ())


def transpose_conv(x: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """The transposed convolution: a stride-1 convolution per part, then depth-to-space.

    The convolutions pad the input with zeros, and a kernel tap that is Inf
    or NaN makes NaN where it meets one, at positions the definition leaves
    finite (or infinite). So where the kernel holds a non-finite value, the
    same parts are computed by :func:`transpose_conv_overlap_add` instead
    (see :func:`exact_where_kernel_non_finite`). Grouped layers have one
    form only.
    """
    return exact_where_kernel_non_finite(_transpose_conv_by_convolutions, x, w, config)


def exact_where_kernel_non_finite(
    transpose_conv: BilinearMap, x: jax.Array, w: jax.Array, config: ConvConfig
) -> jax.Array:
    """``transpose_conv(x, w)``, or :func:`transpose_conv_overlap_add` where ``w`` is not finite.

    One reduction over the kernel decides, at run time. The overlap-add
    multiplies no added zero, so its value is non-finite exactly where the
    definition says. Grouped layers get ``transpose_conv`` alone.
    """
    if config.geometry.groups > 1:
        return transpose_conv(x, w, config)
    return _unless_non_finite(w, transpose_conv, transpose_conv_overlap_add, x, w, config)


def _unless_non_finite(
    checked: jax.Array,
    fast: BilinearMap,
    exact: BilinearMap,
    a: jax.Array,
    b: jax.Array,
    config: ConvConfig,
) -> jax.Array:
    """``fast(a, b)`` where ``checked`` is all finite, else ``exact(a, b)`` (a run-time cond)."""
    return lax.cond(
        jnp.all(jnp.isfinite(checked)),
        lambda a, b: fast(a, b, config),
        lambda a, b: exact(a, b, config),
        a,
        b,
    )


def _transpose_conv_by_convolutions(x: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """:func:`transpose_conv` as stride-1 convolutions of the zero-padded input."""
    geometry = config.geometry
    n, groups = geometry.num_spatial, geometry.groups
    axes = _plan(geometry)
    x = channels_last(x, geometry)
    per_group, in_channels = w.shape[-2:]
    dtype = config.preferred_element_type or x.dtype

    def part(block: tuple[_Part, ...]) -> jax.Array:
        phases = [p.stop - p.start for p in block]
        if not all(p.lags for p in block):
            shape = (x.shape[0], *(axis.blocks for axis in axes), groups, *phases, per_group)
            return jnp.zeros(shape, dtype)
        kernel = _part_kernel(w, axes, block)  # [*lags, *phases, C_out / G, C_in]
        kernel = kernel.reshape(*kernel.shape[:-1], groups, in_channels // groups)
        kernel = kernel.transpose(*range(n), 2 * n + 2, 2 * n + 1, *range(n, 2 * n + 1))
        kernel = lax.rev(kernel.reshape(*kernel.shape[:n], in_channels // groups, -1), range(n))
        z = _cpu_convolutions.conv(
            x,
            kernel,
            strides=(1,) * n,
            padding=[
                (axis.window(p.lags) - 1 - p.first, p.first + axis.blocks - axis.input_size)
                for axis, p in zip(axes, block)
            ],
            dilations=[axis.conv_dilation for axis in axes],
            groups=groups,
            config=config,
        )
        return z.reshape(*z.shape[:-1], groups, *phases, per_group)

    z = _assemble(part, axes, n + 2, output_order=True)
    return _depth_to_space(z, geometry, axes, config.partitioned)


def transpose_conv_overlap_add(x: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """The transposed convolution as one matmul per part and an overlap-add (no groups).

    Each part's matmul gives every lag's contribution at every input
    position; the lag ``q`` contribution of input position ``i`` lands on
    block ``i - first + q * dilation``, which a ``lax.pad`` per lag places (a
    crop where negative; XLA fuses the pads and the sum). No zero that a
    lowering adds is multiplied by a kernel tap, so an Inf or NaN in the
    kernel is non-finite exactly where the definition says. Grouped layers
    take :func:`transpose_conv`.
    """
    geometry = config.geometry
    if geometry.groups > 1:
        return _transpose_conv_by_convolutions(x, w, config)
    n = geometry.num_spatial
    axes = _plan(geometry)
    x = channels_last(x, geometry)
    per_group, in_channels = w.shape[-2:]
    dtype = config.preferred_element_type or x.dtype

    def part(block: tuple[_Part, ...]) -> jax.Array:
        phases = [p.stop - p.start for p in block]
        if not all(p.lags for p in block):
            shape = (x.shape[0], *(axis.blocks for axis in axes), 1, *phases, per_group)
            return jnp.zeros(shape, dtype)
        kernel = _part_kernel(w, axes, block)  # [*lags, *phases, C_out, C_in]
        counts = kernel.shape[:n]
        taps = kernel.reshape(math.prod(counts), -1, in_channels)  # [L, phases * C_out, C_in]
        contributions = []
        for index, lag in enumerate(itertools.product(*map(range, counts))):
            contribution = lax.dot_general(
                x,
                taps[index],
                (((n + 1,), (1,)), ((), ())),
                precision=config.precision,
                preferred_element_type=config.preferred_element_type,
            )  # (N, *I, phases * C_out)
            lows = [q * axis.conv_dilation - p.first for q, axis, p in zip(lag, axes, block)]
            pads = [(low, axis.blocks - axis.input_size - low) for low, axis in zip(lows, axes)]
            contributions.append(pad_axes(contribution, range(1, n + 1), pads))
        z = sum(contributions[1:], start=contributions[0])
        return z.reshape(*z.shape[:-1], 1, *phases, per_group)

    z = _assemble(part, axes, n + 2, output_order=True)
    return _depth_to_space(z, geometry, axes, config.partitioned)


def forward_conv_strided(g: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """The input gradient: the forward strided convolution, as one 2-D convolution."""
    geometry = config.geometry
    out = _cpu_convolutions.conv(
        channels_last(g, geometry),
        w,
        strides=geometry.strides,
        padding=geometry.padding,
        dilations=geometry.dilations,
        groups=geometry.groups,
        config=config,
    )
    return out if geometry.channels_last else jnp.moveaxis(out, -1, 1)


def kernel_grad_conv(x: jax.Array, g: jax.Array, config: ConvConfig) -> jax.Array:
    """The kernel gradient as TensorFlow's backprop-filter convolution."""
    geometry = config.geometry
    return _cpu_convolutions.filter_grad(
        channels_last(g, geometry),
        channels_last(x, geometry),
        geometry.kernel_size,
        strides=geometry.strides,
        padding=geometry.padding,
        dilations=geometry.dilations,
        groups=geometry.groups,
        config=config,
    )


def kernel_grad_matmul(x: jax.Array, g: jax.Array, config: ConvConfig) -> jax.Array:
    """The kernel gradient as phase-wise correlations (:func:`_kernel_grad_by_matmuls`).

    Where the matmuls pad the input (:func:`kernel_grad_matmul_pads_input`),
    its zeros would meet an Inf or NaN of the gradient and give NaN where the
    definition has no product; so where the gradient holds one (one
    reduction over it decides, at run time), :func:`kernel_grad_conv`
    computes it instead, which has no such product.
    """
    if not kernel_grad_matmul_pads_input(config.geometry):
        return _kernel_grad_by_matmuls(x, g, config)
    return _unless_non_finite(g, _kernel_grad_by_matmuls, kernel_grad_conv, x, g, config)


def _kernel_grad_by_matmuls(x: jax.Array, g: jax.Array, config: ConvConfig) -> jax.Array:
    """The kernel gradient as phase-wise correlations: one matmul per lag.

    For each part and each lag ``q`` of its phase kernel, the input shifted by
    ``q`` blocks is contracted with the space-to-depth output gradient over the
    batch and the positions. Each tap is computed once; where ``k <= s`` this
    is a single matmul. Groups with few channel pairs (depthwise layers) sum
    products per pair instead (:func:`_multiply_reduce`).
    """
    geometry = config.geometry
    n, groups = geometry.num_spatial, geometry.groups
    axes = _plan(geometry)
    # (N, *blocks, G, *phases, C_out / G)
    gz = _space_to_depth(g, geometry, axes, config.partitioned)
    x = channels_last(x, geometry)
    x = x.reshape(*x.shape[:-1], groups, -1)  # (N, *I, G, C_in / G)
    per_group, in_per_group = gz.shape[-1], x.shape[-1]
    dtype = config.preferred_element_type or jnp.promote_types(x.dtype, g.dtype)
    windows: dict[tuple[tuple[int, int], ...], jax.Array] = {}

    def window(lag: tuple[int, ...], block: tuple[_Part, ...]) -> jax.Array:
        """The input shifted by ``lag``, aligned with the blocks (computed once per shift)."""
        padding = tuple(_lag_window_padding(*args) for args in zip(axes, block, lag))
        if padding not in windows:
            windows[padding] = pad_axes(x, range(1, n + 1), padding)
        return windows[padding]

    def correlate(shifted: jax.Array, g_part: jax.Array) -> jax.Array:
        """(N, *blocks, G, C_in / G) with the gradient's rows and channels."""
        rows = g_part.shape[:-1]
        shifted = shifted.reshape(*rows, groups, shifted.shape[-1])
        g_part = g_part.reshape(*rows, groups, -1)
        contract = tuple(range(len(rows)))
        if _multiply_reduce_wins(shifted.shape[-1], g_part.shape[-1]):
            return _multiply_reduce(shifted, g_part, contract, dtype)
        return lax.dot_general(
            shifted,
            g_part,
            ((contract, contract), ((len(rows),), (len(rows),))),
            precision=config.precision,
            preferred_element_type=config.preferred_element_type,
        )  # (G, C_in / G, *phases, C_out / G)

    def part(block: tuple[_Part, ...]) -> jax.Array:
        phases = [p.stop - p.start for p in block]
        counts = [p.lags for p in block]
        g_part = _gradient_part(gz, block, config.partitioned)
        lags = [
            correlate(window(lag, block), g_part) for lag in itertools.product(*map(range, counts))
        ]
        shape = (*counts, groups, in_per_group, *phases, per_group)
        piece = jnp.stack(lags).reshape(shape) if lags else jnp.zeros(shape, dtype)
        return pad_axes(piece, range(n), [(0, axis.lags - c) for axis, c in zip(axes, counts)])

    # [*lags, G, C_in / G, *phases, C_out / G]
    dwp = _assemble(part, axes, n + 2, output_order=False)
    dwp = dwp.transpose(*range(n), *range(n + 2, 2 * n + 3), n, n + 1)
    dwp = dwp.reshape(*dwp.shape[: 2 * n + 1], -1)
    return _phase_kernel_adjoint(dwp, axes)


def _multiply_reduce_wins(in_per_group: int, part_channels_per_group: int) -> bool:
    """Whether a part's kernel gradient is computed by :func:`_multiply_reduce`.

    That is, where a group has at most 4 channel pairs (``C_in / G`` by the
    part's ``phases * C_out / G``), as in depthwise layers. There the matmul
    batched over the groups has contractions of one or two elements, and XLA
    transposes its operands to put the groups first. On depthwise layers the
    sums of products measured 1.7x faster (the kernel gradient alone, 1 pair
    per part) and 2.7x faster (forward + backward, 4 pairs); with two
    channels per group (4 pairs) the two forms were on par, with four (16
    pairs) the sums were slower.
    """
    return in_per_group * part_channels_per_group <= 4


def _multiply_reduce(
    shifted: jax.Array, g_part: jax.Array, contract: tuple[int, ...], dtype: jnp.dtype
) -> jax.Array:
    """``(G, C_in / G, P)`` sums over ``contract`` of products of channel pairs.

    ``shifted`` is ``(*rows, G, C_in / G)`` and ``g_part`` ``(*rows, G, P)``;
    each pair is one product-and-sum over the rows, kept 2-D (rows by
    groups), the shape XLA:CPU reduces fastest. Sums accumulate in at least
    float32.
    """
    accumulate = jnp.promote_types(dtype, jnp.float32)
    a, b = shifted.astype(accumulate), g_part.astype(accumulate)
    sums = [
        jnp.sum(a[..., i] * b[..., j], axis=contract)
        for i in range(a.shape[-1])
        for j in range(b.shape[-1])
    ]
    out = jnp.stack(sums, axis=-1).astype(dtype)
    return out.reshape(*out.shape[:-1], shifted.shape[-1], g_part.shape[-1])


def _overlap_add_wins(
    block: tuple[_Part, ...], part_channels: int, in_channels: int, groups: int
) -> bool:
    """Whether a part's input gradient is computed by :func:`_correlate_overlap_add`.

    That form's matmul result holds ``prod(lags) * C_in`` values per block,
    its operand ``phases * C_out``; where the result is no larger, the matmul
    measured faster than the convolution, and it reads the gradient matrix in
    the shape the kernel gradient reads it (one copy for both).
    """
    return groups == 1 and math.prod(p.lags for p in block) * in_channels <= part_channels


def input_gradient_is_matmuls(
    geometry: ConvTransposeGeometry, in_channels: int, out_channels: int
) -> bool:
    """Whether :func:`forward_conv_phase` computes every part as one matmul and an overlap-add."""
    return all(
        _overlap_add_wins(
            block,
            math.prod(p.stop - p.start for p in block) * out_channels,
            in_channels,
            geometry.groups,
        )
        for block in _blocks_with_taps(_plan(geometry))
    )


def _correlate_overlap_add(
    g_part: jax.Array,
    kernel: jax.Array,
    block: tuple[_Part, ...],
    axes: tuple[_Axis, ...],
    batch: int,
    config: ConvConfig,
) -> jax.Array:
    """One part's input gradient as one matmul and an overlap-add (no groups).

    ``g_part`` is the part's gradient (:func:`_gradient_part`) and
    ``kernel`` the part's ``[*lags, phases * C_out, C_in]`` phase kernel. The
    matmul gives every lag's contribution at every block; the lag ``q``
    contribution of block ``j`` lands on input position ``j + first - q *
    dilation``, which a ``lax.pad`` per lag places (XLA fuses the pads and
    the sum into one loop).
    """
    n = len(axes)
    counts = kernel.shape[:n]
    taps = jnp.moveaxis(kernel.reshape(-1, *kernel.shape[n:]), 0, 1)  # [phases*C_out, L, C_in]
    every_lag = lax.dot_general(
        g_part,
        taps,
        (((g_part.ndim - 1,), (0,)), ((), ())),
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    ).reshape(batch, *(axis.blocks for axis in axes), *counts, kernel.shape[-1])
    contributions = []
    for lag in itertools.product(*map(range, counts)):
        contribution = every_lag[(slice(None),) * (n + 1) + lag]
        lows = [p.first - q * axis.conv_dilation for q, axis, p in zip(lag, axes, block)]
        pads = [(low, axis.input_size - axis.blocks - low) for low, axis in zip(lows, axes)]
        contributions.append(pad_axes(contribution, range(1, n + 1), pads))
    return sum(contributions[1:], start=contributions[0])


def forward_conv_phase(g: jax.Array, w: jax.Array, config: ConvConfig) -> jax.Array:
    """The input gradient in phase space: the adjoint of :func:`transpose_conv`.

    The space-to-depth gradient is correlated with each part's phase kernel
    (stride 1, no flip), and the parts' results are summed. A part whose lag
    contributions take no more room than its gradient is computed as one
    matmul and an overlap-add (:func:`_correlate_overlap_add`), the others as
    a stride-1 convolution.
    """
    geometry = config.geometry
    n, groups = geometry.num_spatial, geometry.groups
    axes = _plan(geometry)
    # (N, *blocks, G, *phases, C_out / G)
    gz = _space_to_depth(g, geometry, axes, config.partitioned)
    out = None
    for block in _blocks_with_taps(axes):
        kernel = _part_kernel(w, axes, block)  # [*lags, *phases, C_out / G, C_in]
        kernel = kernel.reshape(*kernel.shape[:n], -1, kernel.shape[-1])
        g_part = _gradient_part(gz, block, config.partitioned)
        if _overlap_add_wins(block, kernel.shape[-2], kernel.shape[-1], groups):
            x = _correlate_overlap_add(g_part, kernel, block, axes, g.shape[0], config)
        else:
            x = _cpu_convolutions.conv(
                g_part.reshape(g.shape[0], *(axis.blocks for axis in axes), -1),
                kernel,
                strides=(1,) * n,
                padding=[
                    (p.first, axis.input_size + axis.window(p.lags) - 1 - p.first - axis.blocks)
                    for axis, p in zip(axes, block)
                ],
                dilations=[axis.conv_dilation for axis in axes],
                groups=groups,
                config=config,
            )
        out = x if out is None else out + x
    if out is None:
        dtype = config.preferred_element_type or jnp.promote_types(g.dtype, w.dtype)
        out = jnp.zeros((g.shape[0], *geometry.input_size, w.shape[-1]), dtype)
    return out if geometry.channels_last else jnp.moveaxis(out, -1, 1)
