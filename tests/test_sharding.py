"""jdeconv on a mesh of 8 devices: same values as on one device, and lean HLO.

The checks live in ``sharding_checks.py`` and run in one child process with
8 simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=8``),
because this process has already started JAX with one. For the op (2-d and
3-d), the linen layers, ``shard_map`` and meshes with explicit axes, under
batch, channel and height partitioning and for every lowering in
``jdeconv.METHODS``, they compare the sharded forward and backward pass with
the one-device one, and inspect the partitioned HLO:

* batch sharding: the forward pass has no collective at all, and forward +
  backward only all-reduce weight-sized arrays (the kernel and bias
  gradients);
* height sharding: halo exchanges (collective-permutes smaller than a
  device's shard) and no all-gather larger than the kernel;
* channel sharding: no activation is gathered; with input channels sharded
  the partial sums are all-reduced.

The last checks train the demo autoencoder data-parallel with
``examples/data_parallel.py`` on 8 devices, and with ``examples/multi_host.py``
as two processes of 4 devices joined by ``jax.distributed``, and compare the
loss curves with one device's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import reference
import sharding_checks

import jdeconv
from jdeconv import _primitives

SCRIPT = sharding_checks.__file__
CHECKS = list(sharding_checks.available_checks())


def _selected_checks(request: pytest.FixtureRequest) -> list[str]:
    """The checks of this module's tests that pytest will run, in order."""
    return [
        item.callspec.params["check"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and "check" in getattr(getattr(item, "callspec", None), "params", {})
    ]


@pytest.fixture(scope="module")
def child(request):
    """Runs the selected checks in one child process; returns results by name."""
    names = _selected_checks(request) or CHECKS
    env = {
        **os.environ,
        "XLA_FLAGS": " ".join(
            (
                os.environ.get("XLA_FLAGS", ""),
                sharding_checks.XLA_FLAGS,
                sharding_checks.FAST_COMPILE,
            )
        ).strip(),
        "JAX_PLATFORMS": "cpu",
        "JAX_ENABLE_X64": "0",
    }
    completed = subprocess.run(
        [sys.executable, SCRIPT, *names],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    results = {}
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
            results[result["check"]] = result
    return results, completed


@pytest.mark.parametrize("check", CHECKS)
def test_sharded(child, check):
    results, completed = child
    if check not in results:
        started = [line for line in completed.stdout.splitlines() if line.startswith("START")]
        pytest.fail(
            f"the child process exited with {completed.returncode} before reporting "
            f"{check!r} (last started: {started[-1:] or None}):\n{completed.stderr[-3000:]}"
        )
    result = results[check]
    assert result["ok"], result["detail"]


HLO = """\
ENTRY %main (param: f32[1,16,16,8], param.1: f32[4,4,16,8]) -> f32[4,4,16,8] {
  %param = f32[1,16,16,8]{3,2,1,0} parameter(0), sharding={devices=[8,1,1,1]<=[8]}
  %fusion.3 = f32[4,4,16,8]{3,2,1,0} fusion(%param), kind=kLoop, calls=%fused
  %all-reduce.2 = (f32[], f32[4,4,16,8]{3,2,1,0}) all-reduce(%ynn, %fusion.3), channel_id=1
  %all-gather-start = (f32[1,16,16,8]{3,2,1,0}, f32[8,16,16,8]{3,2,1,0}) all-gather-start(%param), dimensions={0}
  %all-gather-done = f32[8,16,16,8]{3,2,1,0} all-gather-done(%all-gather-start)
  %collective-permute = f32[1,2,16,8]{3,2,1,0:S(1)} collective-permute(%param), source_target_pairs={{0,1}}
  ROOT %get-tuple-element.1 = f32[4,4,16,8]{3,2,1,0} get-tuple-element(%all-reduce.2), index=1
}
"""


def test_collectives_are_read_with_their_shapes():
    found = sharding_checks.collectives(HLO)
    assert [(c.kind, c.operands, c.result) for c in found] == [
        ("all-reduce", [(4, 4, 16, 8)], [(), (4, 4, 16, 8)]),
        ("all-gather", [(1, 16, 16, 8)], [(8, 16, 16, 8)]),
        ("collective-permute", [(1, 16, 16, 8)], [(1, 2, 16, 8)]),
    ]
    assert [c.largest for c in found] == [2048, 8 * 16 * 16 * 8, 16 * 16 * 8]


# Where a mesh may split the operands, the sub-pixel lowerings use other forms
# (native convolutions over every spatial axis, phases interleaved by padding).
# The checks above run them on 8 devices; here they run on one device, with
# ``partitioned`` forced, against the float64 reference: the values directly,
# the gradients through the adjoint identities <T(x, w), g> = <x, dx> = <w, dw>.
PARTITIONED_CASES = {
    # volume: depth folded into the batch on one device
    "3d_same": dict(x=(2, 4, 3, 5, 3), w=(3, 2, 2, 4, 3), out=(8, 6, 10), s=2, pad="SAME"),
    # channels-first, groups, uneven blocks
    "3d_groups_ncdhw": dict(
        x=(2, 4, 3, 4, 2),
        w=(2, 3, 2, 2, 4),
        out=(6, 12, 4),
        s=(2, 3, 2),
        pad="VALID",
        groups=2,
        format="NCDHW",
    ),
    # ceil(O / s) blocks that a split of O would not divide
    "2d_uneven": dict(x=(2, 8, 4, 3), w=(10, 3, 4, 3), out=(24, 9), s=2, pad="VALID"),
    # dilation sharing a factor with the stride: zeros between the phases
    "2d_dilated": dict(x=(2, 5, 4, 3), w=(3, 2, 2, 3), out=(20, 16), s=4, d=2, pad="SAME"),
    "1d_explicit": dict(x=(3, 7, 2), w=(4, 3, 2), out=(19,), s=3, pad=[[0, 0], [1, 2], [0, 0]]),
}


@pytest.mark.parametrize("method", ["phase", "phase_matmul"])
@pytest.mark.parametrize("name", list(PARTITIONED_CASES))
def test_partitioned_forms_on_one_device(monkeypatch, name, method):
    case = PARTITIONED_CASES[name]
    rng = np.random.default_rng(len(name))
    x = rng.normal(size=case["x"]).astype(np.float32)
    w = rng.normal(size=case["w"]).astype(np.float32)
    groups, data_format = case.get("groups", 1), case.get("format")
    channels_last = data_format is None or data_format.endswith("C")

    def apply(x, w):
        return jdeconv.conv_transpose(
            x,
            w,
            case["out"],
            case["s"],
            case["pad"],
            data_format=data_format,
            dilations=case.get("d", 1),
            groups=groups,
            method=method,
        )

    n = len(case["out"])
    strides = case["s"] if isinstance(case["s"], tuple) else (case["s"],) * n
    padding = case["pad"] if isinstance(case["pad"], str) else case["pad"][1:-1]
    want = reference.conv_transpose(
        x,
        w,
        case["out"],
        strides,
        (case.get("d", 1),) * n,
        padding,
        groups=groups,
        channels_last=channels_last,
    )
    g = rng.normal(size=want.shape).astype(np.float32)

    def forward_backward(x, w, g):
        y, vjp = jax.vjp(apply, x, w)
        return (y, *vjp(g))

    default = jax.jit(forward_backward)(x, w, g)
    monkeypatch.setattr(_primitives, "partitioned", lambda *arrays: True)
    y, dx, dw = (np.asarray(a, np.float64) for a in jax.jit(forward_backward)(x, w, g))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    pairing = float(np.sum(want * g))
    scale = np.abs(want).max() * np.abs(g).sum()
    assert abs(float(np.sum(x * dx)) - pairing) <= 1e-5 * scale
    assert abs(float(np.sum(w * dw)) - pairing) <= 1e-5 * scale
    for got, base in zip((y, dx, dw), default):
        np.testing.assert_allclose(got, base, rtol=1e-5, atol=1e-5 * np.abs(base).max())


def test_one_device_is_not_partitioned():
    x = jax.numpy.ones((2, 3))
    assert not _primitives.partitioned(x)
    assert jax.jit(lambda x: _primitives.partitioned(x) * x)(x).sum() == 0
