"""Registry of lowerings and the ``method="auto"`` policy.

A lowering is three bilinear maps (see :class:`Lowering`): the transposed
convolution ``T``, its adjoint in the input ``F`` (the input gradient, a
forward strided convolution) and its adjoint in the kernel ``K`` (the kernel
gradient). Adding one is one module that defines them plus one entry in
``_LOWERINGS``. The registered lowerings:

``"lhs_dilation"``
  The reference: ``T`` is one ``conv_general_dilated`` with ``lhs_dilation``,
  ``F`` a strided convolution and ``K`` TensorFlow's backprop-filter
  convolution. XLA maps these to cuDNN on GPU and to native code on TPU. On
  CPU, XLA runs the lhs-dilated convolution through a slow generic loop.

``"phase"``
  ``T`` as a sub-pixel decomposition (:mod:`._phase`): stride-1 convolutions
  with ``stride ** N * C_out`` output channels on the undilated input, then
  depth-to-space and a crop (where the kernel holds an Inf or NaN, decided
  at run time, matmuls and shifted sums instead, which keep it exact).
  ``F`` the forward strided convolution and ``K`` the backprop-filter
  convolution, both shaped so that XLA:CPU runs them
  through its fast 2-D library kernel (:mod:`._cpu_convolutions`).

``"phase_matmul"``
  The same ``T``; ``F`` and ``K`` computed in phase space: ``F`` as stride-1
  convolutions of the space-to-depth gradient (or, where the lags' results
  take no more room than the gradient, one matmul per phase part followed by
  an overlap-add), ``K`` as one matmul per (phase part, lag), each tap once.

Every lowering computes the same function; they differ only in speed and
memory. ``"auto"`` picks separately for each of the three maps, by platform
and by shape class, when the primitive is lowered for a platform (see
:mod:`jdeconv._primitives`), so a program traced on one platform, or exported
for several, gets each platform's choice:

* GPU, TPU and other platforms: ``"lhs_dilation"`` for all three maps. cuDNN
  runs lhs-dilated convolutions as backward-data kernels; nothing was measured
  there that would justify another choice. Except grouped layers whose
  operands live on a mesh of several devices: XLA's partitioner replicates a
  convolution with ``feature_group_count > 1`` (gathering a batch-split
  activation), so there ``"phase"`` (grouped convolutions as batched
  matmuls) keeps the split.
* CPU, ``T``: the sub-pixel forward (``"phase"``; ``"phase_matmul"`` has the
  same one), which does no work on the inserted zeros that XLA:CPU's
  lhs-dilated convolution loops over (3-D layers measured 100x faster, 2-D
  ones up to 3x), and keeps an Inf or NaN of the kernel exact. On jaxlib
  0.10.2 only, 2-D ungrouped layers whose taps do not overlap (``k == s``)
  or with at most 4 output channels at a stride above 1 take the
  lhs-dilated convolution (:data:`._release_tuning.LHS_DILATED_TRANSPOSE`).
* CPU, ``F``: the phase-space form (``"phase_matmul"``) for 2-D channels-last
  layers without groups whose parts are each one matmul and an overlap-add
  (few input channels or one lag: U-Net, FCN), and on jaxlib 0.10.2 also
  where the channels are many
  (:data:`._release_tuning.MANY_CHANNEL_INPUT_GRADIENT`: DCGAN). The strided
  convolution (``"phase"``) elsewhere: other 2-D layers, 1-D and 3-D,
  channels-first and grouped layers, and operands on a mesh: one
  contraction over the output channels, so that a split of them costs one
  all-reduce rather than one per phase part.
* CPU, ``K``: the phase-wise matmuls (``"phase_matmul"``), each tap once,
  where they do not pad the input (``k <= s`` with aligned blocks: one
  matmul), for 2-D kernels of at least 128 taps (FCN's heads) and for
  grouped layers; the backprop-filter convolution (``"phase"``) for other
  ungrouped layers, where it measured faster. Where the matmuls pad the
  input and the gradient holds an Inf or NaN, the convolution computes it
  (decided at run time, see :func:`._phase.kernel_grad_matmul`).

Every rule above but the two named for jaxlib 0.10.2 won on both releases
measured, 0.10.2 and 0.12.1 (``benchmarks/per_map.md``,
``benchmarks/releases/jaxlib-0.12.1/per_map.md``); the release-specific ones
live in :mod:`._release_tuning`. ``method="autotune"`` measures on the
user's machine instead.

A geometry that a lowering does not support (an output that no input
position reaches) falls back along ``Lowering.fallback``. The measurements
behind these rules are in ``benchmarks/README.md`` and
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import functools
import math

from jdeconv._lowerings import _lhs_dilation, _phase, _release_tuning
from jdeconv._lowerings._interface import BilinearMap, ConvConfig, Lowering
from jdeconv._shapes import ConvTransposeGeometry

__all__ = [
    "ACCEPTED_METHODS",
    "AUTOTUNE",
    "METHODS",
    "BilinearMap",
    "ConvConfig",
    "Lowering",
    "auto_choice",
    "bilinear_map",
    "candidates",
    "check_method",
    "get_default_method",
    "resolve",
    "set_default_method",
]

_LOWERINGS: dict[str, Lowering] = {
    "lhs_dilation": Lowering(
        name="lhs_dilation",
        transpose_conv=_lhs_dilation.transpose_conv,
        forward_conv=_lhs_dilation.forward_conv,
        kernel_grad=_lhs_dilation.kernel_grad,
    ),
    "phase": Lowering(
        name="phase",
        transpose_conv=_phase.transpose_conv,
        forward_conv=_phase.forward_conv_strided,
        kernel_grad=_phase.kernel_grad_conv,
        supports=_phase.supports,
        fallback="lhs_dilation",
    ),
    "phase_matmul": Lowering(
        name="phase_matmul",
        transpose_conv=_phase.transpose_conv,
        forward_conv=_phase.forward_conv_phase,
        kernel_grad=_phase.kernel_grad_matmul,
        supports=_phase.supports,
        fallback="lhs_dilation",
    ),
}

METHODS: tuple[str, ...] = ("auto", *_LOWERINGS)

#: The method that measures the lowerings of :data:`METHODS` on the running
#: machine and keeps the fastest per map (:mod:`jdeconv.autotune`).
AUTOTUNE = "autotune"

#: Every value ``method`` accepts besides ``None`` (the process-wide default).
ACCEPTED_METHODS: tuple[str, ...] = (*METHODS, AUTOTUNE)

_default_method = "auto"


def set_default_method(method: str) -> str:
    """Sets the method that ``method=None`` (every op's and layer's default) means.

    In the spirit of ``torch.backends.cudnn.benchmark = True``:
    ``jdeconv.set_default_method("autotune")`` makes every transposed
    convolution that does not name a method measure its lowerings on this
    machine (:mod:`jdeconv.autotune`). It applies to the functions traced
    after the call; a function ``jax.jit`` has already compiled keeps its
    program.

    Args:
      method: ``"auto"`` (the initial default), ``"autotune"`` or a name in
        :data:`jdeconv.METHODS`.

    Returns:
      The previous default, to restore it later.

    Raises:
      ValueError: if ``method`` is not one of those names.

    Example:
      >>> import jdeconv
      >>> previous = jdeconv.set_default_method("autotune")
      >>> jdeconv.get_default_method(), previous
      ('autotune', 'auto')
      >>> _ = jdeconv.set_default_method(previous)
    """
    global _default_method
    if not (isinstance(method, str) and method in ACCEPTED_METHODS):
        raise ValueError(
            f"set_default_method: `method` must be one of {ACCEPTED_METHODS}, got {method!r}."
        )
    previous, _default_method = _default_method, method
    return previous


def check_method(function: str, argument: str, value: object) -> str | None:
    """``value`` if it is ``None`` (the default method) or a name in :data:`ACCEPTED_METHODS`.

    Raises:
      ValueError: otherwise, listing the names.
    """
    if value is None or (isinstance(value, str) and value in ACCEPTED_METHODS):
        return value
    raise ValueError(
        f"{function}: `{argument}` must be None (the default, "
        f"{get_default_method()!r}) or one of {ACCEPTED_METHODS}, got {value!r}."
    )


def get_default_method() -> str:
    """The method that ``method=None`` means (see :func:`set_default_method`).

    Example:
      >>> import jdeconv
      >>> jdeconv.get_default_method()
      'auto'
    """
    return _default_method


#: Kernel taps at or above which a 2-D layer's kernel gradient takes the
#: phase-wise matmuls even where they pad the input.
_LARGE_KERNEL_TAPS = 128


def resolve(name: str, geometry: ConvTransposeGeometry) -> Lowering:
    """The lowering ``name``, or its fallback where it can't compute ``geometry``."""
    lowering = _LOWERINGS[name]
    while not lowering.supports(geometry) and lowering.fallback is not None:
        lowering = _LOWERINGS[lowering.fallback]
    return lowering


