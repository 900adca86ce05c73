"""`cyberdesk-runner show ID`: one fire, item or attempt (or Cyberdesk run) with its runs, inputs, outputs,
errors and event history.

Sensitive inputs appear by name with the value `***`: the store never holds their values, and anything under
such a name in overrides, outputs or events is masked as well.

A fire's items come a page at a time (`--limit` items, `--page P`), read in index order, with the fire's counts
from aggregate queries: a fire of 100,000 items prints its first page as fast as a small one. The parts are
printed one after the other, so the fire's own block is on screen before its tables are laid out.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text

from cyberdesk_runner.cli.access import open_store, require_ref
from cyberdesk_runner.cli.common import ConfigOption, config_or_exit
from cyberdesk_runner.cli.render import (
    UTC_CAPTION,
    Column,
    details,
    iso,
    print_json,
    short,
    show,
    span,
    table,
    when,
)
from cyberdesk_runner.cli.shapes import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    RUN_COLUMNS,
    attempt_json,
    event_json,
    fire_json,
    inputs_json,
    item_json,
    items_text,
    mask,
    usage_text,
    with_steps,
)
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.views import AttemptQuery, Ref


def register(app: typer.Typer) -> None:
    app.command("show")(show_command)


def show_command(
    ref: Annotated[
        str, typer.Argument(metavar="ID", help="A fire_…, item_… or att_… id, or a Cyberdesk run id.")
    ],
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", metavar="N", min=0, help="Show at most N items, runs and events each (0: all)."
        ),
    ] = 100,
    page: Annotated[
        int,
        typer.Option(
            "--page", "-p", metavar="P", min=1, help="Of a fire's items, show page P (of N items each)."
        ),
    ] = 1,
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (stable shape) for scripts.")
    ] = False,
) -> None:
    """Show one fire, item or run (attempt): its runs, inputs, outputs, errors and event history."""
    settings = config_or_exit(config)
    now = datetime.now(UTC)
    with open_store(settings) as store:
        found = require_ref(store, ref)
        document = head(store, found)
        if not as_json:
            show(_fire_block(document))  # on screen while the rest is read
        fill(store, found, document, now, limit or None, page=page)
    if as_json:
        print_json(document)
        return
    for part in parts(document)[1:]:
        show(part)


def collect(store: Store, ref: Ref, now: datetime, limit: int | None, *, page: int = 1) -> dict[str, Any]:
    """Everything `show` prints about `ref`, as its JSON document: for a fire, page `page` of its items (`limit`
    a page; None: all of them on one page)."""
    document = head(store, ref)
    fill(store, ref, document, now, limit, page=page)
    return document


def head(store: Store, ref: Ref) -> dict[str, Any]:
    """The start of `ref`'s document: its job and its fire (what `show` prints first)."""
    job = store.jobs.get(ref.job_name)
    sensitive = sorted((job.definition.get("sensitive_inputs") or {}) if job is not None else {})
    fire = store.queries.fire_view(ref.fire_id)
    assert fire is not None  # an item or attempt always has its fire
    fire_data = fire_json(fire, store.usage.by_fire([fire.id]).get(fire.id)) | {
        "planned_at": iso(fire.planned_at),
        "input_overrides": inputs_json(fire.input_overrides, ()) if fire.input_overrides else None,
        # `after:` jobs, both ways: the fire this one ran after, and the fires it triggered.
        "triggered": [
            {"fire": fire_id, "job": job_name, "status": status}
            for fire_id, job_name, status in store.lineage.downstream_fires(fire.id)
        ],
    }
    result_file = store.outbox.result_file(ref.fire_id)
    fire_data["result_file"] = (
        {"status": result_file[0], "path": result_file[1]} if result_file is not None else None
    )
    if sensitive and fire_data["input_overrides"]:
        fire_data["input_overrides"] = mask(fire_data["input_overrides"], sensitive)
    return {
        "kind": ref.kind,
        "id": ref.id,
        "job": {"name": ref.job_name, "sensitive_inputs": sensitive, "removed": job is None or job.removed},
        "fire": fire_data,
        "item": None,
        "attempt": None,
        "items": [],
    }


