"""Multi-device checks of jdeconv, run as a script with simulated CPU devices.

``tests/test_sharding.py`` runs this file in a child process, because the
number of XLA host devices is fixed when JAX starts and the test process has
already started it with one device. Usage::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
        python tests/sharding_checks.py [CHECK ...]

Each check compiles a function for a device mesh, runs it, and compares its
values with the same function run on one device; most also inspect the
compiled (partitioned) HLO for its collectives. Each result is printed as one
line ``RESULT {"check": ..., "ok": ..., "detail": ...}`` as soon as it is
known, so that a crash still reports the checks before it.

The names of the checks are ``<subject>-<partitioning>-<method>``, e.g.
``op2d-batch-lhs_dilation``; see :func:`available_checks`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import math
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jdeconv

#: The number of simulated devices: run with
#: ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
DEVICES = 8
XLA_FLAGS = f"--xla_force_host_platform_device_count={DEVICES}"
#: Halves the compile time, which dominates these checks. LLVM's optimisation
#: level does not change the partitioned HLO they read (the same collectives
#: either way), and the sharded and the one-device programs both get it.
FAST_COMPILE = "--xla_backend_optimization_level=0"

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

# Relative tolerance of a sharded float32 result against the one-device result,
# as a fraction of the largest magnitude: partitioned reductions add in another
# order, nothing more.
RTOL = 2e-5


class ShardingCheckError(Exception):
    """A property of the sharded computation does not hold."""


# ---------------------------------------------------------------------------
# Reading collectives out of compiled HLO text.

_COLLECTIVES = ("all-gather", "all-reduce", "collective-permute", "all-to-all", "reduce-scatter")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.+?) ([a-z][a-z0-9\-]*)\((.*)$")
_ARRAY = re.compile(r"\b[a-z]+[0-9]*\[([0-9,]*)\]")


@dataclasses.dataclass
class Collective:
    """One collective of a compiled program."""

    kind: str  # e.g. "all-gather" (an async "-start" is folded into its kind)
    result: list[tuple[int, ...]]  # the shapes of the arrays it produces
    operands: list[tuple[int, ...]]  # the shapes of its operands

    @property
    def largest(self) -> int:
        """Elements of the largest array it produces or consumes."""
        return max(math.prod(s) for s in [*self.result, *self.operands, ()])

    def __str__(self) -> str:
        return f"{self.kind} {self.operands} -> {self.result}"


def _shapes(text: str) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in m.group(1).split(",") if d) for m in _ARRAY.finditer(text)]


def collectives(hlo: str) -> list[Collective]:
    """The collectives of a compiled module's text, with operand and result shapes."""
    types: dict[str, list[tuple[int, ...]]] = {}
    found = []
    for line in hlo.splitlines():
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        name, type_text, opcode, rest = match.groups()
        types[name] = _shapes(type_text)
        kind = opcode.removesuffix("-start")
        if kind not in _COLLECTIVES or opcode.endswith("-done"):
            continue
        operand_text = rest.split(")", 1)[0]
        operands = []
        for operand in re.findall(r"%([\w.\-]+)", operand_text):
            operands += types.get(operand, [])
        result = types[name]
        if opcode.endswith("-start") and kind != "all-reduce":
            # An async start returns (operands, results[, scratch]).
            result = result[len(operands) : 2 * len(operands)] or result
        found.append(Collective(kind, result, operands))
    return found


def compiled_collectives(function: Callable, *args) -> list[Collective]:
    return collectives(jax.jit(function).lower(*args).compile().as_text())


def run_compiled(function: Callable, *args) -> tuple[object, list[Collective]]:
    """Compiles ``function`` for ``args``' shardings once; returns its result and collectives."""
    compiled = jax.jit(function).lower(*args).compile()
    return compiled(*args), collectives(compiled.as_text())


def describe(found: list[Collective]) -> list[str]:
    return [str(c) for c in found]


# ---------------------------------------------------------------------------
# Meshes, placement and comparison.


def mesh_1d(name: str = "x") -> Mesh:
    return jax.make_mesh((DEVICES,), (name,), axis_types=(AxisType.Auto,))