def auto_choice(
    geometry: ConvTransposeGeometry,
    bilinear_map: str,
    in_channels: int,
    out_channels: int,
    platform: str,
    partitioned: bool = False,
) -> str:
    """The lowering whose ``bilinear_map`` ``method="auto"`` uses (see module doc).

    Args:
      geometry: the call's geometry.
      bilinear_map: ``"transpose_conv"``, ``"forward_conv"`` or ``"kernel_grad"``.
      in_channels: ``C_in``, the input's channel count.
      out_channels: ``C_out``, the output's channel count.
      platform: ``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``, ...
      partitioned: whether the operands may be split over several devices
        (see :func:`jdeconv._primitives.partitioned`).

    Returns:
      The name of a registered lowering that supports ``geometry``.
    """
    if platform != "cpu":
        name = "phase" if partitioned and geometry.groups > 1 else "lhs_dilation"
    elif bilinear_map == "transpose_conv":
        # Where the kernel holds an Inf or NaN, "phase" keeps it exact (see
        # _phase.transpose_conv); the lhs-dilated convolution only on the
        # releases where it measured faster.
        plain_2d = geometry.num_spatial == 2 and geometry.groups == 1
        disjoint = all(
            k == s and d == 1
            for k, s, d in zip(geometry.kernel_size, geometry.strides, geometry.dilations)
        )
        few_outputs = (
            out_channels <= _release_tuning.FEW_OUTPUT_CHANNELS and max(geometry.strides) > 1
        )
        lhs_dilated = (
            _release_tuning.LHS_DILATED_TRANSPOSE.active()
            and plain_2d
            and (disjoint or few_outputs)
        )
        name = "lhs_dilation" if lhs_dilated else "phase"
    elif bilinear_map == "forward_conv":
        # The phase-space form where each part is one matmul and an
        # overlap-add (U-Net, FCN), or, on the releases where it measured
        # faster, where the channels are many (DCGAN); the strided convolution
        # elsewhere.
        many_channels = (
            _release_tuning.MANY_CHANNEL_INPUT_GRADIENT.active()
            and in_channels * out_channels >= _release_tuning.MANY_CHANNELS
        )
        phase_space = (
            geometry.num_spatial == 2
            and geometry.channels_last
            and geometry.groups == 1
            and not partitioned
            and (
                many_channels
                or _phase.input_gradient_is_matmuls(geometry, in_channels, out_channels)
            )
        )
        name = "phase_matmul" if phase_space else "phase"
    else:
        # The phase-wise matmuls compute each tap once. Where they would pad
        # the input, the backprop-filter convolution measured faster, except
        # for large 2-D kernels (FCN's k16 and k64 heads: the convolution
        # 1.3x to 2.6x slower on both releases measured; a k8 s4 head, 64
        # taps, was 1.5x slower on 0.12.1 but 1.1x to 1.2x faster on 0.10.2,
        # so it stays a convolution); grouped layers take the matmuls
        # everywhere.
        large_kernel = (
            geometry.num_spatial == 2
            and math.prod(geometry.effective_kernel_size) >= _LARGE_KERNEL_TAPS
        )
        matmuls = (
            geometry.groups > 1
            or large_kernel
            or not _phase.kernel_grad_matmul_pads_input(geometry)
        )
        name = "phase_matmul" if matmuls else "phase"
    return resolve(name, geometry).name


