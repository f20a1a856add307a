"""Tags on namespace entries and the queries that select them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plait import Namespace
from plait.errors import PlaitError, TagError, TagQueryError
from plait.tags import TagQuery, check_tags


def one(x: int) -> int:
    return x


def two(x: int) -> int:
    return x


def three(x: int) -> int:
    return x


def four(x: int) -> int:
    return x


@pytest.fixture
def ns() -> Namespace:
    ns = Namespace()
    ns.register(one, "etl:extract", tags=["etl", "io"])
    ns.register(two, "etl:slow_join", tags=["etl", "slow"])
    ns.register(three, "ops:page", tags=["critical", "slow"])
    ns.register(four, "misc:four")
    return ns


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("etl", ["etl:extract", "etl:slow_join"]),
        ("etl & ~slow | critical", ["etl:extract", "ops:page"]),
        ("etl & (~slow | critical)", ["etl:extract"]),
        ("~etl", ["ops:page", "misc:four"]),
        ("~~etl", ["etl:extract", "etl:slow_join"]),
        ("slow & critical", ["ops:page"]),
        ("etl and not slow or critical", ["etl:extract", "ops:page"]),
        ("(((io)))", ["etl:extract"]),
        ("nothing_tagged_so", []),
        ("  io|critical  ", ["etl:extract", "ops:page"]),
    ],
)
def test_queries_select_entries(ns: Namespace, query: str, expected: list[str]) -> None:
    assert [node.nsref for node in ns.query(query)] == expected


def test_tags_are_kept_on_the_node(ns: Namespace) -> None:
    assert ns.get("etl:extract").tags == frozenset({"etl", "io"})
    assert ns.get("misc:four").tags == frozenset()


@pytest.mark.parametrize(
    ("query", "position", "words"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("etl &", 5, "end of the query"),
        ("etl & & slow", 6, "got '&'"),
        ("etl slow", 4, "unexpected 'slow'"),
        ("(etl | slow", 11, "'(' at position 0 is never closed"),
        ("etl)", 3, "unexpected ')'"),
        ("etl & $slow", 6, "unexpected character '$'"),
        ("| etl", 0, "got '|'"),
        ("~", 1, "end of the query"),
    ],
)
def test_a_malformed_query_points_at_the_position(
    ns: Namespace, query: str, position: int, words: str
) -> None:
    with pytest.raises(TagQueryError, match=re.escape(words)) as caught:
        ns.query(query)
    assert caught.value.position == position
    assert caught.value.text == query
    assert f"at position {position}" in str(caught.value)
    assert str(caught.value).endswith("\n  " + " " * position + "^")  # the caret
    assert isinstance(caught.value, PlaitError) and isinstance(caught.value, ValueError)


def test_a_query_that_is_not_a_string_is_refused(ns: Namespace) -> None:
    with pytest.raises(TagQueryError, match="a tag query is a string"):
        ns.query(["etl"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ("etl", "not the string 'etl'"),
        (["has space"], "'has space' is not a tag"),
        (["a&b"], "'a&b' is not a tag"),
        (["-leading"], "'-leading' is not a tag"),
        (["and"], "'and' is not a tag"),
        ([3], "3 is not a tag"),
    ],
)
def test_bad_tags_are_refused_naming_the_entry(tags: object, words: str) -> None:
    with pytest.raises(TagError, match=words) as caught:
        Namespace().register(one, "etl:one", tags=tags)  # type: ignore[arg-type]
    assert "'etl:one'" in str(caught.value)


def test_valid_tag_spellings() -> None:
    assert check_tags(["v2", "team/data", "a.b", "x_y-z", "Etl"], where="w") == {
        "v2",
        "team/data",
        "a.b",
        "x_y-z",
        "Etl",
    }


TAGS = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, object]:
    """(query text, a tree to evaluate it by hand)."""
    if depth == 0 or draw(st.booleans()):
        tag = draw(TAGS)
        return tag, ("tag", tag)
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        text, tree = draw(expressions(depth - 1))
        return f"~({text})", ("not", tree)
    left_text, left = draw(expressions(depth - 1))
    right_text, right = draw(expressions(depth - 1))
    op = "&" if kind == "and" else "|"
    return f"({left_text}) {op} ({right_text})", (kind, left, right)


def evaluate(tree: object, tags: frozenset[str]) -> bool:
    kind, *rest = tree  # type: ignore[misc]
    if kind == "tag":
        return rest[0] in tags
    if kind == "not":
        return not evaluate(rest[0], tags)
    values = [evaluate(child, tags) for child in rest]
    return all(values) if kind == "and" else any(values)


@given(expressions(), st.frozensets(TAGS))
def test_queries_agree_with_a_hand_evaluation(
    expr: tuple[str, object], tags: frozenset[str]
) -> None:
    text, tree = expr
    assert TagQuery(text)(tags) is evaluate(tree, tags)
