"""Derivatives of random configurations, in every mode, never abort the process.

XLA's own transposes of dilated convolutions can abort the Python process
(a C++ ``Check failed`` in its algebraic simplifier) for some combinations of
stride, dilation and padding. jdeconv never asks XLA for those transposes:
every derivative goes through its own three primitives. These tests run
first and second derivatives of random configurations in a child process, in
reverse mode, forward mode and both nestings of the two (Hessian-vector
products), so that an abort shows up as a failed test with the offending
configuration instead of killing the test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import jdeconv

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp
    import cases
    import jdeconv

    seed, count, second_order, method = json.loads(sys.argv[1])
    for case in cases.sample(seed, count, groups=(1, 1, 2), max_stride=4, max_dilation=4):
        print("CASE", case.describe(), flush=True)
        x, w = case.arrays(dtype="float32")

        def loss(x, w):
            y = jdeconv.conv_transpose(
                x, w, case.output_shape_arg, case.strides_arg, case.padding_arg,
                None if case.channels_last else case.data_format, case.dilations_arg,
                groups=case.groups, method=method)
            return jnp.sum(jnp.sin(y))

        grad = jax.grad(loss, argnums=(0, 1))

        def forward(x, w):
            return jax.jvp(loss, (x, w), (jnp.cos(x), jnp.cos(w)))

        outputs = [grad, forward]
        if second_order:
            outputs.append(jax.grad(
                lambda x, w: sum(jnp.sum(g ** 2) for g in grad(x, w)), argnums=(0, 1)))
            # Hessian-vector products, forward over reverse and reverse over forward.
            outputs.append(lambda x, w: jax.jvp(grad, (x, w), (jnp.cos(x), jnp.cos(w)))[1])
            outputs.append(jax.grad(lambda x, w: forward(x, w)[1], argnums=(0, 1)))
        for f in outputs:
            for g in jax.tree.leaves(jax.jit(f)(x, w)):
                if not bool(jnp.all(jnp.isfinite(g))):
                    raise SystemExit("non-finite derivative")
    print("ALL OK", flush=True)
    """
)


def run_child(seed, count, second_order, method):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([seed, count, second_order, method])],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    lines = result.stdout.strip().splitlines()
    last_case = next((line for line in reversed(lines) if line.startswith("CASE")), None)
    assert result.returncode == 0 and lines[-1] == "ALL OK", (
        f"child exited with {result.returncode} at {last_case}\n{result.stderr[-3000:]}"
    )


@pytest.mark.parametrize("method", jdeconv.METHODS)
def test_derivatives_in_every_mode_never_abort(method):
    run_child(seed=100, count=6, second_order=True, method=method)


@pytest.mark.slow
@pytest.mark.parametrize("method", jdeconv.METHODS)
@pytest.mark.parametrize("seed", range(5))
def test_gradient_fuzz_grid(method, seed):
    run_child(seed=200 + seed, count=100, second_order=seed % 2 == 0, method=method)