def fill(
    store: Store, ref: Ref, document: dict[str, Any], now: datetime, limit: int | None, *, page: int = 1
) -> None:
    """The rest of the document `head` began: a fire's page of items, the item or attempt, runs and events."""
    sensitive = document["job"]["sensitive_inputs"]
    fire_data = document["fire"]
    if ref.kind == "fire":
        offset = (page - 1) * limit if limit is not None else 0
        document["items"] = [
            item_json(i, sensitive) for i in store.queries.item_views(ref.fire_id, limit=limit, offset=offset)
        ]
        document["items_page"] = _items_page(page, limit, offset, len(document["items"]), fire_data)
        attempts = store.queries.attempt_views(AttemptQuery(fire_id=ref.fire_id, limit=limit or 1_000_000))
        events = store.queries.event_page(fire_id=ref.fire_id, limit=limit)
    else:
        assert ref.item_id is not None
        item = store.queries.item_view(ref.item_id)
        assert item is not None
        document["item"] = item_json(item, sensitive)
        attempts = store.queries.attempt_views(AttemptQuery(item_id=ref.item_id, limit=limit or 1_000_000))
        if ref.kind == "attempt":
            events = store.queries.event_page(attempt_id=ref.id, limit=limit)
        else:
            events = store.queries.event_page(item_id=ref.item_id, limit=limit)
    document["attempts"] = with_steps(
        [attempt_json(a, now, with_output=True) for a in reversed(attempts)],
        store.steps.of_attempts([a.id for a in attempts]),
        now,
    )
    if ref.kind == "attempt":
        document["attempt"] = next(a for a in document["attempts"] if a["id"] == ref.id)
    document["events"] = [event_json(e) for e in events.events]
    document["events_total"] = events.total
    _masked(document, sensitive)


def _items_page(
    page: int, limit: int | None, offset: int, shown: int, fire: dict[str, Any]
) -> dict[str, Any]:
    """Where the page of items sits in the fire: its number, size, the items before it and after it."""
    total: int = fire["items"]["total"]
    return {
        "page": page,
        "limit": limit,
        "first": offset + 1 if shown else None,
        "shown": shown,
        "total": total,
        "more": max(total - offset - shown, 0),
    }


def _masked(document: dict[str, Any], sensitive: Collection[str]) -> None:
    """Mask what came back from Cyberdesk or the event log under a sensitive name (defence in depth; the fire's
    input overrides are masked by `head`)."""
    if not sensitive:
        return
    for attempt in document["attempts"]:
        attempt["output"] = mask(attempt["output"], sensitive)
        for step in attempt["steps"]:
            step["output"] = mask(step["output"], sensitive)
    for event in document["events"]:
        event["data"] = mask(event["data"], sensitive)


# -- for people ----------------------------------------------------------------------------------------


def render(document: dict[str, Any]) -> RenderableType:
    return Group(*parts(document))


def parts(document: dict[str, Any]) -> list[RenderableType]:
    """What `show` prints, in order: the fire's block first, then items, runs, steps, outputs and events."""
    parts: list[RenderableType] = [_fire_block(document)]
    item, attempt = document["item"], document["attempt"]
    if item is not None:
        parts += [Text(), _item_block(item)]
    if attempt is not None:
        parts += [Text(), _attempt_block(attempt)]
    if document["items"]:
        parts += [
            Text(),
            table(
                document["items"], ITEM_COLUMNS, title="Items", caption=_page_caption(document["items_page"])
            ),
        ]
    elif document["kind"] == "fire" and document["items_page"]["page"] > 1:
        parts += [Text(), Text(_page_caption(document["items_page"]) or "", style="dim")]
    # An attempt's own runs table would repeat its block; show it only when the item has other attempts.
    if len(document["attempts"]) > (1 if document["kind"] == "attempt" else 0):
        title = "Runs" if document["kind"] == "fire" else "Runs of this item"
        parts += [Text(), table(document["attempts"], RUN_COLUMNS, title=title, caption=UTC_CAPTION)]
    if document["kind"] != "fire":
        for run in document["attempts"]:
            if run["steps"] and (document["attempt"] is None or run is document["attempt"]):
                title = f"Steps of attempt {run['attempt']} ({run['id']})"
                parts += [Text(), table(run["steps"], STEP_COLUMNS, title=title, caption=UTC_CAPTION)]
    if document["kind"] == "item":
        for run in document["attempts"]:
            if run["output"] is not None:
                parts += [
                    Text(),
                    Text(f"Output of attempt {run['attempt']} ({run['id']})", style="bold"),
                    _json(run["output"]),
                ]
    events, total = document["events"], document["events_total"]
    title = "Events" if total == len(events) else f"Events (the last {len(events)} of {total})"
    parts += [
        Text(),
        table(events, EVENT_COLUMNS, title=title, caption=UTC_CAPTION) if events else Text("No events."),
    ]
    return parts


