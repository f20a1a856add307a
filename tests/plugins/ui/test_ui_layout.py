"""The server-side DAG drawing: layers, order, wrapping, and pictures of any record set."""

from __future__ import annotations

import itertools

from plait_ui.layout import BOX_HEIGHT, BOX_WIDTH, MAX_PER_COLUMN, Picture, lay_out


def positions(pic: Picture) -> dict[str, tuple[int, int]]:
    return {b.label: (b.x, b.y) for b in pic.boxes}


def assert_no_overlap(pic: Picture) -> None:
    spots = sorted(positions(pic).values())
    for (x1, y1), (x2, y2) in itertools.pairwise(spots):
        assert x1 + BOX_WIDTH <= x2 or y1 + BOX_HEIGHT <= y2 or x1 != x2
    assert len(set(spots)) == len(spots)
    assert all(0 <= x <= pic.width - BOX_WIDTH and 0 <= y <= pic.height for x, y in spots)


def test_layers_follow_the_longest_path() -> None:
    pic = lay_out(["c", "a", "b", "d"], [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])
    xs = {label: x for label, (x, _) in positions(pic).items()}
    assert xs["a"] < xs["b"] < xs["c"] < xs["d"]
    assert {(w.upstream, w.downstream) for w in pic.wires} == {
        ("a", "b"),
        ("b", "c"),
        ("a", "c"),
        ("c", "d"),
    }
    assert all(w.path.startswith("M") for w in pic.wires)
    assert_no_overlap(pic)


def test_barycenter_order_untangles_two_chains() -> None:
    # given in an order that would cross: a1 over b1, but b2 over a2
    pic = lay_out(["a1", "b1", "b2", "a2"], [("a1", "a2"), ("b1", "b2")])
    ys = {label: y for label, (_, y) in positions(pic).items()}
    assert (ys["a1"] < ys["b1"]) == (ys["a2"] < ys["b2"])


def test_nodes_no_edge_reached_go_last_and_bad_edges_are_ignored() -> None:
    pic = lay_out(
        ["start", "next", "never"],
        [("start", "next"), ("start", "ghost"), ("next", "next"), ("start", "next")],
    )
    xs = {label: x for label, (x, _) in positions(pic).items()}
    assert xs["start"] < xs["next"] < xs["never"]
    assert len(pic.wires) == 1


def test_a_cycle_in_records_still_draws() -> None:
    pic = lay_out(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")])
    assert len(pic.boxes) == 3
    assert_no_overlap(pic)


def test_wide_fan_out_wraps_into_columns() -> None:
    middles = [f"m{i}" for i in range(1000)]
    edges = [("src", m) for m in middles] + [(m, "sink") for m in middles]
    pic = lay_out(["src", *middles, "sink"], edges)
    assert len(pic.boxes) == 1002 and len(pic.wires) == 2000
    columns = {x for label, (x, _) in positions(pic).items() if label.startswith("m")}
    assert len(columns) == -(-1000 // MAX_PER_COLUMN)
    assert pic.height < (MAX_PER_COLUMN + 1) * (BOX_HEIGHT + 16)
    assert_no_overlap(pic)


def test_empty_and_single() -> None:
    assert lay_out([], []).boxes == ()
    assert len(lay_out(["only"], []).boxes) == 1
