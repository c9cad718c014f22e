"""A fingerprint of each suite layer's compiled forward + backward program, per method.

Prints, for every layer and method, the number of HLO instructions, the
number of convolutions and a hash of the sorted instruction kinds, plus the
compiled temporaries in bytes. Two checkouts whose lines agree compile to
the same work: run it against each (``PYTHONPATH=<checkout>``) and compare
the outputs, for instance before and after a change that should not alter
the emitted programs.

Usage::

    python benchmarks/hlo_ops.py > after.txt
    PYTHONPATH=/path/to/other/checkout python benchmarks/hlo_ops.py > before.txt
"""

from __future__ import annotations

import hashlib
import re

import jax
import jax.numpy as jnp
from layer_suite import LAYERS, jdeconv_forward

import jdeconv

_INSTRUCTION = re.compile(r"= \S+ ([a-z][a-z\-]*)\(")


def main() -> None:
    for layer in LAYERS:
        x = jax.ShapeDtypeStruct(layer.input_shape, jnp.float32)
        w = jax.ShapeDtypeStruct(layer.kernel_shape, jnp.float32)
        for method in jdeconv.METHODS:
            forward = jdeconv_forward(layer, method)

            def loss(x, w, forward=forward):
                return jnp.sum(forward(x, w) ** 2)

            compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile()
            kinds = sorted(_INSTRUCTION.findall(compiled.as_text()))
            digest = hashlib.md5(" ".join(kinds).encode()).hexdigest()[:10]
            temporaries = compiled.memory_analysis().temp_size_in_bytes
            print(
                f"{layer.name} {method} instructions={len(kinds)} "
                f"convolutions={kinds.count('convolution')} kinds={digest} temp={temporaries}"
            )


if __name__ == "__main__":
    main()
