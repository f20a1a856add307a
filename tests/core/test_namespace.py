from __future__ import annotations

import pytest

from plait import Namespace, NamespaceNode
from plait.errors import DuplicateNameError, NsrefError, PlaitError
from plait.namespace import parse_nsref


def double(x: int) -> int:
    return 2 * x


@pytest.mark.parametrize(
    ("nsref", "expected"),
    [
        ("name", ((), "name")),
        ("a:name", (("a",), "name")),
        ("a.b.c:name", (("a", "b", "c"), "name")),
        ("_", ((), "_")),
        ("n0_x", ((), "n0_x")),
        ("café", ((), "café")),
        ("节点", ((), "节点")),
        ("données.étape:节点", (("données", "étape"), "节点")),
    ],
)
def test_parse_nsref(nsref: str, expected: tuple[tuple[str, ...], str]) -> None:
    assert parse_nsref(nsref) == expected


@pytest.mark.parametrize(
    "bad",
    ["", ":x", "a::b", "a.:x", "a.b:", "a b:c", "1a:x", "a:b:c", "a.b", "1a", "a:-é", "é.1:x"],
)
def test_malformed_nsrefs_are_named(bad: str) -> None:
    with pytest.raises(NsrefError) as info:
        Namespace().register(double, nsref=bad)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, PlaitError | ValueError)


def test_non_ascii_identifiers_register_and_resolve() -> None:
    ns = Namespace()
    node = ns.register(double, nsref="données:节点")
    assert ns.get("données:节点") is node
    assert "données:节点" in ns
    assert ns.données.节点(2) == 4


def test_register_get_and_dot_access() -> None:
    ns = Namespace()
    node = ns.register(double, nsref="math.simple:double")
    assert isinstance(node, NamespaceNode)
    assert ns.get("math.simple:double") is node
    assert ns.math.simple.double is node
    assert ns.math.simple.double(4) == 8
    assert node.nsref == "math.simple:double"
    assert node.info.return_type is int
    assert [p.name for p in node.info.params] == ["x"]
    assert "math.simple:double" in ns
    assert ns.nsrefs() == ["math.simple:double"]


def test_default_nsref_is_the_function_name() -> None:
    ns = Namespace()
    assert ns.register(double).nsref == "double"


def test_contains_names_leaves_only() -> None:
    ns = Namespace()
    ns.register(double)
    ns.register(double, nsref="math:twice")
    assert "double" in ns and "math:twice" in ns
    assert "math" not in ns  # a branch, not a registered callable
    assert "twice" not in ns and "math:double" not in ns
    assert "café" not in ns and "a b" not in ns and "" not in ns and 3 not in ns


def test_duplicates_and_missing_are_clear() -> None:
    ns = Namespace()
    ns.register(double, nsref="a:double")
    with pytest.raises(DuplicateNameError, match="'a:double' is already registered"):
        ns.register(double, nsref="a:double")
    with pytest.raises(DuplicateNameError, match="branch 'double'"):
        ns.register(double, nsref="a.double:x")
    with pytest.raises(NsrefError, match="'a:nope'"):
        ns.get("a:nope")
    with pytest.raises(NsrefError, match="no branch 'zz'"):
        ns.get("zz:double")
    with pytest.raises(AttributeError, match="nope"):
        _ = ns.nope


def test_decorator_wraps_calls_but_not_the_signature() -> None:
    calls: list[int] = []

    def deco(fn):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(1)
            return fn(*args, **kwargs)

        return wrapper

    node = Namespace().register(double, nsref="d", decorator=deco)
    assert node(3) == 6
    assert calls == [1]
    assert [p.name for p in node.info.params] == ["x"]
