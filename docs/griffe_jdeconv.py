"""A Griffe extension for the API reference: jdeconv's docstrings as Markdown.

jdeconv's docstrings follow the Google style as JAX and Flax write it: Sphinx
roles name other objects, and doctest examples sit in ``Example:`` sections or
in the text. mkdocstrings renders docstrings as Markdown, where both would
show verbatim. This extension rewrites each docstring when Griffe loads it:

- ``:func:`conv_transpose``` and the other roles become inline code
  (``~a.b.c`` shows ``c``);
- each doctest block (``>>>`` lines and their output) becomes a fenced
  ``pycon`` code block;
- a docstring completed at import time (a ``{placeholder}`` line that the
  module fills in, as the layers' shared argument list) is read from the
  imported object.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|data|mod|meth|attr|obj|exc|const):`(~?)([^`]+)`")


_PLACEHOLDER = re.compile(r"^\s*\{\w+\}\s*$", re.MULTILINE)


def _code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def fence_doctests(text: str) -> str:
    """Wraps each doctest block of ``text`` in a fenced ``pycon`` code block.

    A block starts at a ``>>>`` line and runs to the next blank line or the
    next line indented less than its first.
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = _indent(line)
        start = i
        while i < len(lines) and lines[i].strip() and _indent(lines[i]) >= indent:
            i += 1
        pad = " " * indent
        out += [f"{pad}```pycon", *lines[start:i], f"{pad}```"]
    return "\n".join(out)


class JdeconvDocstrings(griffe.Extension):
    """Rewrites Sphinx roles as inline code and doctests as fenced code."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrites ``obj``'s docstring."""
        del kwargs
        if obj.docstring is None:
            return
        value = obj.docstring.value
        if _PLACEHOLDER.search(value):
            runtime = inspect.getdoc(griffe.dynamic_import(obj.path))
            if runtime:
                value = runtime
        obj.docstring.value = fence_doctests(_ROLE.sub(_code, value))
