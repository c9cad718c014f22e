"""``method="autotune"``: each map's fastest lowering, measured on this machine.

``method="auto"`` picks a lowering for each of the op's three maps (the
transposed convolution ``T``, its input gradient ``F`` and its kernel gradient
``K``) by rules measured on one machine with one jaxlib release.
``method="autotune"`` measures instead, in the spirit of PyTorch's
``torch.backends.cudnn.benchmark = True``: the first time a map of a given
geometry is compiled for a device, each distinct lowering of that map is
compiled and timed there on random operands of the call's shapes and dtype,
and the fastest is kept

* in memory, for the rest of the process, and
* in a JSON cache file, where one is named (:func:`set_cache_file`, or the
  environment variable ``JDECONV_AUTOTUNE_CACHE``), keyed by platform, device
  kind, jaxlib and jdeconv versions, map, operand shapes, dtype, precision and
  geometry. The same cache gives the same compiled program.

Every lowering computes the same function (they all pass the same test suite),
so the choice changes speed and memory only, and non-finite values follow the
chosen lowering (see the semantics page).

Tuning is bounded: ``auto``'s own pick is timed first; every other candidate
that takes more than 4x the best time in its first timed call drops out
there; the survivors get up to 5 interleaved timings or one second of them,
whichever comes first. ``auto``'s pick is kept unless another is at least 5%
faster. Each tuning is logged on the ``"jdeconv.autotune"`` logger (level
``INFO``), with every candidate's time and the tuning's wall time, compile
time included, and :func:`choices` lists every choice made or read.

Where timing is impossible or would not describe the machine the program
runs on, ``"autotune"`` computes what ``"auto"`` computes (and says why on the
logger, level ``DEBUG``):

* ``jax.export`` (for one platform or several) and ``jax2tf``: an exported
  program must not depend on the machine that exported it;
* operands on a mesh of several devices, programs that span several devices
  (``jit`` with shardings) and ``shard_map``;
* symbolic shapes, and platforms without a local device.

Abstract evaluation (``jax.eval_shape``, ``jax.make_jaxpr``) compiles nothing,
and so measures nothing.

Example:
  >>> import jax.numpy as jnp, jdeconv
  >>> x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((4, 4, 3, 4))
  >>> y = jdeconv.conv2d_transpose(x, w, (2, 16, 16, 3), 2, method="autotune")
  >>> choice = jdeconv.autotune.choices()[-1]
  >>> choice.map_name, choice.method in jdeconv.METHODS
  ('transpose_conv', True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import platform as platform_module
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jaxlib.version
import numpy as np

from jdeconv._lowerings import BilinearMap, ConvConfig
from jdeconv._shapes import ConvTransposeGeometry

__all__ = [
    "CACHE_ENVIRONMENT_VARIABLE",
    "Choice",
    "cache_file",
    "choices",
    "clear",
    "set_cache_file",
]

logger = logging.getLogger("jdeconv.autotune")

#: The environment variable that names a cache file (read at the first tuning).
CACHE_ENVIRONMENT_VARIABLE = "JDECONV_AUTOTUNE_CACHE"

#: A candidate whose first timed call takes more than this many times the
#: best time so far drops out.
SLOW_FACTOR = 4.0
#: Timings per surviving candidate, at most.
ROUNDS = 5
#: Seconds of timed calls after the first round, at most.
BUDGET_SECONDS = 1.0
#: ``auto``'s pick is kept unless another candidate is faster by this fraction.
MARGIN = 0.05

_FORMAT = "jdeconv-autotune"
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Choice:
    """One map's tuned lowering: where it was measured, for what, and what won.

    Attributes:
      map_name: ``"transpose_conv"`` (``T``), ``"forward_conv"`` (``F``, the
        input gradient) or ``"kernel_grad"`` (``K``).
      platform: the platform compiled for: ``"cpu"``, ``"cuda"``, ``"tpu"``...
      device_kind: the device's kind; for a CPU, its model and logical CPUs.
      jaxlib_version: the jaxlib release that compiled the candidates.
      jdeconv_version: the jdeconv release whose lowerings were measured.
      operand_shapes: the shapes of the map's two operands.
      dtype: the operands' dtype.
      preferred_element_type: the result dtype asked for, or ``None``.
      precision: the precision passed to XLA, as text.
      geometry: the call's geometry.
      method: the lowering chosen, a name in :data:`jdeconv.METHODS`.
      times_ms: each candidate's best time in milliseconds (a dropped
        candidate's one timing).
      dropped: the candidates that took more than :data:`SLOW_FACTOR` times
        the best.
      tuning_seconds: the tuning's wall time, compiling included.
      source: ``"this process"``, or the cache file it was read from.
    """

    map_name: str
    platform: str
    device_kind: str
    jaxlib_version: str
    jdeconv_version: str
    operand_shapes: tuple[tuple[int, ...], tuple[int, ...]]
    dtype: str
    preferred_element_type: str | None
    precision: str
    geometry: ConvTransposeGeometry
    method: str
    times_ms: Mapping[str, float]
    dropped: tuple[str, ...]
    tuning_seconds: float
    source: str = "this process"

    def key(self) -> str:
        """What the choice is valid for, as canonical JSON (the cache's key)."""
        fields = _to_json(self)
        for name in _RESULT_FIELDS:
            del fields[name]
        return json.dumps(fields, sort_keys=True)


# The fields that are results of the measurement rather than part of its key.
_RESULT_FIELDS = ("method", "times_ms", "dropped", "tuning_seconds", "source")


def _to_json(choice: Choice) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(choice)))


