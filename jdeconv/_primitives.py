"""The op as three JAX primitives: ``T``, ``F`` and ``K``.

Written against jax 0.10.2, with the extension API only: ``jax.extend.core``
for the primitives and ``jax.interpreters`` (``ad``, ``batching``, ``mlir``)
for their rules.

For a fixed geometry, the transposed convolution ``T(x, w)``, the forward
convolution ``F(g, w)`` and the kernel gradient ``K(x, g)`` are three ways of
contracting one trilinear form:

    <g, T(x, w)> = <x, F(g, w)> = <w, K(x, g)>

Each is bilinear, and each one's transposes are the other two: ``T``'s are
``F`` (in ``x``) and ``K`` (in ``w``), ``F``'s are ``T`` and ``K``, ``K``'s are
``F`` and ``T``. So every derivative, of every order and mode (``jvp``,
``grad``, ``jacfwd``, ``hessian``, ``linear_transpose``), is made of these
three primitives, and XLA is never asked to differentiate a convolution: its
own transposes of dilated convolutions are slow on CPU, and some abort the
process.

This file keeps the whole life of the primitives in one place, in lax's
order: the entry point that binds them (:func:`apply`), the shape and dtype
rule, the JVP and transpose rules, the batching rule, and the lowering, which
calls the lowering code in :mod:`jdeconv._lowerings` for each platform (so
``method="auto"`` chooses per platform, also in a program exported for
several).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.sharding import AxisType

from jdeconv import _lowerings, autotune
from jdeconv._shapes import ConvTransposeGeometry

#: ``T(x, w)``: the transposed convolution, ``(N, *I, C_in)`` to ``(N, *O, C_out)``.
transpose_conv_p = Primitive("jdeconv_transpose_conv")
#: ``F(g, w)``: the forward convolution, the adjoint of ``T`` in ``x``.
forward_conv_p = Primitive("jdeconv_forward_conv")
#: ``K(x, g)``: the kernel gradient, the adjoint of ``T`` in ``w``.
kernel_grad_p = Primitive("jdeconv_kernel_grad")

# The name of each primitive's map in a ``_lowerings.Lowering``.
_MAP_NAMES = {
    transpose_conv_p: "transpose_conv",
    forward_conv_p: "forward_conv",
    kernel_grad_p: "kernel_grad",
}


# ----------------------------------------------------------------- binding


def apply(
    x: jax.Array,
    w: jax.Array,
    geometry: ConvTransposeGeometry,
    *,
    method: str | None,
    precision: Any,
    preferred_element_type: Any,
) -> jax.Array:
    """``T(x, w)`` on any placement: plain arrays, ``jit`` with shardings, ``shard_map``.

    ``method=None`` is the process-wide default
    (:func:`jdeconv.set_default_method`), read here, when the op is traced.

    Two adjustments make the primitive's result typed the way JAX's own
    convolution's is where JAX tracks how values are distributed:

    * inside ``jax.shard_map``, ``x`` and ``w`` are first made to vary over
      the same manual mesh axes, so that the gradient of a replicated kernel
      comes back replicated (summed over the devices by the transpose of that
      cast) rather than per device;
    * on a mesh with explicit axes (sharding in types, ``jax.set_mesh``), the
      op is partitioned by XLA (``jax.sharding.auto_axes``), and its result
      gets the batch and spatial sharding of ``x`` and the output-channel
      sharding of ``w``.

    Whether the operands may be split over several devices is decided here,
    where their types are known, and travels with the primitives (their
    ``partitioned`` parameter) to the lowering.
    """
    x, w = _match_varying_axes(x, w)
    params = dict(
        geometry=geometry,
        method=_lowerings.get_default_method() if method is None else method,
        precision=precision,
        preferred_element_type=preferred_element_type,
        partitioned=partitioned(x, w),
    )
    out_spec = _explicit_output_spec(x, w, geometry)
    if out_spec is None:
        return transpose_conv_p.bind(x, w, **params)

    def partitioned_by_xla(x: jax.Array, w: jax.Array) -> jax.Array:
        return transpose_conv_p.bind(x, w, **params)

    return jax.sharding.auto_axes(partitioned_by_xla, out_sharding=out_spec)(x, w)


def partitioned(*arrays: jax.Array) -> bool:
    """Whether XLA may split ``arrays`` over several devices when it compiles them.

    True where an array's type names a mesh (arrays placed with a
    ``NamedSharding``, and values computed from them), or a mesh is set with
    ``jax.set_mesh``, whose axes that are not manual span more than one device.
    Inside ``jax.shard_map`` (manual axes) each device computes on its own
    block, as on one device.
    """
    meshes = [jax.typeof(a).sharding.mesh for a in arrays]
    meshes.append(jax.sharding.get_abstract_mesh())
    return any(
        math.prod(
            size for size, kind in zip(mesh.axis_sizes, mesh.axis_types) if kind != AxisType.Manual
        )
        > 1
        for mesh in meshes
    )


def _varying_axes(a: jax.Array) -> frozenset[str]:
    """The manual mesh axes ``a`` varies over (empty outside ``shard_map``)."""
    return frozenset(jax.typeof(a).mat.varying)


def _match_varying_axes(x: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    x_axes, w_axes = _varying_axes(x), _varying_axes(w)
    union = x_axes | w_axes
    if x_axes != union:
        x = jax.lax.pcast(x, tuple(sorted(union - x_axes)), to="varying")
    if w_axes != union:
        w = jax.lax.pcast(w, tuple(sorted(union - w_axes)), to="varying")
    return x, w


def _explicit_output_spec(
    x: jax.Array, w: jax.Array, geometry: ConvTransposeGeometry
) -> jax.sharding.PartitionSpec | None:
    """The result's sharding on a mesh with explicit axes, else ``None``.

    A spatial axis keeps ``x``'s sharding only where the output size divides
    evenly over its devices; the channel axis takes the sharding of the
    filters' output-channel axis (ungrouped only).
    """
    mesh = jax.typeof(x).sharding.mesh
    if mesh.empty or jax.sharding.AxisType.Explicit not in mesh.axis_types:
        return None
    n = geometry.num_spatial

    def full_spec(a: jax.Array) -> list:
        spec = tuple(jax.typeof(a).sharding.spec)
        return list(spec) + [None] * (a.ndim - len(spec))

    def device_count(entry: str | tuple[str, ...]) -> int:
        names = entry if isinstance(entry, tuple) else (entry,)
        return math.prod(mesh.shape[name] for name in names)

    spec = full_spec(x)
    for axis, size in zip(geometry.spatial_axes, geometry.output_size):
        if spec[axis] is not None and size % device_count(spec[axis]):
            spec[axis] = None
    spec[geometry.channel_axis] = full_spec(w)[n] if geometry.groups == 1 else None
    return jax.sharding.PartitionSpec(*spec)


# ------------------------------------------------------ shape and dtype rule


def _activation_shape(
    geometry: ConvTransposeGeometry, batch: Any, spatial: tuple[int, ...], channels: Any
) -> tuple[Any, ...]:
    if geometry.channels_last:
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def _result_shape(
    primitive: Primitive,
    a_shape: tuple[Any, ...],
    b_shape: tuple[Any, ...],
    geometry: ConvTransposeGeometry,
) -> tuple[Any, ...]:
    """``T``: ``(x, w) -> y``; ``F``: ``(g, w) -> x``; ``K``: ``(x, g) -> w`` shapes."""
    channels = geometry.channel_axis
    if primitive is transpose_conv_p:
        out_channels = b_shape[-2] * geometry.groups
        return _activation_shape(geometry, a_shape[0], geometry.output_size, out_channels)
    if primitive is forward_conv_p:
        return _activation_shape(geometry, a_shape[0], geometry.input_size, b_shape[-1])
    out_channels = b_shape[channels]
    return (*geometry.kernel_size, out_channels // geometry.groups, a_shape[channels])


def _abstract_eval(primitive: Primitive, a, b, *, geometry, preferred_element_type, **_):
    if a.dtype != b.dtype:
        raise TypeError(
            f"{primitive.name}: both operands must have one dtype, got {a.dtype} and {b.dtype}."
        )
    return a.update(
        shape=_result_shape(primitive, a.shape, b.shape, geometry),
        dtype=preferred_element_type or a.dtype,
        weak_type=False,
    )


@functools.partial(jax.jit, static_argnums=(0, 3))
def _bind_jitted(primitive: Primitive, a: jax.Array, b: jax.Array, params: tuple) -> jax.Array:
    return primitive.bind(a, b, **dict(params))


def _eager(primitive: Primitive) -> Callable[..., jax.Array]:
    """Eager evaluation: the primitive compiled alone, cached by its parameters."""

    def impl(a: jax.Array, b: jax.Array, **params: Any) -> jax.Array:
        return _bind_jitted(primitive, a, b, tuple(sorted(params.items())))

    return impl


for _primitive in _MAP_NAMES:
    _primitive.def_abstract_eval(functools.partial(_abstract_eval, _primitive))
    _primitive.def_impl(_eager(_primitive))


# ------------------------------------------------- JVP and transpose rules


def _promoted_bind(
    primitive: Primitive, operands: tuple[jax.Array, jax.Array], params: dict
) -> jax.Array:
    """Binds ``primitive`` in the operands' common dtype, without a preferred type.

    A transpose's operands are a cotangent and a primal, whose dtypes differ
    where ``preferred_element_type`` widened the result.
    """
    a, b = operands
    dtype = jnp.promote_types(a.dtype, b.dtype)
    params = {**params, "preferred_element_type": None}
    return primitive.bind(a.astype(dtype), b.astype(dtype), **params)


def _transpose(primitive: Primitive, operands: Callable, transposed: int) -> Callable:
    """A transpose rule: ``primitive`` applied to ``operands(cotangent, a, b)``.

    The result takes the dtype of the operand being transposed (``a`` for
    ``transposed=0``, ``b`` for 1).
    """

    def rule(cotangent, a, b, **params):
        dtype = (a, b)[transposed].aval.dtype
        return _promoted_bind(primitive, operands(cotangent, a, b), params).astype(dtype)

    return rule


# T(x, w): x <- F(ct, w); w <- K(x, ct).
ad.defbilinear(
    transpose_conv_p,
    _transpose(forward_conv_p, lambda ct, x, w: (ct, w), 0),
    _transpose(kernel_grad_p, lambda ct, x, w: (x, ct), 1),
)
# F(g, w): g <- T(ct, w); w <- K(ct, g).
ad.defbilinear(
    forward_conv_p,
    _transpose(transpose_conv_p, lambda ct, g, w: (ct, w), 0),
    _transpose(kernel_grad_p, lambda ct, g, w: (ct, g), 1),
)
# K(x, g): x <- F(g, ct); g <- T(x, ct).
ad.defbilinear(
    kernel_grad_p,
    _transpose(forward_conv_p, lambda ct, x, g: (g, ct), 0),
    _transpose(transpose_conv_p, lambda ct, x, g: (x, ct), 1),
)


# ------------------------------------------------------------ batching rule


def _fold_into_axis(a: jax.Array, mapped: int, axis: int, parts: int, position: int) -> jax.Array:
    """Moves ``a``'s mapped axis into ``axis`` (counted without it).

    ``axis`` is viewed as ``(parts, size / parts)``; the mapped axis is
    inserted at ``position`` in that view (0: outermost, 1: between the
    parts and the rest) and the result merged into one axis.
    """
    a = jnp.moveaxis(a, mapped, 0)
    size, shape = a.shape[0], a.shape[1:]
    a = a.reshape(size, *shape[:axis], parts, shape[axis] // parts, *shape[axis + 1 :])
    a = jnp.moveaxis(a, 0, axis + position)
    return a.reshape(*shape[:axis], size * shape[axis], *shape[axis + 1 :])


def _unfold_from_axis(
    a: jax.Array, size: int, one: tuple[int, ...], axis: int, parts: int, position: int
) -> jax.Array:
    """The inverse of :func:`_fold_into_axis`, for results of shape ``one`` per slice.

    The mapped axis, of ``size``, comes out first.
    """
    per_part = one[axis] // parts
    split = (parts, size, per_part) if position == 1 else (size, parts, per_part)
    a = a.reshape(*one[:axis], *split, *one[axis + 1 :])
    return jnp.moveaxis(a, axis + position, 0).reshape(size, *one)


def _fold_into_batch(a: jax.Array, mapped: int) -> jax.Array:
    a = jnp.moveaxis(a, mapped, 0)
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])


def _unmapped_shape(a: jax.Array, mapped: int | None) -> tuple[int, ...]:
    shape = tuple(a.shape)
    return shape if mapped is None else shape[:mapped] + shape[mapped + 1 :]


def _batch_rule(primitive: Primitive) -> Callable:
    """``vmap`` of a primitive as one call of it on folded operands.

    The mapped axis joins the batch where only an activation of ``T`` or
    ``F`` is mapped; otherwise it joins a channel axis (only the kernel, or
    only one operand of ``K``, is mapped), or the groups (both operands are
    mapped: each mapped slice becomes its own set of groups).
    """

    def rule(batched_args, batch_dims, *, geometry, **params):
        a, b = batched_args
        a_dim, b_dim = batch_dims
        size = a.shape[a_dim] if a_dim is not None else b.shape[b_dim]
        one = _result_shape(
            primitive, _unmapped_shape(a, a_dim), _unmapped_shape(b, b_dim), geometry
        )
        groups = geometry.groups
        channels = geometry.channel_axis
        kernel_out = kernel_in = geometry.num_spatial  # axes of [*k, C_out / G, C_in]
        kernel_in += 1

        def bind(a, b, geometry=geometry):
            return primitive.bind(a, b, geometry=geometry, **params)

        def unfold(out, axis, parts, position):
            return _unfold_from_axis(out, size, one, axis, parts, position), 0

        if b_dim is None and primitive is not kernel_grad_p:
            # T(x_i, w) or F(g_i, w): more batch.
            return bind(_fold_into_batch(a, a_dim), b).reshape(size, *one), 0
        if a_dim is not None and b_dim is not None:
            # Each mapped slice is its own set of groups.
            wide = dataclasses.replace(geometry, groups=size * groups)
            if primitive is kernel_grad_p:
                out = bind(
                    _fold_into_axis(a, a_dim, channels, 1, 0),
                    _fold_into_axis(b, b_dim, channels, 1, 0),
                    wide,
                )
                return unfold(out, kernel_in, 1, 0)
            out = bind(
                _fold_into_axis(a, a_dim, channels, 1, 0),
                _fold_into_axis(b, b_dim, kernel_in, 1, 0),
                wide,
            )
            return unfold(out, channels, 1, 0)
        if primitive is kernel_grad_p:
            if b_dim is None:  # K(x_i, g): more input channels per group.
                out = bind(_fold_into_axis(a, a_dim, channels, groups, 1), b)
                return unfold(out, kernel_in, groups, 1)
            # K(x, g_i): more output channels per group.
            out = bind(a, _fold_into_axis(b, b_dim, channels, groups, 1))
            return unfold(out, kernel_out, 1, 0)
        if primitive is transpose_conv_p:  # T(x, w_i): more output channels per group.
            out = bind(a, _fold_into_axis(b, b_dim, kernel_out, 1, 0))
            return unfold(out, channels, groups, 1)
        # F(g, w_i): more input channels per group.
        out = bind(a, _fold_into_axis(b, b_dim, kernel_in, groups, 1))
        return unfold(out, channels, groups, 1)

    return rule


for _primitive in _MAP_NAMES:
    batching.primitive_batchers[_primitive] = _batch_rule(_primitive)


# ---------------------------------------------------------------- lowering


def _channels(primitive: Primitive, a_shape, b_shape, geometry) -> tuple[int, int]:
    """``(C_in, C_out)`` of the transposed convolution, from one map's operands."""
    if primitive is kernel_grad_p:
        return a_shape[geometry.channel_axis], b_shape[geometry.channel_axis]
    return b_shape[-1], b_shape[-2] * geometry.groups


