"""Namespace entries as data (to_dict / from_dict) and module fragments (@entry)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import _fragments
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait import CachePolicy, Namespace, entry, register_cached_callable
from plait.cache import close_backends
from plait.errors import (
    ConfigError,
    DuplicateNameError,
    FactoryError,
    GrefError,
    NsrefError,
    PlaitError,
    TagError,
    TtlError,
)


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    yield
    close_backends()


# ---------------------------------------------------------------------- module fragments
def test_register_module_takes_every_marked_function_in_order() -> None:
    ns = Namespace()
    nodes = ns.register_module("_fragments", branch="frag")
    assert [n.nsref for n in nodes] == [
        "frag:fetch",
        "frag:clean_text",
        "frag:untagged",
        "frag:pipeline",
    ]
    assert ns.get("frag:fetch").tags == {"etl", "io"}
    assert ns.frag.fetch("x") == "<x>"
    assert "frag:not_an_entry" not in ns  # unmarked
    assert "frag:imported_elsewhere" not in ns  # marked, but defined in another module


def test_module_entries_keep_their_cache_section(tmp_path: Path) -> None:
    ns = Namespace()
    ns.register_module(_fragments, cache="sqlite")
    node = ns.get("clean_text")
    assert node.cache_policy == CachePolicy(min_ttl=1, max_ttl=2)
    assert node.fn is _fragments.clean
    assert node("<a>") == "a"
    assert node.call.cache_info().misses == 1  # served through the cache


def test_a_factory_entry_registers_the_dag_it_builds() -> None:
    ns = Namespace()
    ns.register_module("_fragments")
    node = ns.get("pipeline")
    assert node.dag is not None and set(node.dag.nodes) == {"fetch", "clean", "shout"}
    assert node.factory_call is not None and node.factory_call.args == {}  # defaults


def test_entry_marks_without_changing_the_function() -> None:
    def f(x: int) -> int:
        return x

    assert entry(f) is f
    assert entry(tags=["a"])(f) is f


@pytest.mark.parametrize(
    ("module", "error", "words"),
    [
        ("_no_such_module", GrefError, "cannot import module '_no_such_module'"),
        ("_fragments", NsrefError, "'bad branch' is not an identifier"),
    ],
)
def test_register_module_errors_name_the_module(module: str, error: type, words: str) -> None:
    branch = "bad branch" if module == "_fragments" else None
    with pytest.raises(error, match=re.escape(words)):
        Namespace().register_module(module, branch=branch)


def test_register_module_twice_is_a_duplicate() -> None:
    ns = Namespace()
    ns.register_module("_fragments")
    with pytest.raises(DuplicateNameError, match="'fetch'"):
        ns.register_module("_fragments")


def test_entry_refuses_bad_tags_and_ttls() -> None:
    with pytest.raises(TagError, match="not the string"):
        entry(tags="etl")
    with pytest.raises(TtlError, match="must not exceed"):
        entry(cache={"min_ttl": 3, "max_ttl": 1})


# ---------------------------------------------------------------------- dict form
def test_to_dict_describes_each_entry() -> None:
    ns = Namespace()
    ns.register(_fragments.one, "a.b:one", tags=["x", "a"])
    register_cached_callable(ns, _fragments.two, 1, timedelta(days=3), nsref="two", version=2)
    ns.register(_fragments.repeat, "rep", args={"times": 3})
    assert ns.to_dict() == {
        "entries": [
            {
                "gref": "_fragments:two",
                "nsref": "two",
                "cache": {"min_ttl": 1, "max_ttl": 3.0, "version": 2},
            },
            {"gref": "_fragments:repeat", "nsref": "rep", "args": {"times": 3}},
            {"gref": "_fragments:one", "nsref": "a.b:one", "tags": ["a", "x"]},
        ]
    }


def test_from_dict_round_trip_of_factories_and_built_callables() -> None:
    data = {
        "entries": [
            {
                "gref": "_fragments:make_multiplier",
                "nsref": "m",
                "factory": True,
                "args": {"factor": 5},
            },
            {"gref": "_fragments:pipeline", "nsref": "p", "args": {"suffix": "?"}},
        ]
    }
    ns = Namespace.from_dict(data)
    assert ns.m(2) == 10
    assert ns.to_dict() == {
        "entries": [
            {
                "gref": "_fragments:make_multiplier",
                "nsref": "m",
                "factory": True,
                "args": {"factor": 5},
            },
            {"gref": "_fragments:pipeline", "nsref": "p", "args": {"suffix": "?"}},
        ]
    }
    assert Namespace.from_dict(ns.to_dict()) == ns


def test_namespaces_differ_when_anything_differs() -> None:
    def build(**changes: Any) -> Namespace:
        ns = Namespace()
        ns.register(changes.get("fn", _fragments.one), "a:x", tags=changes.get("tags", ["t"]))
        return ns

    assert build() == build()
    assert build() != build(fn=_fragments.two)
    assert build() != build(tags=["u"])
    assert build() != Namespace()
    assert build() != "a namespace"


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (lambda x: x, "is not importable by a gref"),
        (_fragments.make_multiplier(2), "is not importable by a gref"),
    ],
)
def test_to_dict_refuses_what_cannot_be_imported_back(fn: Any, words: str) -> None:
    ns = Namespace()
    ns.register(fn, "a:f")
    with pytest.raises(GrefError, match=words) as caught:
        ns.to_dict()
    assert "'a:f'" in str(caught.value)


def test_to_dict_refuses_a_dag_no_factory_built() -> None:
    from plait import Dag

    ns = Namespace()
    ns.register(Dag("hand_made"), "d")
    with pytest.raises(GrefError, match="only when a @dag_factory built it"):
        ns.to_dict()


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"entries": [{"gref": "_fragments:nope"}]}, "entries[0]", "'nope' not found"),
        ({"entries": [{"gref": "_no_module:f"}]}, "entries[0]", "cannot import module"),
        ({"entries": [{"gref": "no colon"}]}, "entries[0]", "must look like"),
        ({"entries": [{"gref": "_fragments:NUMBER"}]}, "entries[0]", "not a callable"),
        ({"entries": [{"gerf": "_fragments:one"}]}, "entries[0].gerf", "did you mean 'gref'"),
        ({"entries": [{}]}, "entries[0].gref", "is required"),
        (
            {"entries": [{"gref": "_fragments:one", "nsref": "a:b:c"}]},
            "entries[0].nsref",
            "more than one ':'",
        ),
        (
            {"entries": [{"gref": "_fragments:one", "tags": "etl"}]},
            "entries[0].tags",
            "list of strings",
        ),
        (
            {"entries": [{"gref": "_fragments:one", "tags": ["a b"]}]},
            "entries[0].tags",
            "'a b' is not a tag",
        ),
        (
            {"entries": [{"gref": "_fragments:one", "cache": {"min_tl": 1, "max_ttl": 2}}]},
            "entries[0].cache.min_tl",
            "did you mean 'min_ttl'",
        ),
        (
            {"entries": [{"gref": "_fragments:one", "cache": {"min_ttl": 3, "max_ttl": 2}}]},
            "entries[0].cache",
            "must not exceed",
        ),
        (
            {"entries": [{"gref": "_fragments:one", "cache": {"min_ttl": "1", "max_ttl": 2}}]},
            "entries[0].cache.min_ttl",
            "number of days",
        ),
        (
            {"entries": [{"gref": "_fragments:one", "factory": "yes"}]},
            "entries[0].factory",
            "true or false",
        ),
        (
            {"entries": [{"gref": "_fragments:one", "args": {"x": 1}}]},
            "entries[0]",
            "not a factory",
        ),
        (
            {"entries": [{"gref": "_fragments:repeat"}]},
            "entries[0]",
            "missing a required argument: 'times'",
        ),
        (
            {"entries": [{"gref": "_fragments:repeat", "args": {"tims": 2}}]},
            "entries[0]",
            "(parameters: times)",
        ),
        ({"entries": [{"gref": "_fragments:not_a_dag"}]}, "entries[0]", "returned str, not a Dag"),
        (
            {"entries": [{"gref": "_fragments:pipeline", "cache": {"min_ttl": 1, "max_ttl": 2}}]},
            "entries[0]",
            "a DAG cannot be cached",
        ),
        (
            {
                "entries": [
                    {"gref": "_fragments:make_multiplier", "factory": True, "args": {"n": 1}}
                ]
            },
            "entries[0]",
            "calling the factory failed",
        ),
        (
            {"entries": [{"gref": "_fragments:one"}, {"gref": "_fragments:one"}]},
            "entries[1]",
            "already registered",
        ),
        ({"entries": {"gref": "_fragments:one"}}, "entries", "list of tables"),
        ({"entries": ["_fragments:one"]}, "entries[0]", "must be a table"),
        (
            {"modules": [{"module": "_fragments", "brunch": "x"}]},
            "modules[0].brunch",
            "did you mean 'branch'",
        ),
        ({"modules": [{"module": "_nothing_here"}]}, "modules[0]", "cannot import module"),
        (
            {"modules": [{"module": "_fragments", "branch": "a:b"}]},
            "modules[0].branch",
            "not a branch",
        ),
        ({"entrys": []}, "namespace.entrys", "did you mean 'entries'"),
    ],
)
def test_from_dict_names_the_key_of_every_bad_input(data: Any, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Namespace.from_dict(data)
    problems = caught.value.problems
    assert problems[0].key == key, problems
    assert words in problems[0].message
    assert f"{key}: " in str(caught.value)
    assert isinstance(caught.value, PlaitError) and isinstance(caught.value, ValueError)


def test_from_dict_reports_every_problem_at_once() -> None:
    data = {
        "entries": [
            {"gref": "_fragments:one", "tags": ["a b"]},
            {"gref": "_fragments:two", "nsref": "a::b"},
            {"gref": "_fragments:three", "cahce": {}},
        ]
    }
    with pytest.raises(ConfigError, match=r"\(3 problems\)") as caught:
        Namespace.from_dict(data)
    assert [p.key for p in caught.value.problems] == [
        "entries[0].tags",
        "entries[1].nsref",
        "entries[2].cahce",
    ]


def test_factory_args_only_for_factories() -> None:
    with pytest.raises(FactoryError, match="not one"):
        Namespace().register(_fragments.one, "x", args={"a": 1})


# ---------------------------------------------------------------------- round trip
LEAVES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
BRANCHES = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,4}", fullmatch=True), max_size=2)
TAG_SETS = st.frozensets(
    st.from_regex(r"[a-z][a-z0-9/._-]{0,5}", fullmatch=True).filter(
        lambda t: t not in ("and", "or", "not")
    ),
    max_size=3,
)
POLICIES = st.one_of(
    st.none(),
    st.builds(
        lambda low, extra, version: CachePolicy(min_ttl=low, max_ttl=low + extra, version=version),
        st.floats(0, 30, allow_nan=False),
        st.floats(0, 30, allow_nan=False),
        st.one_of(st.none(), st.integers(0, 9), st.text("abc", min_size=1, max_size=3)),
    ),
)


@st.composite
def namespaces(draw: st.DrawFn) -> Namespace:
    ns = Namespace()
    for _ in range(draw(st.integers(0, 6))):
        branches = draw(BRANCHES)
        nsref = f"{'.'.join(branches)}:{draw(LEAVES)}" if branches else draw(LEAVES)
        if nsref in ns or any(n.nsref.startswith(nsref.replace(":", ".") + ":") for n in ns):
            continue
        try:
            kind = draw(st.sampled_from(["fn", "factory"]))
            tags = draw(TAG_SETS)
            if kind == "factory":
                suffix = draw(st.text("!?.", max_size=2))
                ns.register(_fragments.pipeline, nsref, tags=tags, args={"suffix": suffix})
                continue
            fn = draw(st.sampled_from(_fragments.POOL))
            policy = draw(POLICIES)
            if policy is None:
                ns.register(fn, nsref, tags=tags)
            else:
                register_cached_callable(
                    ns,
                    fn,
                    policy.min_ttl,
                    policy.max_ttl,
                    nsref=nsref,
                    version=policy.version,
                    tags=tags,
                )
        except DuplicateNameError:
            continue  # a branch where a leaf is, or the other way round
    return ns


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(namespaces())
def test_from_dict_of_to_dict_is_an_equal_namespace(ns: Namespace) -> None:
    data = ns.to_dict()
    again = Namespace.from_dict(data)
    assert again == ns
    assert again.to_dict() == data