def place(mesh: Mesh, value, spec: P):
    return jax.device_put(value, NamedSharding(mesh, spec))


def compare(name: str, sharded, single) -> float:
    """Largest relative difference of two pytrees; raises if above ``RTOL``."""
    worst = 0.0
    leaves_a, tree_a = jax.tree.flatten(sharded)
    leaves_b, tree_b = jax.tree.flatten(single)
    if tree_a != tree_b:
        raise ShardingCheckError(f"{name}: structures differ: {tree_a} vs {tree_b}")
    for a, b in zip(leaves_a, leaves_b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise ShardingCheckError(f"{name}: shapes differ: {a.shape} vs {b.shape}")
        scale = max(float(np.max(np.abs(b))), 1e-30)
        error = float(np.max(np.abs(a - b))) / scale
        worst = max(worst, error)
        if not error <= RTOL:
            raise ShardingCheckError(f"{name}: relative difference {error:.2e} > {RTOL:.0e}")
    return worst


def random(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------------------
# The transposed convolutions under test: small, but with activations much
# larger than the kernel, so that a gathered activation cannot pass for a
# gathered weight.


@dataclasses.dataclass(frozen=True)
class OpCase:
    num_spatial: int
    input_shape: tuple[int, ...]  # channels last
    kernel: tuple[int, ...]  # [*k, C_out / groups, C_in]
    output_spatial: tuple[int, ...]
    strides: int
    padding: str
    groups: int = 1

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.input_shape[0], *self.output_spatial, self.kernel[-2] * self.groups)

    def op(self, method: str):
        def apply(x, w):
            return jdeconv.conv_transpose(
                x,
                w,
                self.output_spatial,
                self.strides,
                self.padding,
                groups=self.groups,
                method=method,
            )

        return apply


# A DCGAN-style upsampling (k=4, s=2, SAME) and a 3-d one (k=2x3x3, s=2, SAME).
OP2D = OpCase(2, (8, 32, 32, 8), (4, 4, 16, 8), (64, 64), 2, "SAME")
OP3D = OpCase(3, (8, 4, 16, 8, 4), (2, 3, 3, 8, 4), (8, 32, 16), 2, "SAME")
# A volume whose depth splits over 8 devices: the sub-pixel lowerings fold the
# depth into the batch on one device.
OP3D_DEEP = OpCase(3, (2, 16, 8, 8, 4), (3, 2, 2, 8, 4), (32, 16, 16), 2, "SAME")
# A VALID layer whose 72 output rows split evenly over 8 devices, but whose
# ceil(72 / 2) = 36 sub-pixel blocks do not: a depth-to-space reshape of the
# blocks would gather them.
OP2D_UNEVEN = OpCase(2, (8, 32, 8, 4), (10, 3, 8, 4), (72, 17), 2, "VALID")
# A grouped layer: on one device its kernel gradient merges (group, batch).
OP2D_GROUPED = OpCase(2, (8, 16, 16, 8), (4, 4, 4, 8), (32, 32), 2, "SAME", groups=2)

# Partitionings: where the input, the kernel and the output cotangent live.
# ``height`` is axis 1 of a channels-last 2-d input and axis 2 of a 3-d one.
_HEIGHT = {2: 1, 3: 2}


def _spec(rank: int, axis: int | None, name: str = "x") -> P:
    entries: list[str | None] = [None] * rank
    if axis is not None:
        entries[axis] = name
    return P(*entries)


def partition_specs(case: OpCase, partitioning: str) -> tuple[P, P, P]:
    rank = case.num_spatial + 2
    if partitioning == "batch":
        return _spec(rank, 0), _spec(rank, None), _spec(rank, 0)
    if partitioning.startswith("height"):
        height = _HEIGHT[case.num_spatial]
        return _spec(rank, height), _spec(rank, None), _spec(rank, height)
    if partitioning == "depth":
        return _spec(rank, 1), _spec(rank, None), _spec(rank, 1)
    if partitioning == "channels_out":
        return _spec(rank, None), _spec(rank, rank - 2), _spec(rank, rank - 1)
    if partitioning == "channels_in":
        return _spec(rank, rank - 1), _spec(rank, rank - 1), _spec(rank, None)
    raise ValueError(partitioning)


def value_and_grads(apply):
    """``(a, b, cotangent) -> (y, da, db)``: the forward and backward pass of ``apply(a, b)``."""

    def run(x, w, cotangent):
        y, vjp = jax.vjp(apply, x, w)
        return (y, *vjp(cotangent))

    return run


def shard_size(shape: tuple[int, ...]) -> int:
    return math.prod(shape) // DEVICES


def _check_batch_hlo(forward: list[Collective], both: list[Collective], weight_limit: int) -> None:
    """Under batch sharding only small all-reduces (weight gradients) may appear."""
    if forward:
        raise ShardingCheckError(f"forward pass has collectives: {describe(forward)}")
    bad = [c for c in both if c.kind != "all-reduce" or c.largest > weight_limit]
    if bad:
        raise ShardingCheckError(
            f"forward + backward must only all-reduce weight gradients (at most "
            f"{weight_limit} elements), found: {describe(bad)}"
        )
    if not both:
        raise ShardingCheckError("the backward pass has no all-reduce of the kernel gradient")


def _check_no_gathered_activation(found: list[Collective], limit: int) -> None:
    bad = [c for c in found if c.kind in ("all-gather", "all-to-all") and c.largest > limit]
    if bad:
        raise ShardingCheckError(
            f"activations are gathered or resharded (collective larger than the "
            f"{limit}-element kernel): {describe(bad)}"
        )


def _check_height_hlo(found: list[Collective], weight_limit: int, output_shard: int) -> None:
    """Height sharding: halo exchanges (collective-permute) smaller than a shard."""
    _check_no_gathered_activation(found, weight_limit)
    permutes = [c for c in found if c.kind == "collective-permute"]
    if not permutes:
        raise ShardingCheckError("no collective-permute (halo exchange) at all")
    whole = [c for c in permutes if c.largest >= output_shard]
    if whole:
        raise ShardingCheckError(
            f"collective-permutes as large as a device's whole output shard "
            f"({output_shard} elements), not halos: {describe(whole)}"
        )


def check_hlo(
    method: str,
    partitioning: str,
    both: list[Collective],
    case: OpCase,
    forward: list[Collective] | None = None,
) -> list[str]:
    """Checks the collectives of the forward + backward program (and of the forward one).

    Returns them, described, for the report.
    """
    weight_limit = 2 * math.prod(case.kernel)  # a sub-pixel kernel may be padded
    if partitioning == "batch":
        _check_batch_hlo(forward or [], both, weight_limit)
    elif partitioning.startswith("height") or partitioning == "depth":
        _check_height_hlo(both, weight_limit, shard_size(case.output_shape))
    else:
        _check_no_gathered_activation(both, weight_limit)
        partial_sums = [c for c in both if c.kind in ("all-reduce", "reduce-scatter")]
        if partitioning == "channels_in" and not partial_sums:
            raise ShardingCheckError(f"no all-reduce of partial sums: {describe(both)}")
        if partitioning == "channels_out" and method != "phase_matmul":
            # One input gradient's worth; "phase_matmul" sends one per phase part.
            reduced = sum(math.prod(shape) for c in partial_sums for shape in c.operands)
            if reduced > math.prod(case.input_shape) + weight_limit:
                raise ShardingCheckError(
                    f"more than one input gradient all-reduced: {describe(both)}"
                )
    return describe(both)


@functools.cache
def op_data(case: OpCase) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``(x, w, cotangent)`` for ``case``, the same for every check."""
    rng = np.random.default_rng(case.num_spatial)
    return (
        random(rng, case.input_shape),
        random(rng, case.kernel),
        random(rng, case.output_shape),
    )


@functools.cache
def one_device(case: OpCase, method: str) -> tuple[np.ndarray, ...]:
    """``(y, dx, dw)`` on one device: what every partitioning must reproduce."""
    result = jax.jit(value_and_grads(case.op(method)))(*op_data(case))
    return tuple(np.asarray(a) for a in result)


def check_op(case: OpCase, partitioning: str, method: str) -> dict:
    apply = case.op(method)
    mesh = mesh_1d()
    specs = partition_specs(case, partitioning)
    args = tuple(place(mesh, a, spec) for a, spec in zip(op_data(case), specs))
    sharded, both = run_compiled(value_and_grads(apply), *args)
    error = compare("(y, dx, dw)", sharded, one_device(case, method))
    if partitioning == "batch" and sharded[0].sharding.spec[0] is None:
        raise ShardingCheckError(f"the output lost its batch sharding: {sharded[0].sharding}")
    # The forward pass alone, to check that it has no collective at all.
    forward = compiled_collectives(apply, *args[:2]) if partitioning == "batch" else None
    hlo = check_hlo(method, partitioning, both, case, forward)
    return {"max_relative_difference": error, "collectives": hlo}


def check_set_mesh(method: str, *, set_mesh: bool = True) -> dict:
    """A depth split given to ``jax.jit`` as ``in_shardings`` of host (NumPy) arrays.

    Such arguments' types name no mesh; under ``jax.set_mesh`` the lowerings
    still see it and partition as for arrays placed on the mesh. Without it
    (``set_mesh=False``) the sub-pixel lowerings take their one-device forms,
    which gather a depth-split volume, as docs/multi_device.md says.
    """
    case = OP3D_DEEP
    mesh = mesh_1d()
    shardings = tuple(NamedSharding(mesh, spec) for spec in partition_specs(case, "depth"))
    run = jax.jit(value_and_grads(case.op(method)), in_shardings=shardings)
    data = op_data(case)
    if set_mesh:
        with jax.set_mesh(mesh):
            compiled = run.lower(*data).compile()
    else:
        compiled = run.lower(*data).compile()
    error = compare("(y, dx, dw)", compiled(*data), one_device(case, method))
    found = collectives(compiled.as_text())
    if set_mesh:
        hlo = check_hlo(method, "depth", found, case)
    else:
        _require_gather(found, 2 * math.prod(case.kernel), f"{method!r} on host arrays")
        hlo = describe(found)
    return {"max_relative_difference": error, "collectives": hlo}


def _require_gather(found: list[Collective], limit: int, what: str) -> None:
    """A gather that docs/multi_device.md documents is still there (so the page stays true)."""
    gathers = [c for c in found if c.kind in ("all-gather", "all-to-all")]
    if not any(c.largest > limit for c in gathers):
        raise ShardingCheckError(
            f"{what} no longer gathers activations: update docs/multi_device.md and "
            f"this check. Collectives: {describe(found)}"
        )


def check_grouped_lhs_dilation() -> dict:
    """XLA replicates a batch-split grouped convolution: ``"lhs_dilation"`` gathers.

    The sub-pixel lowerings compute groups without ``feature_group_count``
    and keep the batch split (``op2d_grouped-batch-*``).
    """
    case = OP2D_GROUPED
    mesh = mesh_1d()
    args = tuple(
        place(mesh, a, spec) for a, spec in zip(op_data(case), partition_specs(case, "batch"))
    )
    sharded, found = run_compiled(value_and_grads(case.op("lhs_dilation")), *args)
    error = compare("(y, dx, dw)", sharded, one_device(case, "lhs_dilation"))
    _require_gather(found, 2 * math.prod(case.kernel), "a grouped 'lhs_dilation'")
    return {"max_relative_difference": error, "collectives": describe(found)}


def check_grouped_auto_accelerators() -> dict:
    """On GPU and TPU, ``"auto"`` keeps a batch-split grouped layer off grouped convolutions.

    There ``"auto"`` would be ``"lhs_dilation"``, whose ``feature_group_count``
    convolutions XLA replicates (``check_grouped_lhs_dilation``). Exported for
    those platforms from placed (mesh) arrays, its program must have none.
    """
    case = OP2D_GROUPED
    mesh = mesh_1d()
    args = tuple(
        place(mesh, a, spec) for a, spec in zip(op_data(case), partition_specs(case, "batch"))
    )
    feature_groups = re.compile(r"feature_group_count = ([0-9]+)")
    found = {}
    for platform in ("cuda", "tpu"):
        for method in ("auto", "lhs_dilation"):
            function = jax.jit(value_and_grads(case.op(method)))
            text = jax.export.export(function, platforms=(platform,))(*args).mlir_module()
            found[platform, method] = [int(c) for c in feature_groups.findall(text) if int(c) > 1]
        if not found[platform, "lhs_dilation"]:
            raise ShardingCheckError(f"no grouped convolution found in 'lhs_dilation' ({platform})")
        if found[platform, "auto"]:
            raise ShardingCheckError(
                f"'auto' on {platform} emits grouped convolutions under a mesh: "
                f"feature_group_count {found[platform, 'auto']}"
            )
    return {f"{p} {m}": counts for (p, m), counts in found.items()}


def check_op_reference() -> dict:
    """The batch-sharded op agrees with the float64 NumPy reference, not only with itself."""
    sys.path.insert(0, str(HERE))
    import reference

    case = OP2D
    x, w, _ = op_data(case)
    mesh = mesh_1d()
    y = jax.jit(case.op("auto"))(place(mesh, x, P("x")), place(mesh, w, P()))
    want = reference.conv_transpose(x, w, case.output_spatial, (2, 2), (1, 1), case.padding)
    error = float(np.max(np.abs(np.asarray(y, np.float64) - want)) / np.max(np.abs(want)))
    if not error <= 1e-5:
        raise ShardingCheckError(f"batch-sharded result differs from the reference by {error:.2e}")
    return {"max_relative_difference": error}


def check_detector() -> dict:
    """The HLO checks catch a gathered activation (so that passing them means something).

    Merging the sharded height into the batch axis forces XLA to collect the
    activation across devices.
    """
    mesh = mesh_1d()
    x = place(mesh, np.ones(OP2D.input_shape, np.float32), P(None, "x"))
    found = compiled_collectives(lambda x: 2 * x.reshape(-1, *x.shape[2:]), x)
    try:
        _check_no_gathered_activation(found, 2 * math.prod(OP2D.kernel))
    except ShardingCheckError as caught:
        return {"caught": str(caught)}
    raise ShardingCheckError(f"a gathered activation went unnoticed: {describe(found)}")


def check_op_nchw(method: str) -> dict:
    """Channels-first input, batch and height sharded at once on a 2-d mesh."""
    rng = np.random.default_rng(5)
    x = random(rng, (4, 8, 16, 16))
    w = random(rng, (4, 4, 8, 8))
    cotangent = random(rng, (4, 8, 32, 32))

    def apply(x, w):
        return jdeconv.conv2d_transpose(x, w, (32, 32), 2, "SAME", "NCHW", method=method)

    run = value_and_grads(apply)
    single = jax.jit(run)(x, w, cotangent)
    mesh = jax.make_mesh((4, 2), ("data", "space"), axis_types=(AxisType.Auto,) * 2)
    spec = P("data", None, "space", None)
    args = (place(mesh, x, spec), place(mesh, w, P()), place(mesh, cotangent, spec))
    sharded, found = run_compiled(run, *args)
    error = compare("(y, dx, dw)", sharded, single)
    _check_no_gathered_activation(found, 2 * w.size)
    return {"max_relative_difference": error, "collectives": describe(found)}


# ---------------------------------------------------------------------------
# The linen layer.


@functools.cache
def _layer_setup(num_spatial: int, method: str):
    if num_spatial == 2:
        layer = jdeconv.Conv2DTranspose(16, 4, strides=2, padding="same", method=method)
        x_shape = (8, 16, 16, 8)
    else:
        layer = jdeconv.Conv3DTranspose(8, (2, 3, 3), strides=2, padding="same", method=method)
        x_shape = (8, 4, 16, 8, 4)
    rng = np.random.default_rng(7)
    x = random(rng, x_shape)
    params = jax.jit(layer.init)(jax.random.key(0), x)["params"]
    y_shape = jax.eval_shape(lambda p, x: layer.apply({"params": p}, x), params, x).shape
    cotangent = random(rng, y_shape)

    def apply(params, x):
        return layer.apply({"params": params}, x)

    grad = value_and_grads(apply)  # (params, x, cotangent) -> (y, dparams, dx)
    single = jax.tree.map(np.asarray, jax.jit(grad)(params, x, cotangent))
    return x, params, cotangent, grad, single


def check_layer(num_spatial: int, partitioning: str, method: str) -> dict:
    x, params, cotangent, grad, single = _layer_setup(num_spatial, method)
    mesh = mesh_1d()
    rank = num_spatial + 2
    if partitioning == "batch":
        x_spec, p_specs, y_spec = _spec(rank, 0), {"kernel": P(), "bias": P()}, _spec(rank, 0)
    elif partitioning == "height":
        height = _HEIGHT[num_spatial]
        x_spec, y_spec = _spec(rank, height), _spec(rank, height)
        p_specs = {"kernel": P(), "bias": P()}
    else:  # channels_out: the kernel's output channels and the bias
        x_spec, y_spec = _spec(rank, None), _spec(rank, rank - 1)
        p_specs = {"kernel": _spec(rank, rank - 2), "bias": P("x")}
    args = (
        {k: place(mesh, v, p_specs[k]) for k, v in params.items()},
        place(mesh, x, x_spec),
        place(mesh, cotangent, y_spec),
    )
    sharded, found = run_compiled(grad, *args)
    error = compare("(y, dparams, dx)", sharded, single)
    weight_limit = 2 * params["kernel"].size
    if partitioning == "batch":
        bad = [c for c in found if c.kind != "all-reduce" or c.largest > weight_limit]
        if bad:
            raise ShardingCheckError(
                f"only weight-gradient all-reduces allowed, found {describe(bad)}"
            )
        reduced = sorted({s for c in found for s in c.result})
        if params["bias"].shape not in reduced:
            raise ShardingCheckError(f"no all-reduce of the bias gradient: {describe(found)}")
    elif partitioning == "height":
        _check_height_hlo(found, weight_limit, shard_size(cotangent.shape))
    else:
        _check_no_gathered_activation(found, weight_limit)
    return {"max_relative_difference": error, "collectives": describe(found)}


def check_layer_data_model(method: str) -> dict:
    """Data and model parallelism at once: batch over 'data', channels over 'model'."""
    x, params, cotangent, grad, single = _layer_setup(2, method)
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    args = (
        {
            "kernel": place(mesh, params["kernel"], P(None, None, "model", None)),
            "bias": place(mesh, params["bias"], P("model")),
        },
        place(mesh, x, P("data")),
        place(mesh, cotangent, P("data", None, None, "model")),
    )
    sharded, found = run_compiled(grad, *args)
    error = compare("(y, dparams, dx)", sharded, single)
    _check_no_gathered_activation(found, 2 * params["kernel"].size)
    return {"max_relative_difference": error, "collectives": describe(found)}


# ---------------------------------------------------------------------------
# Other ways to distribute: shard_map, and meshes with explicit axes.


def check_shard_map(method: str) -> dict:
    """Per-device code under ``jax.shard_map``; parameter gradients summed by JAX."""
    case = OP2D
    x, w, cotangent = op_data(case)

    def loss(x, w, cotangent):
        y = jdeconv.conv2d_transpose(
            x, w, (x.shape[0], *case.output_spatial, w.shape[-2]), 2, "SAME", method=method
        )
        return jnp.sum(y * cotangent)

    grad = jax.grad(loss, argnums=(0, 1))
    mesh = mesh_1d("data")
    # With JAX's checks of varying values on, the gradient of the replicated
    # kernel comes back already summed over the devices.
    per_device = jax.shard_map(
        grad, mesh=mesh, in_specs=(P("data"), P(), P("data")), out_specs=(P("data"), P())
    )
    sharded = jax.jit(per_device)(x, w, cotangent)
    error = compare("(dx, dw)", sharded, one_device(case, method)[1:])
    return {"max_relative_difference": error}


def check_explicit_axes(partitioning: str, method: str) -> dict:
    """``jax.make_mesh``'s default explicit axes, with ``jax.set_mesh``: sharding in types."""
    case = OP2D
    apply = case.op(method)
    mesh = jax.make_mesh((DEVICES,), ("x",), axis_types=(AxisType.Explicit,))
    specs = partition_specs(case, partitioning)
    with jax.set_mesh(mesh):
        args = tuple(place(mesh, a, spec) for a, spec in zip(op_data(case), specs))
        sharded, both = run_compiled(value_and_grads(apply), *args)
        forward = compiled_collectives(apply, *args[:2]) if partitioning == "batch" else None
    error = compare("(y, dx, dw)", sharded, one_device(case, method))
    x_spec, _, y_spec = specs
    want = {"batch": x_spec, "height": x_spec, "channels_out": y_spec}[partitioning]
    if tuple(sharded[0].sharding.spec) != tuple(want):
        raise ShardingCheckError(f"the output is sharded as {sharded[0].sharding.spec}, not {want}")
    hlo = check_hlo(method, partitioning, both, case, forward)
    return {"max_relative_difference": error, "collectives": hlo}


# ---------------------------------------------------------------------------
# The example: data-parallel training of the demo model.


#: A small demo run: the data-parallel checks train it on 1, 8 and 2 x 4 devices.
DEMO = dict(
    steps=8,
    batch_size=16,
    image_size=16,
    features=(8, 16),
    latent_dim=8,
    num_images=64,
    learning_rate=1e-2,
)
# Loss curves of different partitionings agree to float32 rounding, which
# Adam's normalised updates let grow a little over the steps.
LOSS_RTOL = 1e-4


@functools.cache
def _example():
    path = ROOT / "examples" / "data_parallel.py"
    spec = importlib.util.spec_from_file_location("data_parallel", path)
    if spec is None or spec.loader is None:
        raise ShardingCheckError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _one_device_losses() -> np.ndarray:
    example = _example()
    return example.train(example.make_mesh(1), **DEMO).losses


def _compare_curves(losses: np.ndarray, label: str) -> float:
    one = _one_device_losses()
    error = float(np.max(np.abs(losses - one) / np.abs(one)))
    if not error <= LOSS_RTOL:
        raise ShardingCheckError(
            f"{label}: loss curve differs from one device's by {error:.2e}: {losses} vs {one}"
        )
    if not losses[-1] < losses[0]:
        raise ShardingCheckError(f"{label}: the loss did not decrease: {losses}")
    return error


def check_demo_data_parallel() -> dict:
    """The example's data-parallel loss curve equals the one-device curve."""
    example = _example()
    eight = example.train(example.make_mesh(DEVICES), **DEMO)
    error = _compare_curves(eight.losses, f"{DEVICES} devices")
    found = collectives(eight.compiled_text)
    limit = max(math.prod(p.shape) for p in jax.tree.leaves(eight.params))
    bad = [c for c in found if c.kind != "all-reduce" or c.largest > limit]
    if bad:
        raise ShardingCheckError(f"the training step gathers activations: {describe(bad)}")
    return {
        "max_relative_difference": error,
        "losses": [float(v) for v in eight.losses],
        "collectives": describe(found),
    }


def check_demo_multi_process() -> dict:
    """``examples/multi_host.py`` as 2 processes of 4 devices, joined over localhost."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    processes = 2
    arguments = [
        f"--coordinator=localhost:{port}",
        f"--num-processes={processes}",
        f"--steps={DEMO['steps']}",
        f"--batch-size={DEMO['batch_size']}",
        f"--image-size={DEMO['image_size']}",
        f"--features={','.join(map(str, DEMO['features']))}",
        f"--latent-dim={DEMO['latent_dim']}",
        f"--num-images={DEMO['num_images']}",
        f"--learning-rate={DEMO['learning_rate']}",
        "--json",
    ]
    flags = os.environ.get("XLA_FLAGS", "").replace(XLA_FLAGS, "")
    env = {
        **os.environ,
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={DEVICES // processes}",
    }
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "examples" / "multi_host.py"),
                *arguments,
                f"--process-id={index}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for index in range(processes)
    ]
    outputs = []
    try:
        for child in children:
            outputs.append(child.communicate(timeout=600))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, (_, err) in zip(children, outputs):
        if child.returncode:
            raise ShardingCheckError(f"a process exited with {child.returncode}:\n{err[-2000:]}")
    report = json.loads(next(line for line in outputs[0][0].splitlines() if line.startswith("{")))
    if report["devices"] != DEVICES:
        raise ShardingCheckError(f"the processes saw {report['devices']} devices together")
    losses = np.asarray(report["losses"], np.float32)
    error = _compare_curves(losses, f"{processes} processes")
    return {"max_relative_difference": error, "losses": report["losses"]}


# ---------------------------------------------------------------------------


def available_checks() -> dict[str, Callable[[], dict]]:
    """Every check by name, for every lowering in :data:`jdeconv.METHODS`."""
    checks: dict[str, Callable[[], dict]] = {
        "hlo-detects_gather": check_detector,
        "op2d-reference": check_op_reference,
        "demo-data_parallel": check_demo_data_parallel,
        "demo-multi_process": check_demo_multi_process,
    }
    for method in jdeconv.METHODS:
        for partitioning in ("batch", "height", "channels_out", "channels_in"):
            checks[f"op2d-{partitioning}-{method}"] = lambda p=partitioning, m=method: check_op(
                OP2D, p, m
            )
        checks[f"op2d-height_uneven-{method}"] = lambda m=method: check_op(
            OP2D_UNEVEN, "height_uneven", m
        )
        checks[f"op3d-depth-{method}"] = lambda m=method: check_op(OP3D_DEEP, "depth", m)
        checks[f"op3d-depth_set_mesh-{method}"] = lambda m=method: check_set_mesh(m)
        if method != "lhs_dilation":
            checks[f"op2d_grouped-batch-{method}"] = lambda m=method: check_op(
                OP2D_GROUPED, "batch", m
            )
        for partitioning in ("batch", "height"):
            checks[f"op3d-{partitioning}-{method}"] = lambda p=partitioning, m=method: check_op(
                OP3D, p, m
            )
        checks[f"op2d-nchw_batch_height-{method}"] = lambda m=method: check_op_nchw(m)
        checks[f"shard_map-batch-{method}"] = lambda m=method: check_shard_map(m)
        # Under explicit axes XLA partitions the op as above (jax.sharding.auto_axes):
        # every lowering with the batch split, and "auto" under the other splits.
        for partitioning in ("batch", "height", "channels_out"):
            if partitioning == "batch" or method == "auto":
                checks[f"explicit-{partitioning}-{method}"] = lambda p=partitioning, m=method: (
                    check_explicit_axes(p, m)
                )
    for partitioning in ("batch", "height", "channels_out"):
        checks[f"linen2d-{partitioning}-auto"] = lambda p=partitioning: check_layer(2, p, "auto")
    checks["linen3d-height-auto"] = lambda: check_layer(3, "height", "auto")
    checks["op3d-depth_host_arrays-phase"] = lambda: check_set_mesh("phase", set_mesh=False)
    checks["op2d_grouped-batch-lhs_dilation"] = check_grouped_lhs_dilation
    checks["op2d_grouped-batch-auto_accelerators"] = check_grouped_auto_accelerators
    checks["linen2d-data_model-auto"] = lambda: check_layer_data_model("auto")
    return checks


def main(names: list[str]) -> int:
    if jax.device_count() != DEVICES:
        print(
            f"expected {DEVICES} devices, got {jax.devices()}: set XLA_FLAGS={XLA_FLAGS}",
            file=sys.stderr,
        )
        return 2
    checks = available_checks()
    for name in names:
        start, wall = time.process_time(), time.perf_counter()
        print(f"START {name}", flush=True)
        try:
            if name not in checks:
                raise ShardingCheckError(f"unknown check {name!r}")
            result = {"check": name, "ok": True, "detail": checks[name]()}
        except Exception as error:  # reported to the parent, which fails the test
            detail = f"{type(error).__name__}: {error}"
            if not isinstance(error, ShardingCheckError):
                detail += "\n" + "".join(traceback.format_exc(limit=-6))
            result = {"check": name, "ok": False, "detail": detail}
        result["cpu_seconds"] = round(time.process_time() - start, 2)
        result["wall_seconds"] = round(time.perf_counter() - wall, 2)
        print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(available_checks())))
