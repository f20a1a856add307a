"""Griffe extension for the API reference: readable docstrings and a Parameters table.

plait's docstrings are prose. Two rewrites happen when the reference is built (the sources
stay as they are):

- Sphinx roles (``:class:`~plait.errors.ExecutorError```) become code spans, keeping only
  the last dotted part when the target starts with ``~``, as Sphinx does.
- Every documented public function and method, and every class through its ``__init__``, gets an
  ``Args:`` section listing each parameter; the reference renders it as a Parameters table
  with the type and default from the signature, and as description the docstring's first
  sentence that names the parameter in backticks (a dash when none does).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):`(~?)([^`]+)`")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(])")
HAS_ARGS = re.compile(r"^\s*(Args|Arguments|Parameters|Params):\s*$", re.M)
SKIPPED = {"self", "cls"}
# an en dash: the parser needs a description; the table shows the type and default
NOT_DESCRIBED = "\u2013"


def plain(text: str) -> str:
    """The text with every Sphinx role turned into a code span."""

    def code(match: re.Match[str]) -> str:
        target = match.group(2)
        return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"

    return ROLE.sub(code, text)


def sentences(prose: str) -> list[str]:
    flat = " ".join(prose.split())
    return [s for s in SENTENCE_END.split(flat) if s]


def describe(name: str, prose: str) -> str:
    """The first sentence of `prose` that names `name` in backticks, or ''."""
    mention = re.compile("`{1,2}" + re.escape(name) + r"(?![\w.])")
    for sentence in sentences(prose):
        if mention.search(sentence):
            return sentence
    return ""


def args_section(function: griffe.Function, prose: str) -> str:
    lines = []
    for parameter in function.parameters:
        if parameter.name in SKIPPED:
            continue
        stars = {"var_positional": "*", "var_keyword": "**"}.get(parameter.kind.name, "")
        described = describe(parameter.name, prose) or NOT_DESCRIBED
        lines.append(f"    {stars}{parameter.name}: {described}")
    return "Args:\n" + "\n".join(lines) if lines else ""


class ReadableDocstrings(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # after on_object ran everywhere: the class docstrings are plain text by now
        self._add_parameters(pkg)

    def _add_parameters(self, parent: griffe.Object) -> None:
        for member in parent.members.values():
            if member.is_alias:
                continue
            if isinstance(member, griffe.Function):
                self._document(member, parent)
            elif isinstance(member, griffe.Class | griffe.Module):
                self._add_parameters(member)

    def _document(self, function: griffe.Function, parent: griffe.Object) -> None:
        # an undocumented method stays out of the reference; __init__ documents its class
        if function.name != "__init__" and (
            function.name.startswith("_") or function.docstring is None
        ):
            return
        own = function.docstring.value if function.docstring else ""
        if HAS_ARGS.search(own):
            return
        # a class's docstring describes its __init__ parameters
        prose = own
        if function.name == "__init__" and parent.docstring is not None:
            prose = parent.docstring.value + "\n\n" + own
        section = args_section(function, prose)
        if not section:
            return
        text = f"{own}\n\n{section}" if own else section
        if function.docstring is None:
            # parsed like its neighbours' (the loader set their style)
            model = parent.docstring
            function.docstring = griffe.Docstring(
                text,
                parent=function,
                parser=model.parser if model else "google",
                parser_options=model.parser_options if model else None,
            )
        # assigned after construction: the constructor would dedent the indented items
        function.docstring.value = text
