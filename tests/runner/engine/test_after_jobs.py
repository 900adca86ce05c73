"""Jobs after jobs: an upstream fire's end makes exactly one downstream fire, with items from its outputs."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, RenderableType

from cyberdesk_runner import planning
from cyberdesk_runner.cli.shapes import fire_json
from cyberdesk_runner.cli.show import collect, render
from cyberdesk_runner.store import lineage
from cyberdesk_runner.store.views import Ref

from .harness import Crash, Harness, crash_after

FIXTURE: dict[str, Any] = {
    "pools": [{"name": "team"}],
    "machines": [{"name": f"desk-{i}", "pools": ["team"]} for i in range(1, 7)],
    "workflows": [
        {
            "name": "Extract",
            "prompt": "Extract batch {batch}",
            "output_schema": {
                "type": "object",
                "properties": {
                    "claims": {
                        "type": "array",
                        "minItems": 4,
                        "items": {"type": "object", "properties": {"claim_id": {"type": "string"}}},
                    },
                    "note": {"type": "string"},
                },
            },
            "fail_when": [{"input": "batch", "equals": "bad"}],
        },
        {"name": "Submit", "prompt": "Submit {claim_id}"},
    ],
}

EXTRACT = """\
name: extract
workflow: Extract
target: {pool: team}
retry: {max_attempts: 1}
items: [{batch: a}, {batch: b}, {batch: c}]
"""


def _after(name: str, upstream: str, *, when: str = "succeeded", path: str | None = "claims") -> str:
    text = f"name: {name}\nworkflow: Submit\ntarget: {{pool: team}}\ninputs: {{portal: main}}\n"
    text += f"after: {{job: {upstream}, when: {when}}}\n"
    return text + (f"items_from_output: {path}\n" if path else "")


def _fires(h: Harness, job: str) -> list[dict[str, Any]]:
    return [f for f in h.rows("fire") if f["job_name"] == job]


def _items(h: Harness, fire_id: str) -> list[dict[str, Any]]:
    return sorted((i for i in h.rows("item") if i["fire_id"] == fire_id), key=lambda i: i["seq"])


def _upstream_claims(h: Harness, upstream: str) -> list[dict[str, Any]]:
    """The elements of the upstream fire's outputs' `claims` lists, by upstream item, then element."""
    seqs = {i["id"]: i["seq"] for i in h.rows("item")}
    attempts = sorted(
        (a for a in h.rows("attempt") if a["fire_id"] == upstream), key=lambda a: seqs[a["item_id"]]
    )
    return [claim for a in attempts for claim in a["output"]["claims"]]


def render_text(renderable: RenderableType) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


class _Crashed:
    """A daemon's follow-up that never ran (it died after recording the upstream fire's end)."""

    async def fire_once(self) -> int:
        return 0

    async def waiting(self) -> bool:
        return False


async def _until_upstream_ends(h: Harness) -> None:
    for _ in range(30):
        await h.cycle()
        if h.rows("fire")[0]["status"] == "succeeded":
            return
        await h.advance(10)
    raise AssertionError("the upstream fire did not end")


async def test_three_upstream_items_of_four_elements_make_one_fire_of_twelve(tmp_path: Path) -> None:
    jobs = {"extract": EXTRACT, "submit": _after("submit", "extract")}
    async with Harness(tmp_path, jobs, fixture=FIXTURE, failure_rate=0.0) as h:
        upstream = await h.trigger("extract")
        await h.run_until_idle()
        [fire] = _fires(h, "submit")
        assert (fire["trigger"], fire["upstream_fire_id"], fire["status"]) == ("after", upstream, "succeeded")
        items = _items(h, fire["id"])
        assert len(items) == 12
        # Ordered by upstream item, then element; the job's own inputs merge in.
        expected = [{"portal": "main", **c} for c in _upstream_claims(h, upstream)]
        assert [i["inputs"] for i in items] == expected
        assert len({i["inputs"]["claim_id"] for i in items}) == 12
        submitted = [r for r in h.emulator_runs() if r.workflow_id == h.emulator.workflow("Submit").id]
        assert len(submitted) == 12 and len({r.machine_id for r in submitted}) == 6  # fanned out
        assert await h.runtime.downstream.fire_once() == 0  # once only


STEPS_FIXTURE: dict[str, Any] = {
    **FIXTURE,
    "workflows": [
        *FIXTURE["workflows"],
        {
            "name": "Summarise",
            "prompt": "Summarise {batch}",
            "output_schema": {
                "type": "object",
                "properties": {
                    "claims": {
                        "type": "array",
                        "minItems": 2,
                        "items": {"type": "object", "properties": {"claim_id": {"type": "string"}}},
                    }
                },
            },
        },
    ],
}

EXTRACT_IN_STEPS = """\
name: extract
target: {pool: team}
retry: {max_attempts: 1}
items: [{batch: a}, {batch: b}]
steps:
  - workflow: Extract
    alias: listing
  - workflow: Summarise
