"""How every listing is printed: a Rich table for people or JSON for scripts, from the same rows.

A row is the JSON object itself (keys are the stable field names, values JSON: ISO-8601 UTC times, numbers,
strings, lists). A table shows some of those keys as columns, headed by the key with spaces for underscores
(and without the `_s` of seconds), and turns each value into text with the column's formatter. So what a person reads and what a script parses
cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import attrs
import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Column as RichColumn
from rich.table import Table
from rich.text import Text

from cyberdesk_runner.cli.common import out

Row = Mapping[str, Any]
_MAX_WIDTH = 400

#: Colour of a status word in tables (fires, items, attempts and daemons share the vocabulary).
STATUS_STYLES = {
    "succeeded": "green",
    "success": "green",
    "ok": "green",
    "up": "green",
    "failed": "red",
    "task_failed": "red",
    "error": "red",
    "timed_out": "red",
    "rejected": "red",
    "down": "red",
    "running": "yellow",
    "running_checks": "yellow",
    "scheduling": "yellow",
    "creating": "yellow",
    "pending": "cyan",
    "requested": "cyan",
    "cancelled": "dim",
    "skipped": "dim",
    "stopped": "dim",
}


@attrs.frozen
class Column:
    """One column of a table: the JSON key it shows and how its value reads."""

    key: str
    format: Callable[[Any], str] | None = None
    justify: Literal["left", "right"] = "left"
    #: Ids are never wrapped nor cut: people copy them into `show`, `cancel` and `retry`.
    is_id: bool = False
    style_by_value: bool = False

    @property
    def header(self) -> str:
        # `duration_s` reads `duration`: the cells carry their unit (`42s`, `3m05s`).
        return self.key.removesuffix("_s").replace("_", " ")

    def cell(self, row: Row) -> Text:
        value = row.get(self.key)
        text = self.format(value) if self.format is not None else plain(value)
        style = STATUS_STYLES.get(str(value), "") if self.style_by_value else ""
        return Text(text, style=style)


def print_json(data: Any) -> None:
    # typer.echo rather than Rich: no highlighting, no wrapping, exactly what json.dumps made.
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(
    rows: Sequence[Row], columns: Sequence[Column], *, title: str | None = None, caption: str | None = None
) -> Table:
    grid = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        header_style="bold",
        title_style="bold",
        caption_style="dim",
        pad_edge=False,
    )
    for column in columns:
        longest = max((len(column.cell(row)) for row in rows), default=0) if column.is_id else None
        grid.add_column(
            column.header, justify=column.justify, no_wrap=column.is_id, min_width=longest, overflow="fold"
        )
    for row in rows:
        grid.add_row(*(column.cell(row) for column in columns))
    return grid


def show(renderable: RenderableType) -> None:
    """Print to stdout; when stdout is not a terminal (a pipe, a file), at the renderable's natural width so
    that nothing is cut at the default 80 columns."""
    if out.is_terminal:
        out.print(renderable)
        return
    # Console.print(width=) can only narrow the console, so a wider one is made for the occasion; lines lose
    # the padding Rich adds up to the full width, which is only noise in a file. Nothing printed here expands
    # to the console's width (tables and grids keep their natural width), so the console is simply as wide as
    # allowed: measuring the renderable first cost as much as laying it out.
    wide = Console(width=max(out.width, _MAX_WIDTH), highlight=False, no_color=out.no_color)
    lines = plain_table_lines(renderable, wide) if isinstance(renderable, Table) else None
    if lines is None:
        with wide.capture() as captured:
            wide.print(renderable)
        lines = captured.get().splitlines()
    typer.echo("\n".join(line.rstrip() for line in lines))


def plain_table_lines(grid: Table, console: Console) -> list[str] | None:
    """The lines `console` prints for `grid`, laid out here when Rich's layout comes down to padding strings:
    a table as `table()` makes it, printed without colours, whose cells are one line each and fit the console
    without wrapping. None for anything else, which Rich prints.

    The same lines (once stripped of trailing spaces, as `show` prints them) in a few milliseconds: Rich lays out
    each cell on its own, about a millisecond per ten cells, which was most of what `runs` did after its query.
    tests/runner/cli/test_cli_render.py holds it to Rich's output.
    """
    if not _plain_layout(grid, console):
        return None
    last = len(grid.columns) - 1
    texts: list[list[str]] = []  # per column: the header, then each cell
    widths: list[int] = []  # per column, with its padding: a space each side, none at the table's edges
    for index, column in enumerate(grid.columns):
        cells = _plain_cells(column)
        if cells is None:
            return None
        widths.append(max(max(map(len, cells)), column.min_width or 0) + (index > 0) + (index < last) or 1)
        # Right-justified, a text loses its trailing spaces (it was measured with them).
        texts.append([text.rstrip() for text in cells] if column.justify == "right" else cells)
    table_width = sum(widths) + last  # a one-space divider between columns
    annotations = [str(text) for text in (grid.title, grid.caption) if text]
    if table_width > console.width or any(len(text) > table_width for text in annotations):
        return None  # Rich would wrap cells to fit, or a title or caption to the table's width

    def line(row: int) -> str:
        cells = []
        for index, (column, width) in enumerate(zip(grid.columns, widths, strict=True)):
            text, inner = texts[index][row], width - (index > 0) - (index < last)
            text = text.rjust(inner) if column.justify == "right" else text.ljust(inner)
            cells.append((" " if index else "") + text + (" " if index < last else ""))
        return " ".join(cells)

    lines = [line(0), "─" * table_width, *(line(row) for row in range(1, len(texts[0])))]
    return ([str(grid.title)] if grid.title else []) + lines + ([str(grid.caption)] if grid.caption else [])


def _plain_layout(grid: Table, console: Console) -> bool:
    """Whether `grid` is laid out as `table()` lays out its tables, for a console without colours."""
    if console.color_system is not None or console.options.ascii_only or console.legacy_windows:
        return False  # styles, or box characters of their own
    layout = (grid.box, grid.show_edge, grid.pad_edge, grid.padding, grid.collapse_padding, grid.expand)
    if layout != (box.SIMPLE_HEAD, False, False, (0, 1, 0, 1), False, False) or grid.width or grid.min_width:
        return False
    if not grid.show_header or grid.show_footer or grid.show_lines or grid.leading or grid.row_styles:
        return False
    if not grid.columns or any(row.end_section or row.style for row in grid.rows):
        return False
    annotations = ((grid.title, grid.title_justify), (grid.caption, grid.caption_justify))
    return all(
        not text or (isinstance(text, str) and justify == "left" and _one_plain_line(text, markup=True))
        for text, justify in annotations
    )


def _plain_cells(column: RichColumn) -> list[str] | None:
    """A column's header and cells as plain text, if Rich prints each as it is; else None."""
    header = column.header
    if column.width is not None or column.max_width is not None or column.ratio or column.footer:
        return None
    if column.justify not in ("left", "right") or column.style or column.vertical != "top":
        return None
    if not (isinstance(header, str) and _one_plain_line(header, markup=True)):
        return None
    cells = [header]
    for cell in column.cells:
        if not isinstance(cell, Text) or cell.justify or cell.overflow or cell.no_wrap is not None:
            return None
        if not _one_plain_line(cell.plain, markup=False):
            return None
        cells.append(cell.plain)
    return cells


