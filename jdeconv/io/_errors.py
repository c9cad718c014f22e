"""The one shape of :mod:`jdeconv.io`'s errors, and the checks of a path.

Readers and the matching raise :class:`SourceError`: what is wrong, and the
entry inside the source where there is one. The public function turns it into
the ``ValueError`` users see, with its own name and the path in front
(:func:`located`):

    load_keras_weights: '/tmp/m.weights.h5', entry 'layers/dense/vars/0': ...

Library calls run inside :func:`entry`, which turns whatever the library raises
into a :class:`SourceError` chained to it, so that no library exception escapes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import stat
from collections.abc import Iterator
from typing import Any


class SourceError(Exception):
    """What is wrong with a source, and the entry inside it where there is one."""

    def __init__(self, what: str, entry: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.entry = entry or None


class MissingPackageError(Exception):
    """An optional package a reader needs is not installed."""


def message(function: str, location: str | None, entry: str | None, what: str) -> str:
    """``function: location, entry 'name': what``, leaving out what is unknown."""
    where = ", ".join(
        part for part in (location, None if entry is None else f"entry {entry!r}") if part
    )
    return f"{function}: {where}: {what}" if where else f"{function}: {what}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def describe(error: BaseException) -> str:
    """A library exception in one line: its type and its first line of text."""
    text = _ANSI.sub("", str(error)).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


@contextlib.contextmanager
def entry(name: str | None, doing: str) -> Iterator[None]:
    """Turns any exception raised inside into a :class:`SourceError` for ``name``.

    Args:
      name: the entry being read, or ``None`` for the source as a whole.
      doing: what failed, as the start of the message (``"h5py cannot read it"``).
    """
    try:
        yield
    except (SourceError, MissingPackageError):
        raise
    except Exception as error:  # Libraries raise many kinds for a bad file.
        raise SourceError(f"{doing}: {describe(error)}", name) from error


@contextlib.contextmanager
def located(function: str, location: str | None) -> Iterator[None]:
    """Turns a :class:`SourceError` raised inside into the ``ValueError`` users see.

    The original library exception, if any, stays chained as the cause. A
    :class:`MissingPackageError` becomes an ``ImportError`` naming ``function``.
    """
    try:
        yield
    except SourceError as error:
        raise ValueError(message(function, location, error.entry, error.what)) from (
            error.__cause__
        )
    except MissingPackageError as error:
        raise ImportError(f"{function}: {error}") from None


def require(module: str, why: str) -> Any:
    """Imports an optional package, or raises :class:`MissingPackageError` saying ``why``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackageError(why) from None


def as_path(function: str, path: Any) -> str:
    """``path`` as a string.

    Raises:
      TypeError: if ``path`` is not a ``str`` or ``os.PathLike``.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"{function}: `path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    return os.fsdecode(os.fspath(path))


def check_path(function: str, path: Any, *, directory: bool = False) -> str:
    """``path`` as a string, checked to be a readable regular file.

    Args:
      function: the public function, for the messages.
      path: a ``str`` or ``os.PathLike``.
      directory: whether a directory is accepted too.

    Returns:
      The path as a string.

    Raises:
      TypeError: if ``path`` is not a path.
      FileNotFoundError: if nothing is there.
      IsADirectoryError: for a directory, unless ``directory``.
      PermissionError: if it cannot be read.
      ValueError: for something that is not a regular file (a device such as
        ``/dev/null``, a pipe, a socket), or an empty file.
    """
    path = as_path(function, path)
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{function}: no such file: {path!r}.") from error
    except PermissionError as error:
        raise PermissionError(f"{function}: no permission to reach {path!r}.") from error
    except OSError as error:  # ENOTDIR, ELOOP, ENAMETOOLONG, ...
        raise ValueError(
            message(function, repr(path), None, f"cannot reach it: {describe(error)}")
        ) from error
    if stat.S_ISDIR(status.st_mode):
        if not directory:
            raise IsADirectoryError(f"{function}: {path!r} is a directory, not a weights file.")
    elif not stat.S_ISREG(status.st_mode):
        raise ValueError(
            message(
                function,
                repr(path),
                None,
                "not a regular file (a device, a pipe or a socket), so not a weights file.",
            )
        )
    elif status.st_size == 0:
        raise ValueError(message(function, repr(path), None, "the file is empty."))
    if not os.access(path, os.R_OK | (os.X_OK if stat.S_ISDIR(status.st_mode) else 0)):
        raise PermissionError(f"{function}: no permission to read {path!r}.")
    return path
