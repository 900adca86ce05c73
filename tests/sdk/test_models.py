"""Models: exact wire names, required keys, enums, UNSET vs None, unknown keys kept, ids and datetimes."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyberdesk
from cyberdesk import (
    UNSET,
    ChainStep,
    ConnectionResponse,
    DownedMachinesEvent,
    FileInput,
    HTTPValidationError,
    IncludedResource,
    MachineCreate,
    MachinePoolUpdate,
    MachineResponse,
    MachineUpdate,
    Model,
    ModelError,
    Page,
    PoolWithMachines,
    RunBulkCreate,
    RunCompletedEvent,
    RunCreate,
    RunResponse,
    RunResponseWithIncludes,
    RunRetry,
    RunStatus,
    RunUpdate,
    TrajectoryCreate,
    TrajectoryResponse,
    TrajectoryResponseWithIncludes,
    WorkflowChainCreate,
    WorkflowCreate,
    WorkflowResponse,
)

from .helpers import MID, PID, RID, WID, connection_json, machine_json, pool_json, run_json, trajectory_json

REQUIRED_NAMES = """
MachineCreate MachineUpdate MachineResponse MachineResponseWithIncludes MachinePoolUpdate MachinePoolAssignment
PoolCreate PoolUpdate PoolResponse PoolResponseWithIncludes PoolWithMachines WorkflowCreate WorkflowUpdate
WorkflowResponse WorkflowResponseWithIncludes WorkflowDuplicateRequest WorkflowModelMetadata RunCreate RunUpdate
RunResponse RunResponseWithIncludes RunRetry RunBulkCreate RunBulkCreateResponse WorkflowChainCreate ChainStep
WorkflowChainResponse FileInput RunPostRunCheckSnapshot ConnectionCreate ConnectionUpdate ConnectionResponse
TrajectoryCreate TrajectoryUpdate TrajectoryResponse TrajectoryResponseWithIncludes DisplayDimensions
IncludedResource HTTPValidationError ValidationError Page RunCompletedEvent RunCompletedWebhookRunPayload
DownedMachinesEvent DownedMachine RunStatus MachineStatus ConnectionStatus AttachmentType RunListSortMode RunField
PostRunCheckStatus PostRunCheckType CyberdeskClient ApiResponse ApiError RetryConfig CyberdeskError
WebhookVerificationError
""".split()  # noqa: SIM905 - a word list reads best here


def test_every_model_and_enum_is_importable_from_the_package() -> None:
    assert set(REQUIRED_NAMES) <= set(cyberdesk.__all__)
    for name in cyberdesk.__all__:
        assert getattr(cyberdesk, name) is not None


def test_enums_are_str_valued() -> None:
    assert RunStatus("success") is RunStatus.SUCCESS
    assert RunStatus.SUCCESS == "success" and f"{RunStatus.TASK_FAILED}" == "task_failed"
    assert [s.value for s in RunStatus] == [
        "scheduling", "running", "running_checks", "success", "task_failed", "error", "cancelled",
    ]  # fmt: skip
    assert {s for s in RunStatus if s.is_terminal} == {"success", "task_failed", "error", "cancelled"}


def test_unknown_response_fields_are_kept_and_sent_back() -> None:
    data = run_json(new_field={"nested": [1]}, status="running")
    run = RunResponse.from_dict(data)
    assert run.additional_properties == {"new_field": {"nested": [1]}}
    assert run.to_dict()["new_field"] == {"nested": [1]}
    assert RunResponse.from_dict(run.to_dict()) == run


@pytest.mark.parametrize(
    ("model", "payload", "missing"),
    [
        (RunResponse, run_json(), "machine_id"),
        (RunResponse, run_json(), "created_at"),
        (ConnectionResponse, connection_json(), "disconnected_at"),
        (MachineResponse, machine_json(), "last_seen"),
        (TrajectoryResponse, trajectory_json(), "trajectory_data"),
        (
            WorkflowResponse,
            {"id": WID, "main_prompt": "p", "created_at": "2024-01-01", "updated_at": "2024-01-01"},
            "id",
        ),
    ],
)
def test_required_keys(model: type[Model], payload: dict[str, Any], missing: str) -> None:
    model.from_dict(payload)
    with pytest.raises(ModelError, match=f"{missing}: required key is missing"):
        model.from_dict({k: v for k, v in payload.items() if k != missing})


def test_required_but_nullable_and_optional_variants() -> None:
    assert RunResponse.from_dict(run_json(machine_id=None)).machine_id is None
    assert (
        RunResponseWithIncludes.from_dict(
            {k: v for k, v in run_json().items() if k != "machine_id"}
        ).machine_id
        is None
    )
    trajectory = {k: v for k, v in trajectory_json().items() if k != "trajectory_data"}
    assert TrajectoryResponseWithIncludes.from_dict(trajectory).trajectory_data is None
    assert ConnectionResponse.from_dict(connection_json()).disconnected_at is None
    with pytest.raises(ModelError, match="status: may not be null"):
        RunResponse.from_dict(run_json(status=None))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (run_json(status=5), "status: unexpected value 5"),  # an unknown *string* is kept (UnknownValue)
        (run_json(id="nope"), "id: 'nope' is not a valid UUID"),
        (run_json(created_at=1714564800), "created_at: expected an ISO-8601 datetime string, got int"),
        (run_json(created_at="yesterday"), "created_at: 'yesterday' is not an ISO-8601 datetime"),
        (run_json(is_priority=1), "is_priority: expected bool, got int"),
        (run_json(error="boom"), "error: expected an array, got str"),
        (run_json(error=["ok", 3]), r"error\[1\]: expected str, got int"),
        (run_json(post_run_checks=[{"status": "pending"}, {}]), r"post_run_checks\[1\].status: required key"),
        (run_json(output_data=[1]), "output_data: expected an object, got list"),
        ([run_json()], "expected an object for RunResponse, got list"),
    ],
)
def test_parse_errors_name_the_path(payload: Any, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        RunResponse.from_dict(payload)


def test_numbers_are_not_booleans() -> None:
    with pytest.raises(ModelError, match="width: expected int, got bool"):
        cyberdesk.DisplayDimensions.from_dict({"width": True, "height": 1})
    assert cyberdesk.DisplayDimensions.from_dict({"width": 3, "height": 1}).width == 3


def test_datetimes_are_timezone_aware() -> None:
    run = RunResponse.from_dict(
        run_json(created_at="2024-01-01T10:00:00", started_at="2024-01-01T12:00:00+02:00")
    )
    assert run.created_at == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert run.started_at == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert run.started_at.utcoffset() == timedelta(hours=2)
    update = RunUpdate(
        started_at=datetime(2024, 1, 1, 9, 30),
        ended_at=datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
    )
    assert update.to_dict() == {
        "started_at": "2024-01-01T09:30:00+00:00",
        "ended_at": "2024-01-01T00:00:00-05:00",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T10:00:00.1234567Z", datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-01-01T10:00:00,5+00:00", datetime(2024, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        # Valid ISO-8601 that RFC 3339 parsers refuse: still read.
        ("2024-01-01T24:00:00Z", datetime(2024, 1, 2, tzinfo=UTC)),
        ("2024-01", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_datetimes_beyond_rfc_3339(text: str, expected: datetime) -> None:
    assert RunResponse.from_dict(run_json(created_at=text)).created_at == expected


def test_ids_are_uuids_and_accept_strings() -> None:
    run = RunCreate(workflow_id=WID, machine_id=MID.upper(), pool_ids=[PID, UUID(PID)], session_id=None)
    assert run.workflow_id == UUID(WID) and run.machine_id == UUID(MID) and run.pool_ids == [UUID(PID)] * 2
    assert run.to_dict()["machine_id"] == MID and run.to_dict()["session_id"] is None
    assert MachinePoolUpdate(pool_ids=[PID]).pool_ids == [UUID(PID)]
    assert ChainStep(workflow_id=UUID(WID)).workflow_id == UUID(WID)
    with pytest.raises(ValueError, match="'abc' is not a valid UUID"):
        RunCreate(workflow_id="abc")
    with pytest.raises(ValueError, match="list of UUIDs"):
        MachinePoolUpdate(pool_ids=PID)  # type: ignore[arg-type]


def test_unset_and_none_differ_on_updates() -> None:
    assert MachineUpdate().to_dict() == {}
    assert MachineUpdate(reserved_session_id=None).to_dict() == {"reserved_session_id": None}
    assert MachineUpdate(name="n", machine_parameters={}).to_dict() == {"name": "n", "machine_parameters": {}}
    assert RunUpdate(output_data=None, status=RunStatus.SUCCESS).to_dict() == {
        "output_data": None,
        "status": "success",
    }
    update = MachineUpdate.from_dict({"reserved_session_id": None})
    assert update.reserved_session_id is None and update.name is UNSET
    assert not UNSET and repr(UNSET) == "UNSET"


@pytest.mark.parametrize(
    ("model", "always"),
    [
        (RunCreate(workflow_id=WID), {"is_priority": False, "start_session": False}),
        (WorkflowCreate(main_prompt="p"), {"includes_file_exports": False, "is_webhooks_enabled": False}),
        (RunBulkCreate(workflow_id=WID, count=1), {"is_priority": False, "start_session": False}),
        (RunRetry(), {"reuse_session": True, "start_session": False}),
        (WorkflowChainCreate(steps=[]), {"is_priority": False, "keep_session_after_completion": False}),
        (FileInput(filename="a.txt", content="YQ=="), {"cleanup_imports_after_run": False}),
        (TrajectoryCreate(workflow_id=WID, trajectory_data=[{}], dimensions={}), {"is_approved": False}),
    ],
)
def test_defaults_the_official_client_always_sends(model: Model, always: dict[str, bool]) -> None:
    assert always.items() <= model.to_dict().items()


def test_seed_readme_models() -> None:
    run = RunCreate(workflow_id=WID, machine_id=MID, input_values={"patient_id": "12345"})
    assert run.to_dict() == {
        "workflow_id": WID, "machine_id": MID, "input_values": {"patient_id": "12345"},
        "is_priority": False, "start_session": False,
    }  # fmt: skip
    update = MachineUpdate(
        machine_parameters={"username": "u"}, machine_sensitive_parameters={"password": "s"}
    )
    assert update.to_dict() == {
        "machine_parameters": {"username": "u"},
        "machine_sensitive_parameters": {"password": "s"},
    }
    assert MachineCreate(fingerprint="f", unkey_key_id="k").to_dict() == {
        "fingerprint": "f",
        "unkey_key_id": "k",
    }


def test_nested_models_parse_and_dump() -> None:
    pool = PoolWithMachines.from_dict(pool_json(machines=[machine_json(pools=[pool_json()])]))
    assert isinstance(pool.machines[0], MachineResponse) and pool.machines[0].pools[0].id == UUID(PID)
    assert PoolWithMachines.from_dict(pool_json()).machines == []
    assert PoolWithMachines.from_dict(pool.to_dict()) == pool


def test_page_is_strict_on_its_four_keys() -> None:
    page = {"items": [{"type": "workflow", "id": WID, "name": "wf"}], "total": 1, "skip": 0, "limit": 100}
    parsed = Page.from_dict(page, IncludedResource.from_dict)
    assert parsed.items[0].additional_properties == {"name": "wf"} and parsed.included is None
    assert parsed.to_dict() == page
    for key in ("items", "total", "skip", "limit"):
        with pytest.raises(ModelError, match=f"{key}: required key is missing"):
            Page.from_dict({k: v for k, v in page.items() if k != key}, IncludedResource.from_dict)
    with pytest.raises(ModelError, match=r"items\[0\].id"):
        Page.from_dict({**page, "items": [{"type": "x", "id": 5}]}, IncludedResource.from_dict)


def test_validation_error_shape() -> None:
    parsed = HTTPValidationError.from_dict(
        {"detail": [{"loc": ["query", "limit"], "msg": "too big", "type": "le"}]}
    )
    assert str(parsed.detail[0]) == "query.limit: too big (le)"
    assert parsed.detail[0].to_dict() == {"loc": ["query", "limit"], "msg": "too big", "type": "le"}
    assert HTTPValidationError.from_dict({}).detail == []


def test_events() -> None:
    run_event = RunCompletedEvent.from_dict({"run": run_json(status="success", output_data={"total": 3})})
    assert run_event.event_type == "run_complete" and run_event.event_id is UNSET
    assert isinstance(run_event.run, RunResponse) and run_event.run.output_data == {"total": 3}
    downed = DownedMachinesEvent.from_dict(
        {"organization_id": "org", "machines": [{"machine_id": MID, "organization_id": "org", "status": "disconnected",
                                                 "last_seen": "2024-01-01T00:00:00Z", "reason": "no heartbeat"}]}
    )  # fmt: skip
    assert downed.machines[0].status == "disconnected" and downed.event_type == "downed_machines"
    assert "event_id" not in downed.to_dict()


def test_models_are_attrs_classes_with_exact_wire_names() -> None:
    assert [f.name for f in attrs.fields(RunResponse)][:6] == [
        "additional_properties", "id", "workflow_id", "machine_id", "status", "created_at",
    ]  # fmt: skip
    assert "type" in {f.name for f in attrs.fields(IncludedResource)}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=40)
@given(
    status=st.sampled_from(RunStatus),
    machine_id=st.none() | st.uuids(),
    started_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    error=st.none() | st.lists(st.text(max_size=10), max_size=3),
    output_data=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    extra=st.dictionaries(st.sampled_from(["x_new", "y_new"]), json_values, max_size=2),
)
def test_response_round_trip_through_json(
    status: RunStatus,
    machine_id: UUID | None,
    started_at: datetime | None,
    error: list[str] | None,
    output_data: dict[str, Any] | None,
    extra: dict[str, Any],
) -> None:
    run = RunResponse(
        id=uuid4(), workflow_id=uuid4(), machine_id=machine_id, status=status, created_at=datetime.now(UTC),
        started_at=started_at, error=error, output_data=output_data, additional_properties=extra,
    )  # fmt: skip
    assert RunResponse.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_request_models_parse_too() -> None:
    """The emulator reads requests with the same models: UNSET for absent keys, None for null."""
    body = RunCreate.from_dict({"workflow_id": WID, "machine_id": None, "input_values": {"a": 1}})
    assert body.machine_id is None and body.session_id is UNSET and body.is_priority is False
    assert RunRetry.from_dict({}).reuse_session is True
    assert RunUpdate.from_dict({"status": "success", "error": None}).status is RunStatus.SUCCESS
    assert RID in RunResponse.from_dict(run_json()).to_dict().values()


# Any JSON value, or a well-formed one of the kinds response fields take: most changes break a field, some do not.
field_values = (
    json_values | st.uuids().map(str) | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat)
)


PAYLOADS: dict[type[Model], Any] = {
    RunResponse: run_json,
    RunResponseWithIncludes: run_json,
    MachineResponse: machine_json,
    ConnectionResponse: connection_json,
    TrajectoryResponse: trajectory_json,
}


@settings(max_examples=200)
@given(data=st.data(), model=st.sampled_from(list(PAYLOADS)))
def test_the_written_loader_answers_as_the_field_by_field_walk(
    data: st.DataObject, model: type[Model]
) -> None:
    """`from_dict` runs a loader written for each class (`_base._loader`); `load` with a parser override walks the
    fields one by one. Both give the same model, or the same error at the same path."""
    from cyberdesk.models._base import load

    payload = PAYLOADS[model]()
    changes = data.draw(st.dictionaries(st.sampled_from([*payload, "x_new"]), field_values, max_size=3))
    dropped = data.draw(st.sets(st.sampled_from(list(payload)), max_size=2))
    payload = {k: v for k, v in {**payload, **changes}.items() if k not in dropped}
    outcomes: list[object] = []
    for parse in (model.from_dict, lambda body: load(model, body, {"not a field": lambda v: v})):
        try:
            outcomes.append(parse(payload))
        except ModelError as exc:
            outcomes.append((exc.reason, exc.path))
    assert outcomes[0] == outcomes[1]


def test_the_written_loader_takes_any_mapping_and_refuses_the_rest() -> None:
    from types import MappingProxyType

    assert RunResponse.from_dict(MappingProxyType(run_json())) == RunResponse.from_dict(run_json())
    with pytest.raises(ModelError, match="expected an object for RunResponse, got list"):
        RunResponse.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"output_data: expected an object, got dict"):
        RunResponse.from_dict(run_json(output_data={1: "a"}))


def test_ids_parsed_again_are_the_same_ids_and_bad_ones_still_fail() -> None:
    from cyberdesk.models import _base

    first, again = RunResponse.from_dict(run_json()), RunResponse.from_dict(run_json())
    assert first == again and first.workflow_id == UUID(run_json()["workflow_id"])
    for _ in range(2):  # a refused text is not remembered as good
        with pytest.raises(ModelError, match="is not a valid UUID"):
            RunResponse.from_dict(run_json(id="not-a-uuid"))
    for n in range(_base._UUIDS_KEPT + 10):  # bounded: emptied when full
        _base._parse_uuid(str(UUID(int=n)))
    assert len(_base._UUIDS) <= _base._UUIDS_KEPT
    assert RunCreate(workflow_id=WID, machine_id=MID).workflow_id == UUID(WID)