def _page_caption(page: dict[str, Any]) -> str | None:
    """`items 101-200 of 100,000; 99,800 more: --page 3`, or None when the page holds every item."""
    shown, total, more = page["shown"], page["total"], page["more"]
    if page["page"] == 1 and more == 0:
        return None
    if not shown:
        pages = -(-total // page["limit"]) if page["limit"] else 1
        return f"no items on page {page['page']}: the fire has {total:,} items, {pages:,} page(s) of {page['limit']}"
    first = page["first"]
    where = f"items {first:,}-{first + shown - 1:,} of {total:,}"
    return f"{where}; {more:,} more: --page {page['page'] + 1}" if more else where


def _fire_block(document: dict[str, Any]) -> RenderableType:
    fire, job = document["fire"], document["job"]
    pairs: list[tuple[str, Any]] = [
        ("job", job["name"] + (" (removed)" if job["removed"] else "")),
        ("trigger", fire["trigger"]),
        ("status", fire["status"]),
        ("scheduled for", when(fire["scheduled_for"])),
        ("created at", when(fire["created_at"])),
        ("planned at", when(fire["planned_at"])),
        ("finished at", when(fire["finished_at"])),
        ("retry of", fire["retry_of"]),
        ("after fire", fire["after_fire"]),
        (
            "triggered",
            "; ".join(f"fire {t['fire']} of job {t['job']} ({t['status']})" for t in fire["triggered"])
            or None,
        ),
        ("items", items_text(fire["items"])),
        ("reason", fire["reason"]),
        ("input overrides", _pairs(fire["input_overrides"])),
        ("result file", _result_file(fire.get("result_file"))),
        ("usage", usage_text(fire.get("usage")) or None),
    ]
    if document["kind"] == "fire":
        pairs.append(("sensitive inputs", _pairs(dict.fromkeys(job["sensitive_inputs"], "***"))))
    return details(f"Fire {fire['id']}", pairs)


def _item_block(item: dict[str, Any]) -> RenderableType:
    return details(
        f"Item {item['id']}",
        [
            ("seq", item["seq"]),
            ("status", item["status"]),
            ("attempts", item["attempts"]),
            ("desktop", item["desktop"]),
            ("created at", when(item["created_at"])),
            ("next attempt at", when(item["next_attempt_at"])),
            ("finished at", when(item["finished_at"])),
            ("cancel requested", item["cancel_requested"] or None),
            ("last error", item["last_error"]),
            ("inputs", _pairs(item["inputs"])),
        ],
    )


STEP_COLUMNS = [
    Column("step", justify="right"),
    Column("alias"),
    Column("workflow"),
    Column("run_id", is_id=True),
    Column("status", style_by_value=True),
    Column("duration_s", span, justify="right"),
    Column("output", lambda v: short(80)(json.dumps(v)) if v is not None else ""),
    Column("error", lambda v: short(80)("; ".join(v)) if v else ""),
]


def _attempt_block(attempt: dict[str, Any]) -> RenderableType:
    block = details(
        f"Attempt {attempt['id']} (attempt {attempt['attempt']} of its item)",
        [
            ("run id", attempt["run_id"]),
            ("status", attempt["status"]),
            ("desktop", f"{attempt['desktop']} ({attempt['desktop_id']})"),
            ("workflow id", attempt["workflow_id"]),
            ("created at", when(attempt["created_at"])),
            ("started at", when(attempt["started_at"])),
            ("ended at", when(attempt["ended_at"])),
            ("duration", span(attempt["duration_s"])),
            ("deadline", when(attempt["deadline_at"])),
            ("create tries", attempt["create_tries"] or None),
            ("cancel requested", attempt["cancel_requested"] or None),
            ("errors", "\n".join(attempt["errors"])),
            ("usage", _pairs(attempt.get("usage"))),
        ],
    )
    if attempt["output"] is None:
        return block
    return Group(block, Text("output", style="dim"), _json(attempt["output"]))


def _result_file(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    return (
        value["path"]
        if value["status"] == "written"
        else f"{value['status']}: {value['path'] or '(to be written)'}"
    )


def _pairs(values: dict[str, Any] | None) -> str:
    if not values:
        return ""
    return "\n".join(f"{k} = {v if isinstance(v, str) else json.dumps(v)}" for k, v in values.items())


def _json(value: Any) -> RenderableType:
    return JSON(json.dumps(value, ensure_ascii=False), indent=2, highlight=False)