def candidates(map_name: str, geometry: ConvTransposeGeometry) -> dict[str, BilinearMap]:
    """The distinct functions that compute ``map_name`` for ``geometry``, by method name.

    Each registered lowering's map, after its fallback where it cannot compute
    ``geometry``; a function that several methods share appears once, under
    the first method's name (``"phase"`` and ``"phase_matmul"`` share ``T``).
    """
    found: dict[str, BilinearMap] = {}
    for name in _LOWERINGS:
        lowering = resolve(name, geometry)
        function = getattr(lowering, map_name)
        if all(function is not other for other in found.values()):
            found[lowering.name] = function
    return found


def bilinear_map(
    method: str,
    bilinear_map: str,
    geometry: ConvTransposeGeometry,
    *,
    platform: str,
    in_channels: int,
    out_channels: int,
    partitioned: bool,
) -> BilinearMap:
    """The function that computes ``bilinear_map`` for ``method`` on ``platform``.

    Args:
      method: ``"auto"`` or a registered lowering's name.
      bilinear_map: ``"transpose_conv"``, ``"forward_conv"`` or ``"kernel_grad"``.
      geometry: the call's geometry.
      platform: the platform being compiled for (``"cpu"`` or another).
      in_channels: ``C_in``, the input's channel count.
      out_channels: ``C_out``, the output's channel count.
      partitioned: whether the operands may be split over several devices.
    """
    if method != "auto":
        return getattr(resolve(method, geometry), bilinear_map)
    name = auto_choice(geometry, bilinear_map, in_channels, out_channels, platform, partitioned)
    if (
        platform == "cpu"
        and bilinear_map == "transpose_conv"
        and name == "lhs_dilation"
        and _phase.supports(geometry)
    ):
        # auto's CPU forward keeps an Inf or NaN of the kernel exact, in
        # whichever form it takes (the lhs-dilated one multiplies zeros);
        # not where the sub-pixel forms cannot compute the geometry (an
        # output no input reaches: the fallback's zeros hold no product).
        return functools.partial(_phase.exact_where_kernel_non_finite, _lhs_dilation.transpose_conv)
    return getattr(_LOWERINGS[name], bilinear_map)
