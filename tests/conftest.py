"""Shared test set-up: float64 on, quiet TensorFlow, oracle fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, the oracle for the TF API; the test skips where it is absent."""
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the oracle for the PyTorch conventions."""
    return pytest.importorskip("torch")