def _one_plain_line(text: str, *, markup: bool) -> bool:
    """Whether Rich prints `text` as it is on one line of as many cells as characters (printable ASCII or
    other characters one cell wide; for a title, caption or header also no markup, nor `:emoji:` codes)."""
    if not text.isprintable() or (markup and ("[" in text or text.count(":") > 1)):
        return False
    return text.isascii() or cell_len(text) == len(text)


def print_listing(
    rows: Sequence[Row],
    columns: Sequence[Column],
    *,
    as_json: bool,
    empty: str,
    title: str | None = None,
    caption: str | None = None,
) -> None:
    """A listing: a JSON list of the rows, or a table (or the `empty` sentence when there is no row)."""
    if as_json:
        print_json(list(rows))
    elif not rows:
        out.print(empty, markup=False, highlight=False)
    else:
        show(table(rows, columns, title=title, caption=caption))


# -- values --------------------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """A UTC time as JSON: ISO 8601 with a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(map(str, value))
    return str(value)


def when(value: Any) -> str:
    """An ISO time from a row, for tables: `2026-06-01 12:00:05` (UTC, as every table's caption says)."""
    if not value:
        return ""
    return datetime.fromisoformat(str(value)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def span(value: Any) -> str:
    """Seconds as a short duration: `850ms`, `42s`, `3m05s`, `2h10m`, `3d4h`."""
    if value is None:
        return ""
    seconds = float(value)
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def ago(value: Any) -> str:
    """Seconds since something, for people: `4s ago`."""
    return f"{span(value)} ago" if value is not None else "never"


def short(limit: int) -> Callable[[Any], str]:
    """A formatter that keeps one line of at most `limit` characters (the full text is in `show` and JSON)."""

    def cut(value: Any) -> str:
        text = " ".join(plain(value).split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    return cut


UTC_CAPTION = "times in UTC"


def details(title: str, pairs: Sequence[tuple[str, Any]]) -> Table:
    """A title line and `name  value` lines (values None or empty are left out), as `show` prints a record."""
    grid = Table.grid(padding=(0, 2), pad_edge=False)
    grid.title = title
    grid.title_justify = "left"
    grid.title_style = "bold"
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        if value is None or value == "" or value == []:
            continue
        cell = (
            value if isinstance(value, Text) else Text(plain(value), style=STATUS_STYLES.get(str(value), ""))
        )
        grid.add_row(name, cell)
    return grid