def _lowering(primitive: Primitive, platform: str) -> Callable:
    """The lowering rule of ``primitive`` on ``platform`` (``"cpu"`` or ``"other"``).

    Empty operands or results give zeros (the empty sums of the definition).
    Otherwise the method's lowering for this map computes it; ``"auto"``
    chooses one for this platform and shape, and ``"autotune"`` measures
    them on the device compiled for (:mod:`jdeconv.autotune`).
    """
    map_name = _MAP_NAMES[primitive]

    def compute(a, b, *, geometry, method, precision, preferred_element_type, partitioned):
        shape = _result_shape(primitive, a.shape, b.shape, geometry)
        dtype = preferred_element_type or a.dtype
        if any(d == 0 for d in (*a.shape, *b.shape, *shape)):
            return jnp.zeros(shape, dtype)
        in_channels, out_channels = _channels(primitive, a.shape, b.shape, geometry)
        function = _lowerings.bilinear_map(
            method,
            map_name,
            geometry,
            platform=platform,
            in_channels=in_channels,
            out_channels=out_channels,
            partitioned=partitioned,
        )
        config = _lowerings.ConvConfig(
            geometry=geometry,
            precision=precision,
            preferred_element_type=preferred_element_type,
            partitioned=partitioned,
            platform=platform,
        )
        return function(a, b, config)

    def rule(ctx, a, b, *, method, **params):
        if method == _lowerings.AUTOTUNE:
            method = _tuned_method(ctx, map_name, platform, **params)
        lowered = mlir.lower_fun(functools.partial(compute, method=method), multiple_results=False)
        return lowered(ctx, a, b, **params)

    return rule


