"""Seeded random transposed-convolution configurations, in every TF spelling.

Sizes are kept small so that the float64 reference stays fast. The accepted
output range is written here from TensorFlow's rule, independently of
``jdeconv._shapes``.
"""

from __future__ import annotations

import dataclasses
import random
import zlib

import numpy as np
import reference

_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


def seed_of(description):
    """A replayable seed for a case: the CRC-32 of its description (``hash`` varies per process)."""
    return zlib.crc32(description.encode())


def accepted_range(i, k, s, d, padding):
    """Output sizes TF accepts: those a forward conv maps back to size ``i``."""
    k_eff = (k - 1) * d + 1
    if padding == "SAME":
        low = (i - 1) * s + 1
    elif padding == "VALID":
        low = (i - 1) * s + k_eff
    else:
        low = (i - 1) * s + k_eff - padding[0] - padding[1]
    return range(max(low, 0), max(low + s, 0))


@dataclasses.dataclass(frozen=True)
class Case:
    num_spatial: int
    channels_last: bool
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    input_size: tuple
    kernel_size: tuple
    strides: tuple
    dilations: tuple
    padding: object  # "SAME", "VALID" or spatial pairs
    output_size: tuple
    spelling: int  # which spelling of strides/dilations/output_shape to use

    @property
    def data_format(self):
        return (_LAST if self.channels_last else _FIRST)[self.num_spatial]

    @property
    def input_shape(self):
        if self.channels_last:
            return (self.batch, *self.input_size, self.in_channels)
        return (self.batch, self.in_channels, *self.input_size)

    @property
    def output_full_shape(self):
        if self.channels_last:
            return (self.batch, *self.output_size, self.out_channels)
        return (self.batch, self.out_channels, *self.output_size)

    @property
    def filters_shape(self):
        return (*self.kernel_size, self.out_channels // self.groups, self.in_channels)

    def _spell(self, values):
        """An int, a length-1, length-N or length-N+2 spelling of per-dim values."""
        if self.spelling % 4 == 0 and len(set(values)) == 1:
            return values[0]
        if self.spelling % 4 == 1 and len(set(values)) == 1:
            return [values[0]]
        if self.spelling % 4 == 2:
            return [1, *values, 1] if self.channels_last else [1, 1, *values]
        return list(values)

    @property
    def strides_arg(self):
        return self._spell(self.strides)

    @property
    def dilations_arg(self):
        if self.spelling % 5 == 0 and set(self.dilations) == {1}:
            return None
        return self._spell(self.dilations)

    @property
    def padding_arg(self):
        if isinstance(self.padding, str):
            return self.padding
        zero = [0, 0]
        pairs = [list(p) for p in self.padding]
        return [zero, *pairs, zero] if self.channels_last else [zero, zero, *pairs]

    @property
    def output_shape_arg(self):
        kind = self.spelling % 3
        if kind == 0:
            return list(self.output_full_shape)
        if kind == 1:
            return tuple(self.output_size)
        return np.array(self.output_full_shape, dtype=np.int32)

    @property
    def op_args(self):
        """``output_shape, strides, padding, data_format, dilations`` for the op, spelled."""
        return (
            self.output_shape_arg,
            self.strides_arg,
            self.padding_arg,
            self.data_format,
            self.dilations_arg,
        )

    def arrays(self, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input_shape).astype(dtype)
        w = rng.standard_normal(self.filters_shape).astype(dtype)
        return x, w

    def reference(self, x, w):
        """``T(x, w)`` for this case by the float64 scatter-add reference."""
        return reference.conv_transpose(
            x,
            w,
            self.output_size,
            self.strides,
            self.dilations,
            self.padding,
            groups=self.groups,
            channels_last=self.channels_last,
        )

    def describe(self):
        return (
            f"{self.num_spatial}d-{self.data_format}-I{self.input_size}-k{self.kernel_size}"
            f"-s{self.strides}-d{self.dilations}-{self.padding}-O{self.output_size}"
            f"-g{self.groups}"
        )


def _off_stride_kernel(rng, stride, cap):
    """A kernel size up to ``cap`` that is not a multiple of ``stride`` (any, for stride 1)."""
    sizes = [k for k in range(1, cap + 1) if k % stride] or list(range(1, cap + 1))
    return rng.choice(sizes)


def sample(
    seed,
    count,
    *,
    ranks=(1, 2, 3),
    formats=(True, False),
    paddings=("SAME", "VALID", "EXPLICIT"),
    max_stride=3,
    max_dilation=3,
    max_kernel=4,
    groups=(1,),
    explicit_padding_ranks=(1, 2, 3),
    off_stride_kernels=0.0,
    outputs="random",
    max_padding=3,
):
    """``count`` random valid cases, each output size drawn from TF's accepted range.

    Repeating a value in ``ranks``, ``formats``, ``paddings`` or ``groups``
    weights it. A fraction ``off_stride_kernels`` of the geometries get kernel
    sizes that are not multiples of their strides. Explicit padding entries
    are drawn from ``[0, max_padding]``. ``outputs`` says which
    accepted output sizes a geometry comes with: ``"random"``, one drawn per
    dimension; ``"extremes"``, the smallest and the largest (two cases);
    ``"every"``, ``accepted[e]`` for every ``e`` below the widest range (clamped
    per dimension), so that each accepted size of each dimension appears.
    """
    if outputs not in ("random", "extremes", "every"):
        raise ValueError(f"sample: unknown `outputs` {outputs!r}")
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        n = rng.choice(ranks)
        kind = rng.choice(paddings)
        if kind == "EXPLICIT" and n not in explicit_padding_ranks:
            continue
        g = rng.choice(groups)
        size_cap = {1: 7, 2: 5, 3: 3}[n]
        kernel_cap = max_kernel if n < 3 else 3
        input_size = tuple(rng.randint(1, size_cap) for _ in range(n))
        kernel_size = tuple(rng.randint(1, kernel_cap) for _ in range(n))
        strides = tuple(rng.randint(1, max_stride) for _ in range(n))
        dilations = tuple(rng.randint(1, max_dilation) for _ in range(n))
        if off_stride_kernels and rng.random() < off_stride_kernels:
            kernel_size = tuple(_off_stride_kernel(rng, s, kernel_cap) for s in strides)
        if kind == "EXPLICIT":
            padding = tuple(
                (rng.randint(0, max_padding), rng.randint(0, max_padding)) for _ in range(n)
            )
            ranges = [
                accepted_range(*a, p)
                for *a, p in zip(input_size, kernel_size, strides, dilations, padding)
            ]
        else:
            padding = kind
            ranges = [
                accepted_range(*a, kind) for a in zip(input_size, kernel_size, strides, dilations)
            ]
        ranges = [[o for o in r if o >= 1] for r in ranges]
        if not all(ranges):
            continue
        widest = max(map(len, ranges))
        offsets = {
            "random": [None],
            "extremes": sorted({0, widest - 1}),
            "every": range(widest),
        }[outputs]
        channels_last = rng.choice(formats)
        for offset in offsets:
            cases.append(
                Case(
                    num_spatial=n,
                    channels_last=channels_last,
                    batch=rng.randint(1, 2),
                    in_channels=g * rng.randint(1, 3),
                    out_channels=g * rng.randint(1, 3),
                    groups=g,
                    input_size=input_size,
                    kernel_size=kernel_size,
                    strides=strides,
                    dilations=dilations,
                    padding=padding,
                    output_size=tuple(
                        rng.choice(r) if offset is None else r[min(offset, len(r) - 1)]
                        for r in ranges
                    ),
                    spelling=rng.randint(0, 59),
                )
            )
    return cases[:count]
