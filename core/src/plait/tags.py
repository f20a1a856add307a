"""Tags on namespace entries and the boolean queries that select them.

A tag is a short word: letters, digits, ``_``, ``-``, ``.`` and ``/``, starting with a
letter or digit (``etl``, ``slow``, ``team/data``, ``v2``). A query combines tags with
``~`` (not), ``&`` (and), ``|`` (or) and parentheses; ``and``, ``or`` and ``not`` are
spelled-out synonyms. ``~`` binds tightest, then ``&``, then ``|``, so
``"etl & ~slow | critical"`` means ``(etl and not slow) or critical``.

Grammar (recursive descent, one token of look-ahead)::

    query  := term ("|" term)*
    term   := factor ("&" factor)*
    factor := "~" factor | "(" query ")" | TAG
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final

from plait.errors import TagError, TagQueryError

__all__ = ["TagQuery", "check_tags"]

_TAG: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]*\Z")
_TOKEN: Final = re.compile(r"([~&|()])|([A-Za-z0-9][A-Za-z0-9_./-]*)")
_WORDS: Final = {"and": "&", "or": "|", "not": "~"}

Predicate = Callable[[frozenset[str]], bool]


def check_tags(tags: Iterable[str] | None, *, where: str | None) -> frozenset[str]:
    """The tags as a frozenset; :class:`TagError` naming ``where`` (when given) for a bad one.

    A single string is refused (``tags="etl"`` would be three one-letter tags elsewhere).
    """
    if tags is None:
        return frozenset()
    if isinstance(tags, str):
        raise TagError(f"{_at(where)}tags must be a list of strings, not the string {tags!r}")
    out = set()
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.match(tag) or tag.lower() in _WORDS:
            raise TagError(
                f"{_at(where)}tag {tag!r} is not a tag (letters, digits, '_', '-', '.', '/', "
                "starting with a letter or digit; not 'and', 'or' or 'not')"
            )
        out.add(tag)
    return frozenset(out)


def _at(where: str | None) -> str:
    return f"{where}: " if where else ""


class TagQuery:
    """A compiled tag query. ``TagQuery("etl & ~slow")(frozenset({"etl"}))`` is ``True``.

    A malformed query raises :class:`plait.errors.TagQueryError` whose ``position`` is the
    0-based offset of the offending character in the text.
    """

    __slots__ = ("_match", "_pos", "_tokens", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TagQueryError(
                f"a tag query is a string, not {type(text).__name__}", text="", position=0
            )
        self.text = text
        self._tokens = self._lex(text)
        self._pos = 0
        if not self._tokens:
            raise TagQueryError("empty tag query", text=text, position=0)
        self._match: Predicate = self._query()
        if self._pos < len(self._tokens):
            kind, position = self._tokens[self._pos]
            raise TagQueryError(f"unexpected {kind!r}", text=text, position=position)

    def __call__(self, tags: frozenset[str]) -> bool:
        return self._match(tags)

    def __repr__(self) -> str:
        return f"TagQuery({self.text!r})"

    # -- lexing -----------------------------------------------------------------------
    @staticmethod
    def _lex(text: str) -> list[tuple[str, int]]:
        """(token, position) pairs; an operator is its symbol, a tag its own text."""
        tokens: list[tuple[str, int]] = []
        pos = 0
        end = len(text)
        while True:
            while pos < end and text[pos].isspace():
                pos += 1
            if pos == end:
                return tokens
            match = _TOKEN.match(text, pos)
            if match is None:
                raise TagQueryError(f"unexpected character {text[pos]!r}", text=text, position=pos)
            symbol, word = match.group(1), match.group(2)
            tokens.append((symbol if symbol else _WORDS.get(word.lower(), word), pos))
            pos = match.end()

    # -- parsing ----------------------------------------------------------------------
    def _peek(self) -> str | None:
        return self._tokens[self._pos][0] if self._pos < len(self._tokens) else None

    def _where(self) -> int:
        if self._pos < len(self._tokens):
            return self._tokens[self._pos][1]
        return len(self.text)

    def _query(self) -> Predicate:
        terms = [self._term()]
        while self._peek() == "|":
            self._pos += 1
            terms.append(self._term())
        if len(terms) == 1:
            return terms[0]
        return lambda tags: any(term(tags) for term in terms)

    def _term(self) -> Predicate:
        factors = [self._factor()]
        while self._peek() == "&":
            self._pos += 1
            factors.append(self._factor())
        if len(factors) == 1:
            return factors[0]
        return lambda tags: all(factor(tags) for factor in factors)

    def _factor(self) -> Predicate:
        token = self._peek()
        if token == "~":
            self._pos += 1
            inner = self._factor()
            return lambda tags: not inner(tags)
        if token == "(":
            opened = self._where()
            self._pos += 1
            inner = self._query()
            if self._peek() != ")":
                raise TagQueryError(
                    f"'(' at position {opened} is never closed",
                    text=self.text,
                    position=self._where(),
                )
            self._pos += 1
            return inner
        if token is None:
            raise TagQueryError(
                "expected a tag, got the end of the query", text=self.text, position=self._where()
            )
        if token in ("&", "|", ")"):
            raise TagQueryError(
                f"expected a tag, got {token!r}", text=self.text, position=self._where()
            )
        self._pos += 1
        return lambda tags: token in tags