def _tuned_method(
    ctx, map_name, platform, *, geometry, precision, preferred_element_type, partitioned
) -> str:
    """``"autotune"``'s method for one map: measured, cached, or ``"auto"`` where it cannot be."""
    a, b = ctx.avals_in
    shapes = (*a.shape, *b.shape)
    device, reason = _measuring_device(ctx, partitioned)
    if device is None or not all(isinstance(d, int) for d in shapes) or 0 in shapes:
        reason = reason or "symbolic or empty shapes"
        autotune.logger.debug("autotune %s: as 'auto' (%s)", map_name, reason)
        return "auto"
    in_channels, out_channels = _channels(_PRIMITIVES[map_name], a.shape, b.shape, geometry)
    preferred = _lowerings.auto_choice(
        geometry, map_name, in_channels, out_channels, platform, partitioned
    )
    config = _lowerings.ConvConfig(
        geometry=geometry,
        precision=precision,
        preferred_element_type=preferred_element_type,
        partitioned=partitioned,
        platform=platform,
    )
    return autotune.choose(
        map_name,
        candidates=_lowerings.candidates(map_name, geometry),
        preferred=preferred,
        config=config,
        operands=(a, b),
        device=device,
        platform=ctx.module_context.platforms[0],
    )


def _measuring_device(ctx, partitioned: bool) -> tuple[Any, str | None]:
    """The device a program being lowered will run on, or ``None`` and why it cannot be timed.

    Reads JAX's lowering context (``mlir.LoweringRuleContext.module_context``):
    the platforms lowered for, whether the lowering is for ``jax.export``,
    and the axis context, whose ``device_assignment`` or ``manual_axes`` tell
    the devices and whether this runs inside ``shard_map``. These attributes
    exist in jax 0.10 to 0.12; without them autotune falls back to ``auto``.
    """
    module = ctx.module_context
    platforms = tuple(getattr(module, "platforms", ()))
    parameters = getattr(module, "lowering_parameters", None)
    axis_context = getattr(module, "axis_context", None)
    if parameters is None or getattr(parameters, "for_export", True):
        return None, "lowered for jax.export, which must not depend on this machine"
    if len(platforms) != 1:
        return None, f"lowered for several platforms {platforms}"
    if partitioned:
        return None, "operands on a mesh of several devices"
    if getattr(axis_context, "manual_axes", None) or hasattr(axis_context, "mesh"):
        return None, "inside shard_map"
    if getattr(axis_context, "num_devices", 1) != 1:
        return None, "the program spans several devices"
    devices = getattr(axis_context, "device_assignment", None)
    if devices:
        return devices[0], None
    try:
        return jax.devices(platforms[0])[0], None
    except RuntimeError:
        return None, f"no local {platforms[0]} device"


_PRIMITIVES = {name: primitive for primitive, name in _MAP_NAMES.items()}

for _primitive in _MAP_NAMES:
    mlir.register_lowering(_primitive, _lowering(_primitive, "cpu"), "cpu")
    mlir.register_lowering(_primitive, _lowering(_primitive, "other"))
