"""Reader of PyTorch state dicts: ``torch.save`` files and in-memory mappings.

``torch.save`` files are pickles. They are read only with
``torch.load(..., weights_only=True)``, whose unpickler builds tensors and
plain containers and refuses every other global (no code runs). The format
has no checksum over the tensors' bytes, so damage there may go undetected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jdeconv import _checks
from jdeconv.io._errors import SourceError, describe, entry, require

# Why the weights-only unpickler refused a file, in PyTorch's long message.
_REFUSED = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*?)(?: Please use|\n|$)")

# Keys under which training checkpoints keep the model's state dict.
_WRAPPERS = ("state_dict", "model_state_dict", "model")


def read_file(path: str) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The state dict in a ``torch.save`` file, and the entries left out.

    Raises:
      SourceError: if the file is not a state dict that PyTorch can read
        without running code.
      MissingPackageError: without PyTorch.
    """
    torch = require(
        "torch",
        f"reading {path!r} needs PyTorch (torch.load). Install torch, or save the state "
        f"dict as .safetensors.",
    )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # PyTorch raises many kinds for a bad file.
        refused = _REFUSED.search(str(error))
        if refused:
            raise SourceError(
                f"torch.load(weights_only=True) refused it, running no code: {refused.group(1)}"
            ) from error
        raise SourceError(
            f"torch.load(weights_only=True) cannot read it: {describe(error)}"
        ) from error
    return from_object(loaded)


def from_object(loaded: Any) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """A state dict as NumPy arrays, unwrapped from a training checkpoint.

    Args:
      loaded: a mapping of names to tensors or arrays, or a checkpoint
        mapping that holds one under ``"state_dict"``, ``"model_state_dict"``
        or ``"model"`` (its other entries, such as an optimizer's state, are
        left out and returned as skipped).

    Returns:
      The arrays by name, in the mapping's order, and the skipped entries.
    """
    if not isinstance(loaded, Mapping):
        raise SourceError(
            f"it holds a {type(loaded).__name__}, not a state dict (a mapping of names to tensors)."
        )
    state, skipped = _unwrap(loaded)
    arrays = {}
    for name, value in state.items():
        with entry(str(name), "cannot convert it to a NumPy array"):
            arrays[str(name)] = _numpy(value)
    return arrays, skipped


def _unwrap(mapping: Mapping[Any, Any]) -> tuple[Mapping[Any, Any], tuple[str, ...]]:
    if mapping and all(_is_array(value) for value in mapping.values()):
        return mapping, ()
    for key in _WRAPPERS:
        inner = mapping.get(key)
        if isinstance(inner, Mapping) and inner and all(_is_array(v) for v in inner.values()):
            return inner, tuple(str(other) for other in mapping if other != key)
    if not mapping:
        raise SourceError("it is an empty mapping, not a state dict.")
    others = [
        f"{name!r} ({type(value).__name__})"
        for name, value in mapping.items()
        if not _is_array(value)
    ]
    raise SourceError(
        f"it is not a state dict: expected a mapping of names to tensors (or a "
        f"checkpoint holding one under 'state_dict', 'model_state_dict' or 'model'), "
        f"but these entries are not tensors: {', '.join(others[:8])}"
        + (f" and {len(others) - 8} more." if len(others) > 8 else ".")
    )


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch"):
        return _checks.torch_to_numpy(value)
    return np.asarray(value)