"""


async def test_a_multi_step_upstream_job_is_read_by_step_alias_or_its_last_step(tmp_path: Path) -> None:
    jobs = {
        "extract": EXTRACT_IN_STEPS,
        "by-alias": _after("by-alias", "extract", path="listing.claims"),
        "last-step": _after("last-step", "extract", path="claims"),
    }
    async with Harness(tmp_path, jobs, fixture=STEPS_FIXTURE, failure_rate=0.0) as h:
        await h.trigger("extract")
        await h.run_until_idle()
        items = {i["id"]: i for i in h.rows("item")}
        upstream_steps: dict[int, list[dict[str, Any]]] = {}
        for step in h.rows("step_run"):
            attempt = next(a for a in h.rows("attempt") if a["id"] == step["attempt_id"])
            upstream_steps.setdefault(items[attempt["item_id"]]["seq"], []).append(step)
        by_step = [
            {s["step_index"]: s["output"]["claims"] for s in upstream_steps[seq]}
            for seq in sorted(upstream_steps)
        ]
        [aliased] = _fires(h, "by-alias")
        [last] = _fires(h, "last-step")
        # `listing.claims`: the first step's list (4 elements per upstream item), in upstream item order.
        assert [i["inputs"] for i in _items(h, aliased["id"])] == [
            {"portal": "main", **c} for claims in by_step for c in claims[0]
        ]
        assert len(_items(h, aliased["id"])) == 8
        # `claims` with no alias: the last step's list (2 elements each).
        assert [i["inputs"] for i in _items(h, last["id"])] == [
            {"portal": "main", **c} for claims in by_step for c in claims[1]
        ]
        assert len(_items(h, last["id"])) == 4
        assert {aliased["status"], last["status"]} == {"succeeded"}


async def test_when_failed_and_finished(tmp_path: Path) -> None:
    jobs = {
        "extract": EXTRACT.replace("{batch: c}", "{batch: bad}"),
        "on-success": _after("on-success", "extract"),
        "on-failure": _after("on-failure", "extract", when="failed"),
        "on-end": _after("on-end", "extract", when="finished"),
    }
    async with Harness(tmp_path, jobs, fixture=FIXTURE, failure_rate=0.0) as h:
        upstream = await h.trigger("extract")
        await h.run_until_idle()
        assert h.rows("fire")[0]["status"] == "failed"
        assert _fires(h, "on-success") == []
        for job in ("on-failure", "on-end"):
            [fire] = _fires(h, job)
            assert fire["upstream_fire_id"] == upstream
            assert len(_items(h, fire["id"])) == 8  # the two succeeded items' outputs


async def test_no_element_records_a_skipped_fire_with_the_reason(tmp_path: Path) -> None:
    jobs = {"extract": EXTRACT, "submit": _after("submit", "extract", path="nothing.here")}
    async with Harness(tmp_path, jobs, fixture=FIXTURE, failure_rate=0.0) as h:
        upstream = await h.trigger("extract")
        await h.run_until_idle()
        [fire] = _fires(h, "submit")
        assert fire["status"] == "skipped" and fire["upstream_fire_id"] == upstream
        assert fire["skip_reason"] == (
            f"upstream fire {upstream} has no element at 'nothing.here' in the outputs of its 3 succeeded item(s)"
        )


async def test_a_chain_of_jobs_a_b_c(tmp_path: Path) -> None:
    jobs = {
        "extract": EXTRACT,
        "submit": _after("submit", "extract"),
        "report": _after("report", "submit", path=None),
    }
    async with Harness(tmp_path, jobs, fixture=FIXTURE, failure_rate=0.0) as h:
        await h.trigger("extract")
        await h.run_until_idle()
        [submit] = _fires(h, "submit")
        [report] = _fires(h, "report")
        assert report["upstream_fire_id"] == submit["id"] and report["status"] == "succeeded"
        assert [i["inputs"] for i in _items(h, report["id"])] == [{"portal": "main"}]  # its own items
        # `show` and `fires` link both ways.
        now = datetime.now(UTC)
        shown = collect(h.store, Ref("fire", submit["id"], "submit", submit["id"]), now, None)
        assert shown["fire"]["after_fire"] == _fires(h, "extract")[0]["id"]
        assert shown["fire"]["triggered"] == [{"fire": report["id"], "job": "report", "status": "succeeded"}]
        text = render_text(render(shown))
        assert f"fire {report['id']} of job report" in text and _fires(h, "extract")[0]["id"] in text
        listed = {f["job"]: f for f in map(fire_json, h.store.queries.fire_views())}
        assert listed["report"]["after_fire"] == submit["id"]


async def test_a_restarted_daemon_records_the_downstream_fire_once(tmp_path: Path) -> None:
    jobs = {"extract": EXTRACT, "submit": _after("submit", "extract")}
    async with Harness(tmp_path, jobs, fixture=FIXTURE, failure_rate=0.0) as h:
        upstream = await h.trigger("extract")
        # The first daemon records the upstream fire's end, then dies before its follow-up.
        first = h.runtime.downstream
        h.runtime.downstream = _Crashed()  # type: ignore[assignment]
        await _until_upstream_ends(h)
        assert _fires(h, "submit") == []
        restarted = await h.restarted()
        await restarted.refresh_fleet()
        assert await restarted.downstream.fire_once() == 1
        assert await first.fire_once() == 0
        [fire] = _fires(h, "submit")
        assert fire["upstream_fire_id"] == upstream


@pytest.mark.postgres
async def test_two_daemons_on_postgresql_make_exactly_one_downstream_fire(
    tmp_path: Path, pg_schema: Callable[[], str]
) -> None:
    jobs = {"extract": EXTRACT, "submit": _after("submit", "extract")}
    async with Harness(tmp_path, jobs, fixture=FIXTURE, failure_rate=0.0, store_url=pg_schema()) as h:
        await h.trigger("extract")
        other = await h.restarted("daemon_other")
        await other.refresh_fleet()
        first = h.runtime.downstream
        h.runtime.downstream = _Crashed()  # type: ignore[assignment]
        await _until_upstream_ends(h)
        # Both daemons see the end at once and race to record the downstream fire (three tries each).
        recorded = await asyncio.gather(*(d.fire_once() for d in (first, other.downstream) for _ in range(3)))
        assert sum(recorded) == 1
        [fire] = _fires(h, "submit")
        assert len(_items(h, fire["id"])) == 12


async def test_items_from_outputs_too_many_for_one_transaction_are_planned_by_chunks_each_once_across_a_crash(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of 5 items, upstream outputs read 2 items a page: 12 downstream items are a plan of 3 chunks.
    for name in ("PLAN_CHUNK", "PLAN_CHUNK_MIN", "PLAN_CHUNK_MAX"):
        monkeypatch.setattr(planning, name, 5)
    monkeypatch.setattr(lineage, "OUTPUTS_PAGE", 2)
    jobs = {"extract": EXTRACT, "submit": _after("submit", "extract")}
    async with Harness(tmp_path, jobs, fixture=FIXTURE, failure_rate=0.0, store_url=store_url) as h:
        upstream = await h.trigger("extract")
        first = h.runtime.downstream
        h.runtime.downstream = _Crashed()  # type: ignore[assignment]
        await _until_upstream_ends(h)
        assert await first.fire_once() == 1
        [fire] = _fires(h, "submit")
        assert (fire["status"], fire["upstream_fire_id"]) == ("requested", upstream), "too big: requested"
        # The daemon plans one chunk, then dies.
        plan_chunk = h.store.plans.plan_chunk
        crash_after(h.store.plans, "plan_chunk", 1)
        with pytest.raises(Crash):
            await h.runtime.plan_requested_fires()
        assert len(_items(h, fire["id"])) == 5
        h.store.plans.plan_chunk = plan_chunk  # type: ignore[method-assign]
        await h.advance(61)  # its claim lapses: a restarted daemon continues after the last recorded item
        restarted = await h.restarted()
        await restarted.refresh_fleet()
        await restarted.plan_requested_fires()
        items = _items(h, fire["id"])
        assert [i["seq"] for i in items] == list(range(12))
        expected = [{"portal": "main", **c} for c in _upstream_claims(h, upstream)]
        assert [i["inputs"] for i in items] == expected, "the same items in the same order as one transaction"
        h.runtime = restarted
        await h.run_until_idle()
        submitted = [r for r in h.emulator_runs() if r.workflow_id == h.emulator.workflow("Submit").id]
        assert sorted(r.input_values["claim_id"] for r in submitted) == sorted(
            c["claim_id"] for c in _upstream_claims(h, upstream)
        ), "each element run once"