def _from_json(entry: Mapping[str, Any], source: str) -> Choice:
    """A :class:`Choice` from its JSON form; a ``KeyError``, ``TypeError`` or ``ValueError``."""

    def tuples(value: Any) -> Any:
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    geometry = ConvTransposeGeometry(**{k: tuples(v) for k, v in entry["geometry"].items()})
    values = {
        field.name: tuples(entry[field.name])
        for field in dataclasses.fields(Choice)
        if field.name != "source"
    }
    values.update(
        geometry=geometry,
        times_ms={str(k): float(v) for k, v in entry["times_ms"].items()},
        tuning_seconds=float(entry["tuning_seconds"]),
        source=source,
    )
    return Choice(**values)


class _State:
    """The process's choices and cache file, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.choices: dict[str, Choice] = {}
        self.cache_file: Path | None = None
        self.cache_file_set = False  # False: read the environment variable first


_STATE = _State()


def choices() -> tuple[Choice, ...]:
    """Every choice this process has made or read from the cache file, oldest first.

    Example:
      >>> import jdeconv
      >>> all(c.method in jdeconv.METHODS for c in jdeconv.autotune.choices())
      True
    """
    with _STATE.lock:
        return tuple(_STATE.choices.values())


def clear() -> None:
    """Forgets the choices held in memory; the cache file, if any, is left as it is.

    The next compilation of each geometry reads the cache file again, or
    measures where it holds no choice.
    """
    with _STATE.lock:
        _STATE.choices.clear()


def cache_file() -> Path | None:
    """The cache file in use, or ``None`` (see :func:`set_cache_file`)."""
    with _STATE.lock:
        _read_environment()
        return _STATE.cache_file


def set_cache_file(path: str | os.PathLike[str] | None) -> None:
    """Names the JSON file that keeps tuned choices across processes, or ``None``.

    An existing file is read now; a new one is written at the first tuning.
    Each tuning adds its choice to the file (merged with what other processes
    wrote meanwhile). Choices for other machines, jaxlib releases or shapes
    stay in the file, unused here. Overrides ``JDECONV_AUTOTUNE_CACHE``.

    Args:
      path: the file, or ``None`` to keep choices in memory only.

    Raises:
      ValueError: if the file exists but is not a jdeconv autotune cache, or
        its folder does not exist.
      TypeError: if ``path`` is not a path or ``None``.

    Example:
      >>> import os, tempfile, jdeconv
      >>> path = os.path.join(tempfile.mkdtemp(), "autotune.json")
      >>> jdeconv.autotune.set_cache_file(path)
      >>> jdeconv.autotune.cache_file().name
      'autotune.json'
      >>> jdeconv.autotune.set_cache_file(None)
    """
    _set_cache_file("set_cache_file", "path", path)


def _set_cache_file(function: str, argument: str, path: Any) -> None:
    if path is not None and not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"{function}: `{argument}` must be a path or None, got {type(path).__name__} {path!r}."
        )
    resolved = None if path is None else Path(path).expanduser().resolve()
    if resolved is not None:
        if not resolved.parent.is_dir():
            raise ValueError(
                f"{function}: the folder of the autotune cache file {str(path)!r} does not exist."
            )
        _read_cache(function, resolved)  # fails now, not at the first compilation
    with _STATE.lock:
        _STATE.cache_file, _STATE.cache_file_set = resolved, True


def _read_environment() -> None:
    """Takes the cache file from ``JDECONV_AUTOTUNE_CACHE`` unless one was set."""
    if not _STATE.cache_file_set:
        value = os.environ.get(CACHE_ENVIRONMENT_VARIABLE) or None
        _set_cache_file("jdeconv.autotune", f"${CACHE_ENVIRONMENT_VARIABLE}", value)


def _read_cache(function: str, path: Path) -> dict[str, Choice]:
    """The choices in the cache file ``path`` by key (none if it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ValueError(
            f"{function}: cannot read the autotune cache file {str(path)!r}: {error}."
        ) from None
    try:
        data = json.loads(text)
        if data.get("format") != _FORMAT or data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"it is not format {_FORMAT!r} version {_FORMAT_VERSION}")
        found = [_from_json(entry, str(path)) for entry in data["entries"]]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{function}: {str(path)!r} is not a jdeconv autotune cache file ({error}); "
            f"delete it or name another file."
        ) from None
    return {choice.key(): choice for choice in found}


