"""Compile time, program size and peak memory of JAX functions.

Compile time is trace + lower + compile of a function's first call, with
JAX's caches cleared before each measurement (``jax.clear_caches()``), so
that nothing traced or compiled earlier is reused. Contenders are measured
interleaved, ``repeats`` times each; the median is reported.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import models
from layer_suite import (
    AUTO,
    Layer,
    jax_functions,
    layer_arrays,
    loss_grad,
    peak_bytes,
    reference_name,
)
from timing import rotated

import jdeconv


@dataclasses.dataclass(frozen=True)
class CompileCost:
    """Seconds to trace + lower and to compile; the program's size and peak memory.

    Attributes:
      trace_lower: median seconds from the Python function to the HLO module.
      compile: median seconds of XLA's compilation of that module.
      hlo_instructions: instructions of the HLO module handed to XLA.
      jaxpr_equations: equations of the function's jaxpr, those of nested
        jaxprs (``pjit``, ``custom_vjp_call``, ...) included.
      peak_bytes: arguments + outputs + temporaries of the compiled program,
        less what donated arguments alias.
    """

    trace_lower: float
    compile: float
    hlo_instructions: int
    jaxpr_equations: int
    peak_bytes: int

    @property
    def total(self) -> float:
        return self.trace_lower + self.compile


_HLO_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+ = ", re.MULTILINE)


def count_equations(jaxpr: Any) -> int:
    total = 0
    for equation in jaxpr.eqns:
        total += 1
        for value in equation.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr's Jaxpr
                if hasattr(inner, "eqns"):
                    total += count_equations(inner)
    return total


def compile_costs(
    functions: dict[str, tuple[Callable, Sequence[Any]]],
    repeats: int,
    donate_argnums: tuple[int, ...] = (),
) -> dict[str, CompileCost]:
    """The :class:`CompileCost` of each ``function(*args)``, measured interleaved."""
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in functions}
    last = {}
    for r in range(repeats):
        for name in rotated(list(functions), r):
            function, args = functions[name]
            jax.clear_caches()
            start = time.perf_counter()
            lowered = jax.jit(function, donate_argnums=donate_argnums).trace(*args).lower()
            lowered_at = time.perf_counter()
            compiled = lowered.compile()
            seconds[name].append((lowered_at - start, time.perf_counter() - lowered_at))
            last[name] = lowered, compiled
    costs = {}
    for name, (function, args) in functions.items():
        lowered, compiled = last[name]
        costs[name] = CompileCost(
            trace_lower=statistics.median(s for s, _ in seconds[name]),
            compile=statistics.median(c for _, c in seconds[name]),
            hlo_instructions=len(_HLO_INSTRUCTION.findall(lowered.as_text(dialect="hlo"))),
            jaxpr_equations=count_equations(jax.make_jaxpr(function)(*args)),
            peak_bytes=peak_bytes(compiled),
        )
    return costs


@dataclasses.dataclass
class CompileResults:
    """Per layer, for the stacked decoder and per model: contender -> cost."""

    layers: dict[str, dict[str, CompileCost]]
    decoder_spec: models.StackedDecoder
    decoder: dict[str, CompileCost]
    models: dict[str, dict[str, CompileCost]]


def layer_costs(layer: Layer, repeats: int) -> dict[str, CompileCost]:
    """Forward + backward of ``auto`` and of lax (or the lhs-dilated lowering)."""
    arrays = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in layer_arrays(layer)]
    functions, _ = jax_functions(layer)
    names = (AUTO, reference_name(functions))
    return compile_costs({n: (loss_grad(functions[n]), arrays) for n in names}, repeats)


def decoder_costs(spec: models.StackedDecoder, repeats: int) -> dict[str, CompileCost]:
    """Forward + backward of the stacked decoder, with every method and with lax."""
    functions = {
        f"jdeconv:{m}": models.decoder_loss_grad(spec, models.jdeconv_deconv(m))
        for m in jdeconv.METHODS
    }
    functions[models.LAX] = models.decoder_loss_grad(spec, models.lax_deconv)
    return compile_costs(functions, repeats)


def model_costs(spec: models.Architecture, repeats: int) -> dict[str, CompileCost]:
    """The whole training step, built with jdeconv's layers and with lax's."""
    functions = {
        models.JDECONV: models.jax_training_step(spec, models.jdeconv_deconv(), abstract=True),
        models.LAX: models.jax_training_step(spec, models.lax_deconv, abstract=True),
    }
    return compile_costs(functions, repeats, models.DONATED)


def measure_compile_costs(
    layers: Sequence[Layer],
    decoder: models.StackedDecoder,
    architectures: Sequence[models.Architecture],
    repeats: int,
    on_item: Callable[[], object] | None = None,
) -> CompileResults:
    def each(items, measure):
        results = {}
        for name, item in items:
            results[name] = measure(item, repeats)
            if on_item is not None:
                on_item()
        return results

    return CompileResults(
        layers=each(((layer.name, layer) for layer in layers), layer_costs),
        decoder_spec=decoder,
        decoder=each([("decoder", decoder)], decoder_costs)["decoder"],
        models=each(((spec.name, spec) for spec in architectures), model_costs),
    )
