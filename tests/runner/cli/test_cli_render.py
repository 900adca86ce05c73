"""A listing printed to a pipe or a file (`show`) is laid out without Rich when Rich would only pad strings
(`plain_table_lines`): the lines are Rich's own, and anything Rich would wrap, style or substitute is left to Rich."""

from __future__ import annotations

import random
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from cyberdesk_runner.cli.render import Column, plain_table_lines, table

_PIECES = ["a", "Z", "0", " ", "  ", "-", "_", ".", ":", "…", "é", "xxxxx", "42s", "2026-06-01 08:00:00"]
_TITLES = [None, "", "Runs", "Events (the last 100 of 63,835)", "a title wider than the table " * 3]
_CAPTIONS = [None, "times in UTC", "times in UTC; the newest 50 runs shown, --limit N for more"]


def _rich_lines(grid: Table, width: int) -> list[str]:
    console = Console(width=width, highlight=False)
    with console.capture() as captured:
        console.print(grid)
    return [line.rstrip() for line in captured.get().splitlines()]


def _plain(grid: Table, width: int) -> list[str] | None:
    lines = plain_table_lines(grid, Console(width=width, highlight=False))
    return None if lines is None else [line.rstrip() for line in lines]


def _random_listing(rng: random.Random) -> tuple[list[dict[str, Any]], list[Column], str | None, str | None]:
    keys = [f"k{n}_{rng.choice(['s', 'id', 'at'])}" for n in range(rng.randint(1, 9))]
    columns = [
        Column(key, justify=rng.choice(["left", "right"]), is_id=rng.random() < 0.3, style_by_value=True)
        for key in keys
    ]
    values = [None, "succeeded", "  padded  ", 0, 1234567]
    rows = [
        {
            key: rng.choice(values)
            if rng.random() < 0.3
            else "".join(rng.choices(_PIECES, k=rng.randint(0, 6)))
            for key in keys
        }
        for _ in range(rng.randint(0, 8))
    ]
    return rows, columns, rng.choice(_TITLES), rng.choice(_CAPTIONS)


@pytest.mark.parametrize("seed", range(6))
def test_listings_laid_out_without_rich_read_exactly_as_richs(seed: int) -> None:
    rng = random.Random(seed)
    laid_out = 0
    for _ in range(150):
        rows, columns, title, caption = _random_listing(rng)
        width = rng.choice([400, 120, 60])
        lines = _plain(table(rows, columns, title=title, caption=caption), width)
        if lines is not None:
            laid_out += 1
            assert lines == _rich_lines(table(rows, columns, title=title, caption=caption), width)
    assert laid_out > 50  # most of them: the rest (too wide, a long title or caption) were Rich's


@pytest.mark.parametrize(
    ("cell", "title"),
    [
        ("宽", None),  # two cells wide
        ("a\tb", None),
        ("two\nlines", None),
        ("zero\u200bwidth", None),
        ("ok", "[bold]markup[/bold]"),
        ("ok", "an :smile: code"),
    ],
)
def test_what_rich_would_print_otherwise_is_left_to_rich(cell: str, title: str | None) -> None:
    grid = table([{"name": cell}], [Column("name")], title=title)
    assert _plain(grid, 400) is None


def test_a_table_wider_than_the_console_or_styled_is_left_to_rich() -> None:
    rows = [{"a": "x" * 50, "b": "y" * 50}]
    columns = [Column("a"), Column("b")]
    assert _plain(table(rows, columns), 80) is None
    assert _plain(table(rows, columns), 120) == _rich_lines(table(rows, columns), 120)
    colours = Console(width=400, force_terminal=True, color_system="standard")
    assert plain_table_lines(table(rows, columns), colours) is None


def test_a_column_at_least_as_wide_as_asked_reads_as_richs() -> None:
    def grid() -> Table:
        made = table([{"id": "att_1", "n": "3"}], [Column("id", is_id=True), Column("n", justify="right")])
        made.columns[0].min_width = 12
        made.columns[1].min_width = 5
        return made

    assert _plain(grid(), 400) == _rich_lines(grid(), 400)