def _write_cache(path: Path, choice: Choice) -> None:
    """Adds ``choice`` to the cache file, keeping what others wrote; atomic."""
    try:
        entries = _read_cache("jdeconv.autotune", path)
    except ValueError as error:
        logger.warning("not writing the autotune choice: %s", error)
        return
    entries[choice.key()] = choice
    document = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "entries": [
            {k: v for k, v in _to_json(c).items() if k != "source"} for c in entries.values()
        ],
    }
    try:
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as file:
            json.dump(document, file, indent=1)
        os.replace(file.name, path)
    except OSError as error:
        logger.warning("could not write the autotune cache file %s: %s", path, error)


# --------------------------------------------------------------------------
# Choosing


@functools.cache
def _device_kind(platform: str, kind: str) -> str:
    """A device's kind; for a CPU (whose kind is ``"cpu"``), its model and logical CPUs."""
    if platform != "cpu":
        return kind
    model = platform_module.processor() or platform_module.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{kind}: {model}, {os.cpu_count()} logical CPUs"


def choose(
    map_name: str,
    *,
    candidates: Mapping[str, BilinearMap],
    preferred: str,
    config: ConvConfig,
    operands: Sequence[Any],
    device: Any,
    platform: str,
) -> str:
    """The method to lower ``map_name`` with: the cached or measured fastest.

    Args:
      map_name: ``"transpose_conv"``, ``"forward_conv"`` or ``"kernel_grad"``.
      candidates: the distinct lowerings of the map, by method name.
      preferred: ``auto``'s pick, timed first and kept within :data:`MARGIN`.
      config: the map's static configuration.
      operands: the two operands' abstract values (shape and dtype).
      device: the device to measure on.
      platform: the platform compiled for.

    Returns:
      A name in ``candidates``.
    """
    shapes = tuple(tuple(int(d) for d in operand.shape) for operand in operands)
    dtype = np.dtype(operands[0].dtype)
    with _STATE.lock:
        _read_environment()
        pending = Choice(
            map_name=map_name,
            platform=platform,
            device_kind=_device_kind(device.platform, str(device.device_kind)),
            jaxlib_version=jaxlib.version.__version__,
            jdeconv_version=_jdeconv_version(),
            operand_shapes=(shapes[0], shapes[1]),
            dtype=dtype.name,
            preferred_element_type=None
            if config.preferred_element_type is None
            else np.dtype(config.preferred_element_type).name,
            precision=str(config.precision),
            geometry=config.geometry,
            method=preferred,
            times_ms={},
            dropped=(),
            tuning_seconds=0.0,
        )
        key = pending.key()
        known = _STATE.choices.get(key)
        if known is None and _STATE.cache_file is not None:
            known = _read_cache("jdeconv.autotune", _STATE.cache_file).get(key)
        if known is not None and known.method in candidates:
            _STATE.choices[key] = known
            logger.debug("%s: %s (chosen in %s)", _describe(known), known.method, known.source)
            return known.method
        choice = _measure(pending, candidates, preferred, config, device)
        _STATE.choices[key] = choice
        if _STATE.cache_file is not None:
            _write_cache(_STATE.cache_file, choice)
    logger.info(
        "%s: chose %s; %s; tuned in %.2f s",
        _describe(choice),
        choice.method,
        "; ".join(
            f"{name} {ms:.3g} ms" + (" (dropped)" if name in choice.dropped else "")
            for name, ms in choice.times_ms.items()
        ),
        choice.tuning_seconds,
    )
    return choice.method


