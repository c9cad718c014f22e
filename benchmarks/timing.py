"""Interleaved timing: every contender once per round, medians over rounds.

A *group* is a list of contenders that compute the same thing (one layer's
forward pass in every framework, say). A round runs every group in order,
and within a group every contender once, in an order that rotates from
round to round, so that a slow phase of the machine is shared out evenly.
Several groups in one call are how a model runs its layers: one after
another in one process, each call inheriting the allocator and thread-pool
state that the previous ones left behind.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class Contender:
    """A callable to time; ``run()`` returns once its result is computed."""

    name: str
    run: Callable[[], object]


@dataclasses.dataclass(frozen=True)
class TimingSettings:
    """How many calls each contender gets.

    Attributes:
      rounds: timed rounds.
      warmup: untimed calls after the first (compiling) one; a call longer
        than ``budget`` ends the warm-up.
      budget: seconds of timed calls after which a slow contender takes no
        more rounds (it always takes one).
      slow_factor: a contender is slow when its median is more than this
        many times the fastest median of its group. The others take every
        round, however long they take.
      settle: seconds of sleep before each call, so that the worker threads
        of the previous framework (OpenMP, Eigen) stop spinning first.
    """

    rounds: int = 7
    warmup: int = 1
    budget: float = 1.5
    slow_factor: float = 4.0
    settle: float = 0.02


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """``items`` starting at ``shift`` (modulo its length), wrapping around."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved_medians(
    groups: Sequence[Sequence[Contender]],
    settings: TimingSettings,
    on_progress: Callable[[], object] | None = None,
) -> list[dict[str, float]]:
    """Median seconds per contender, one dict per group (see the module docstring).

    ``on_progress()`` is called after each group's warm-up and after each round.
    """
    for group in groups:
        for contender in group:
            timed(contender.run)  # compiles
            for _ in range(settings.warmup):
                if timed(contender.run) > settings.budget:
                    break
        if on_progress is not None:
            on_progress()
    samples: list[dict[str, list[float]]] = [{c.name: [] for c in group} for group in groups]
    for r in range(settings.rounds):
        for group, taken in zip(groups, samples):
            for contender in rotated(group, r):
                if _done(taken, contender.name, settings):
                    continue
                time.sleep(settings.settle)
                taken[contender.name].append(timed(contender.run))
        if on_progress is not None:
            on_progress()
    return [{name: statistics.median(times) for name, times in s.items()} for s in samples]


def _done(taken: dict[str, list[float]], name: str, settings: TimingSettings) -> bool:
    """Whether a contender has spent its budget and is slow (see :class:`TimingSettings`)."""
    mine = taken[name]
    if not mine or sum(mine) <= settings.budget:
        return False
    fastest = min(statistics.median(times) for times in taken.values() if times)
    return statistics.median(mine) > settings.slow_factor * fastest


def jax_call(function: Callable[..., Any], *args: Any) -> Callable[[], object]:
    """``function(*args)``, waiting for the result (JAX dispatches asynchronously)."""

    def run():
        return jax.block_until_ready(function(*args))

    return run


def matmul_peak(settings: TimingSettings) -> float:
    """GFLOP/s of a 2048^3 float32 matmul: how fast this machine is right now."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((2048, 2048)), jnp.float32)
    run = jax_call(jax.jit(lambda a: a @ a), a)
    [seconds] = interleaved_medians([[Contender("matmul", run)]], settings)
    return 2 * 2048**3 / seconds["matmul"] / 1e9


def in_fresh_process(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in a new Python process, which then exits."""
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(function, args, kwargs)
