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

import pytest
import sharding_checks

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