def _describe(choice: Choice) -> str:
    geometry = choice.geometry
    return (
        f"autotune {choice.map_name} on {choice.device_kind}, {choice.dtype} "
        f"{choice.operand_shapes[0]} x {choice.operand_shapes[1]}, kernel "
        f"{geometry.kernel_size}, strides {geometry.strides}, dilations {geometry.dilations}"
    )


def _jdeconv_version() -> str:
    import jdeconv

    return jdeconv.__version__


def _measure(
    pending: Choice,
    candidates: Mapping[str, BilinearMap],
    preferred: str,
    config: ConvConfig,
    device: Any,
) -> Choice:
    """Times every candidate on ``device`` (see the module doc for the bounds)."""
    start = time.perf_counter()
    order = [preferred, *(name for name in candidates if name != preferred)]
    times: dict[str, list[float]] = {}
    runs: dict[str, Callable[[], float]] = {}
    best = float("inf")
    with jax.ensure_compile_time_eval():
        a, b = _random_operands(pending, device)
        for name in order:
            run = _timed_call(candidates[name], config, a, b)
            times[name] = [run()]  # the first call: page faults, caches
            if times[name][0] > SLOW_FACTOR * best:
                continue
            times[name] = [run()]
            runs[name] = run
            best = min(best, times[name][0])
        survivors = [name for name in runs if times[name][0] <= SLOW_FACTOR * best]
        deadline = time.perf_counter() + BUDGET_SECONDS
        for _ in range(ROUNDS - 1):
            if len(survivors) < 2 or time.perf_counter() > deadline:
                break
            for name in survivors:
                times[name].append(runs[name]())
    fastest = min(survivors, key=lambda name: min(times[name]))
    if preferred in survivors and min(times[preferred]) <= (1 + MARGIN) * min(times[fastest]):
        fastest = preferred
    return dataclasses.replace(
        pending,
        method=fastest,
        times_ms={name: round(min(t) * 1e3, 4) for name, t in times.items()},
        dropped=tuple(name for name in order if name not in survivors),
        tuning_seconds=round(time.perf_counter() - start, 3),
    )


def _random_operands(pending: Choice, device: Any) -> Iterator[jax.Array]:
    """Standard normal operands of the map's shapes and dtype, on ``device``."""
    rng = np.random.default_rng(0)
    for shape in pending.operand_shapes:
        values = rng.standard_normal(shape).astype(pending.dtype)
        yield jax.device_put(values, device)


def _timed_call(
    function: BilinearMap, config: ConvConfig, a: jax.Array, b: jax.Array
) -> Callable[[], float]:
    """Compiles ``function(a, b, config)``; the result times one call, in seconds."""
    compiled = jax.jit(functools.partial(_apply, function, config)).lower(a, b).compile()

    def run() -> float:
        start = time.perf_counter()
        jax.block_until_ready(compiled(a, b))
        return time.perf_counter() - start

    return run


def _apply(function: BilinearMap, config: ConvConfig, a: jax.Array, b: jax.Array) -> jax.Array:
    return function(a, b, config)
