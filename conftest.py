"""Set-up of the docstring examples, which ``pytest`` runs with the tests.

``pytest`` collects the examples in the ``jdeconv`` package's docstrings
(``--doctest-modules``, see ``pyproject.toml``). This file makes them behave
the same whatever else runs:

- each example runs with JAX's default 32-bit types, although the test suite
  turns 64-bit types on (``tests/conftest.py``), so that printed dtypes and
  values do not depend on what ran before;
- an example that needs an optional package (PyTorch, TensorFlow, h5py, ...,
  or the ``demo`` extra for ``jdeconv.demo``) is skipped where it is missing.

It also prints the versions of the packages the suite depends on in the
header of every run, so that a log says what was tested.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
from collections.abc import Iterator

import pytest

# Packages that examples may import although the core library does not need them.
_OPTIONAL = ("torch", "tensorflow", "tf_keras", "h5py", "safetensors", "matplotlib", "tqdm")

# Modules whose examples need packages they do not import themselves.
_MODULE_REQUIRES = {"jdeconv.demo": ("matplotlib", "tqdm")}


# Their versions head every run's log (the distributions, not the modules).
_REPORTED = (
    "jax", "jaxlib", "flax", "numpy", "tensorflow", "tensorflow-cpu", "tf_keras", "keras",
    "torch", "optax", "hypothesis",
)  # fmt: skip


def pytest_report_header(config: pytest.Config) -> str:
    """The Python and package versions under test."""
    del config
    versions = []
    for name in _REPORTED:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} absent")
    return f"jdeconv's dependencies: Python {platform.python_version()}, " + ", ".join(versions)


def _missing(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips the examples whose optional packages are not installed."""
    del config
    for item in items:
        if not isinstance(item, pytest.DoctestItem) or item.dtest is None:
            continue
        source = "\n".join(example.source for example in item.dtest.examples)
        needed = [name for name in _OPTIONAL if re.search(rf"\b(?:import|from)\s+{name}\b", source)]
        for module, names in _MODULE_REQUIRES.items():
            if item.dtest.name == module or item.dtest.name.startswith(module + "."):
                needed.extend(names)
        missing = _missing(tuple(dict.fromkeys(needed)))
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"the example needs {', '.join(missing)}"))


@pytest.fixture(autouse=True)
def _examples_in_32_bit(request: pytest.FixtureRequest) -> Iterator[None]:
    """Runs each docstring example with 64-bit types off, as JAX starts."""
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import jax

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
