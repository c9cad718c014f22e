"""Docstring sections written once and placed into several docstrings.

Python 3.13 strips the common indentation of docstrings when it compiles them;
earlier versions keep it. :func:`fill` finds a placeholder line at whatever
indentation it has and indents the inserted text to match, so the result reads
the same on every version.
"""

from __future__ import annotations

import re
import textwrap


def fill(doc: str | None, placeholder: str, text: str) -> str:
    r"""``doc`` with the line ``{placeholder}`` replaced by ``text``, indented like it.

    ``text`` may carry any common indentation (it is removed first); blank
    lines stay empty.

    Raises:
      KeyError: if ``doc`` has no line that is only ``{placeholder}``.

    >>> print(fill("Doc.\n\n    {args}\n", "args", "Args:\n  x: a number."))
    Doc.
    <BLANKLINE>
        Args:
          x: a number.
    <BLANKLINE>
    """
    doc = doc or ""
    pattern = re.compile(rf"^([ \t]*)\{{{re.escape(placeholder)}\}}[ \t]*$", re.MULTILINE)
    match = pattern.search(doc)
    if match is None:
        raise KeyError(f"no line {{{placeholder}}} in the docstring")
    body = textwrap.indent(textwrap.dedent(text).strip("\n"), match.group(1))
    return doc[: match.start()] + body + doc[match.end() :]
