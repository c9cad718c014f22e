"""Reader of ``.safetensors`` files.

The format is a JSON header (names, dtypes, shapes, byte ranges) followed by
the raw bytes; it holds no code. The ``safetensors`` library checks the header
and that every byte range lies inside the file. There is no checksum over the
bytes, so damage there may go undetected.
"""

from __future__ import annotations

import numpy as np

from jdeconv.io._errors import entry, require


def read_file(path: str) -> dict[str, np.ndarray]:
    """The arrays of a ``.safetensors`` file by name (the file sorts them).

    Raises:
      SourceError: if ``safetensors`` cannot read the file or an entry.
      MissingPackageError: without ``safetensors``.
    """
    safetensors = require(
        "safetensors",
        f"reading {path!r} needs safetensors: pip install safetensors (or jdeconv[io]).",
    )
    arrays = {}
    with entry(None, "safetensors cannot read it"):
        # The JAX flavour reads every dtype, bfloat16 included.
        opened = safetensors.safe_open(path, framework="flax")
    with opened as file:
        for name in file.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
            with entry(name, "safetensors cannot read it"):
                arrays[name] = np.asarray(file.get_tensor(name))
    return arrays
