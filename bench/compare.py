"""Compare two JSON reports of a bench: `python bench/compare.py OLD.json NEW.json` prints every figure of
either with its old value, its new value and the change.

Figures are matched by their path (`section.figure`); one missing on a side shows as `-`. The change is in
percent of the old value; whether up is better depends on the figure (its name carries its unit), so none is
judged here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def flatten(figures: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(figures, Mapping):
        for key, value in figures.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, figures


def load(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{path}: not a bench report ({exc})") from None
    if not isinstance(document, dict) or "figures" not in document:
        raise SystemExit(f"{path}: not a bench report (no 'figures' key; made by a bench's --json?)")
    return dict(flatten(document["figures"]))


def change(old: Any, new: Any) -> str:
    if old is None or new is None:
        return "-"
    if not _number(old) or not _number(new):
        return "" if old == new else "changed"
    if old == new:
        return "="
    if old == 0:
        return "new"
    return f"{(new - old) / abs(old):+.1%}"


def show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def rows(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    names = list(old) + [name for name in new if name not in old]
    return [(n, show(old.get(n)), show(new.get(n)), change(old.get(n), new.get(n))) for n in names]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    table = rows(load(args.old), load(args.new))
    header = ("figure", "old", "new", "change")
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) if table else len(header[i]) for i in range(4)]
    for row in [header, *table]:
        sys.stdout.write(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
