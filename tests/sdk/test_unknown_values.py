"""Enum values the SDK does not know (Cyberdesk adds statuses over time) do not fail a call: the model keeps the raw
string as an ``UnknownValue``, which mypy users can match on, and sends it back unchanged."""

import pickle
from collections.abc import Callable

import httpx

from cyberdesk import (
    CyberdeskClient,
    MachineStatus,
    RunResponse,
    RunStatus,
    UnknownValue,
)

from .helpers import Api, call, machine_json, page_json, run_json

Factory = Callable[..., CyberdeskClient]


async def test_an_unknown_run_status_is_kept(mode: str, make_client: Factory) -> None:
    api = Api(httpx.Response(200, json=run_json(status="paused_for_review")))
    response = await call(make_client(api), mode, "runs", "get", run_json()["id"])
    assert response.error is None
    status = response.data.status
    assert isinstance(status, UnknownValue) and not isinstance(status, RunStatus)
    assert status == "paused_for_review" and status.value == "paused_for_review"
    assert response.data.to_dict()["status"] == "paused_for_review"
    assert type(response.data.to_dict()["status"]) is str


async def test_known_values_still_parse_to_the_enum(mode: str, make_client: Factory) -> None:
    api = Api(httpx.Response(200, json=run_json(status="running")))
    status = (await call(make_client(api), mode, "runs", "get", run_json()["id"])).data.status
    assert status is RunStatus.RUNNING


async def test_one_unknown_value_in_a_list_does_not_fail_the_page(mode: str, make_client: Factory) -> None:
    items = [machine_json(status="connected"), machine_json(status="hibernating")]
    api = Api(httpx.Response(200, json=page_json(items)))
    page = (await call(make_client(api), mode, "machines", "list")).data
    assert [m.status for m in page.items] == [MachineStatus.CONNECTED, UnknownValue("hibernating")]


async def test_an_unknown_post_run_check_status_and_type(mode: str, make_client: Factory) -> None:
    check = {"status": "queued_v2", "type": "video_check", "file_target_mode": "glob"}
    api = Api(httpx.Response(200, json=run_json(post_run_checks=[check])))
    run = (await call(make_client(api), mode, "runs", "get", run_json()["id"])).data
    snapshot = run.post_run_checks[0]
    assert (snapshot.status, snapshot.type, snapshot.file_target_mode) == ("queued_v2", "video_check", "glob")
    assert all(
        isinstance(v, UnknownValue) for v in (snapshot.status, snapshot.type, snapshot.file_target_mode)
    )


def describe(status: RunStatus | UnknownValue) -> str:
    """How a user tells known from unknown values: a match statement mypy checks for exhaustiveness."""
    match status:
        case RunStatus.SUCCESS | RunStatus.TASK_FAILED | RunStatus.ERROR | RunStatus.CANCELLED:
            return "finished"
        case RunStatus.SCHEDULING | RunStatus.RUNNING | RunStatus.RUNNING_CHECKS:
            return "in flight"
        case UnknownValue(raw):
            return f"unknown: {raw}"


def test_matching_on_known_and_unknown_values() -> None:
    run = RunResponse.from_dict(run_json(status="archived"))
    assert describe(run.status) == "unknown: archived"
    assert describe(RunResponse.from_dict(run_json(status="success")).status) == "finished"
    assert repr(run.status) == "UnknownValue('archived')"
    assert pickle.loads(pickle.dumps(run.status)) == run.status
