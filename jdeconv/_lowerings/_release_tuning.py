"""Tuning that holds on some jaxlib releases only, measured, with the releases named.

XLA:CPU's costs move between jaxlib releases: the same lowering of the same
layer was 1.9x faster than another on jaxlib 0.10.2 and 1.2x slower on
0.12.1. Most of ``method="auto"``'s CPU policy won on every release measured
(``benchmarks/per_map.md`` and ``benchmarks/releases/*/per_map.md``); the
rules here won on the releases they name and lost or tied elsewhere, so they
apply on those releases only. A release not named runs without them until it
is measured. ``method="autotune"`` measures on the user's machine instead.
"""

from __future__ import annotations

import dataclasses

import jaxlib.version

#: The jaxlib releases the policy was measured on.
MEASURED_RELEASES = ("0.10.2", "0.12.1")


def _installed_in(versions: tuple[str, ...]) -> bool:
    return jaxlib.version.__version__ in versions


@dataclasses.dataclass(frozen=True)
class ReleaseRule:
    """One rule of ``method="auto"``'s CPU policy that wins on some releases only.

    Attributes:
      summary: what the rule does and what it measured.
      jaxlib_versions: the jaxlib releases where it won.
    """

    summary: str
    jaxlib_versions: tuple[str, ...]

    def active(self) -> bool:
        """Whether the installed jaxlib is one of the releases where the rule won."""
        return _installed_in(self.jaxlib_versions)


#: ``T`` of 2-D ungrouped layers whose taps do not overlap (``k == s``,
#: U-Net's ``k = s = 2``) or that have at most 4 output channels and a
#: stride above 1 (a generator's image layer): the lhs-dilated convolution.
LHS_DILATED_TRANSPOSE = ReleaseRule(
    summary=(
        "T as the lhs-dilated convolution for 2-D ungrouped layers with k == s or with at "
        "most 4 output channels at a stride above 1: 1.6x faster than the sub-pixel form on "
        "U-Net's k2 s2 layer and 3.6x on a DCGAN image layer (64 -> 3 channels, k5 s2) on "
        "jaxlib 0.10.2; 1.2x slower and on par on 0.12.1"
    ),
    jaxlib_versions=("0.10.2",),
)

#: ``F`` of 2-D channels-last ungrouped layers with ``C_in * C_out >= 256 *
#: 128``: the phase-space form.
MANY_CHANNEL_INPUT_GRADIENT = ReleaseRule(
    summary=(
        "F in phase space for 2-D channels-last ungrouped layers with C_in * C_out >= "
        "256 * 128: 1.2x to 1.5x faster than the strided convolution on the DCGAN layers "
        "on jaxlib 0.10.2; on par to 1.2x slower on 0.12.1"
    ),
    jaxlib_versions=("0.10.2",),
)

#: Channel count products at or above which :data:`MANY_CHANNEL_INPUT_GRADIENT` applies.
MANY_CHANNELS = 256 * 128

#: Output channels at or below which :data:`LHS_DILATED_TRANSPOSE` applies.
FEW_OUTPUT_CHANNELS = 4


@dataclasses.dataclass(frozen=True)
class CpuConvolutionPath:
    """Why and when jdeconv keeps a convolution off XLA:CPU's YNNPACK path.

    XLA:CPU (jaxlib 0.10.1 and 0.10.2) hands a 2-D, float32 or float64
    convolution without input dilation to YNNPACK when its output is no
    larger than its input in every spatial axis and it has more than 16 input
    or output features. In jaxlib 0.10.2, with few input or output features,
    YNNPACK ran the suite's convolutions on about one core: a stride-1 3x3
    convolution of a ``(16, 32, 32, 128)`` input to 64 channels took the same
    24 ms on one core as on two, against 14 ms for XLA's Eigen convolution,
    which uses every core (1.6x to 1.7x on four other shapes with at most 64
    input or 128 output features, and 1.3x on the DCGAN tutorial's 7x7 layer,
    256 to 128 features). With at
    least 128 input and 256 output features, YNNPACK was as fast as Eigen or
    faster. A convolution whose output is one row longer than its input goes
    to Eigen. So on CPU, a stride-1 convolution that YNNPACK would take, with
    at most ``max_in_features`` input or ``max_out_features`` output
    features, is computed with as many more output rows as that needs along
    its longest output axis, and sliced back, where those rows add at most
    ``1 / min_rows`` of its work. Only with the jaxlib releases in
    ``jaxlib_versions``: jaxlib 0.10.1's YNNPACK ran the same convolution on
    both cores in 12 ms (the extra row would cost it 16 ms), and 0.10.0 runs
    no convolution through YNNPACK. A new release needs measuring again.

    Attributes:
      min_rows: output rows per extra row, at least.
      max_in_features: convolutions with at most this many input features
        are steered to Eigen.
      max_out_features: so are those with at most this many output features.
      features: YNNPACK takes only convolutions with more features than this.
      jaxlib_versions: the jaxlib releases whose YNNPACK was measured slow.
    """

    min_rows: int = 7
    max_in_features: int = 64
    max_out_features: int = 128
    features: int = 16
    jaxlib_versions: tuple[str, ...] = ("0.10.2",)

    def active(self) -> bool:
        """Whether the installed jaxlib is one this rule was measured for."""
        return _installed_in(self.jaxlib_versions)


#: The rule :func:`conv_general_dilated` applies on CPU.
CPU_CONVOLUTION_PATH = CpuConvolutionPath()
