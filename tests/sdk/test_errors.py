"""Error mapping: every failure comes back as one ``ApiError``; only programming errors raise."""

import logging
from collections.abc import Callable

import httpx
import pytest

from cyberdesk import (
    ApiError,
    ApiResponse,
    CyberdeskClient,
    CyberdeskError,
    ErrorKind,
    RunCreate,
    RunUpdate,
    ValidationError,
)

from .helpers import API_KEY, MID, RID, WID, Api, Sleeps, call, run_json

Factory = Callable[..., CyberdeskClient]

DETAIL_422 = {
    "detail": [
        {
            "loc": ["body", "status"],
            "msg": "Input should be 'scheduling', 'running' or 'success'",
            "type": "enum",
            "input": "done",
            "ctx": {"expected": "'scheduling', 'running' or 'success'"},
        },
        {"loc": ["body", "error", 0], "msg": "Input should be a valid string", "type": "string_type"},
    ]
}


async def test_401(mode: str, make_client: Factory) -> None:
    api = Api(httpx.Response(401, json={"detail": "Invalid API key"}))
    error = (await call(make_client(api), mode, "runs", "get", RID)).error
    assert error.kind is ErrorKind.HTTP_STATUS and error.status_code == 401
    assert error.detail == {"detail": "Invalid API key"}
    assert error.is_definite_failure
    assert str(error) == f"GET /v1/runs/{RID}: 401 Unauthorized: {{'detail': 'Invalid API key'}}"


async def test_404_with_a_text_body(mode: str, make_client: Factory) -> None:
    api = Api(httpx.Response(404, text="no such run"))
    error = (await call(make_client(api), mode, "runs", "delete", RID)).error
    assert (error.status_code, error.detail, error.method) == (404, "no such run", "DELETE")
    assert str(error) == f"DELETE /v1/runs/{RID}: 404 Not Found: no such run"
    assert error.is_definite_failure


async def test_422_detail_is_parsed(mode: str, make_client: Factory) -> None:
    api = Api(httpx.Response(422, json=DETAIL_422))
    response = await call(make_client(api), mode, "runs", "update", RID, RunUpdate(error=[1]))  # type: ignore[list-item]
    error = response.error
    assert response.data is None and error.is_definite_failure
    assert all(isinstance(item, ValidationError) for item in error.detail)
    assert error.validation_errors[0].loc == ["body", "status"] and error.validation_errors[0].input == "done"
    assert error.validation_errors[1].loc == ["body", "error", 0]
    assert str(error) == (
        f"PATCH /v1/runs/{RID}: 422 Unprocessable Entity: "
        "body.status: Input should be 'scheduling', 'running' or 'success' (enum); "
        "body.error.0: Input should be a valid string (string_type)"
    )


async def test_422_with_a_string_detail_keeps_the_body(make_client: Factory) -> None:
    api = Api(httpx.Response(422, json={"detail": "bad"}))
    error = make_client(api).runs.get_sync(RID).error
    assert error.detail == {"detail": "bad"} and error.validation_errors == []


async def test_500_after_retries(mode: str, make_client: Factory) -> None:
    api = Api(httpx.Response(500, json={"detail": "boom"}))
    error = (await call(make_client(api), mode, "runs", "create", RunCreate(workflow_id=WID))).error
    assert len(api.requests) == 4
    assert error.status_code == 500 and not error.is_definite_failure


async def test_429_reports_retry_after(make_client: Factory, sleeps: Sleeps) -> None:
    api = Api(httpx.Response(429, headers={"Retry-After": "30"}))
    error = make_client(api).runs.get_sync(RID).error
    assert error.retry_after == 30.0 and not error.is_definite_failure
    assert sleeps.delays == [30.0, 30.0, 30.0]


async def test_409(make_client: Factory) -> None:
    in_progress = httpx.Response(409, headers={"Idempotency-Status": "in_progress"})
    error = (
        make_client(Api(in_progress), idempotency_enabled=False)
        .runs.create_sync(RunCreate(workflow_id=WID))
        .error
    )
    assert error.idempotency_status == "in_progress" and not error.is_definite_failure
    error = make_client(Api(httpx.Response(409, json={"detail": "conflict"}))).runs.get_sync(RID).error
    assert error.is_definite_failure


@pytest.mark.parametrize(
    ("kind", "status", "definite"),
    [
        (ErrorKind.HTTP_STATUS, 400, True),
        (ErrorKind.HTTP_STATUS, 403, True),
        (ErrorKind.HTTP_STATUS, 408, False),
        (ErrorKind.HTTP_STATUS, 429, False),
        (ErrorKind.HTTP_STATUS, 502, False),
        (ErrorKind.HTTP_STATUS, 200, False),
        (ErrorKind.TIMEOUT, None, False),
        (ErrorKind.NETWORK, None, False),
        (ErrorKind.DECODE, 201, False),
    ],
)
def test_is_definite_failure(kind: ErrorKind, status: int | None, definite: bool) -> None:
    assert (
        ApiError(kind=kind, method="POST", path="/v1/runs", status_code=status).is_definite_failure
        is definite
    )


async def test_timeout_and_network_errors_never_raise(mode: str, make_client: Factory) -> None:
    for exc, kind in [
        (httpx.ReadTimeout("timed out"), ErrorKind.TIMEOUT),
        (httpx.ConnectError("refused"), ErrorKind.NETWORK),
    ]:
        error = (await call(make_client(Api(exc)), mode, "machines", "get", MID)).error
        assert error.kind is kind and not error.is_definite_failure
        assert str(error) == f"GET /v1/machines/{MID}: {kind}: {type(exc).__name__}: {exc}"


async def test_a_success_body_that_does_not_parse_is_a_decode_error(mode: str, make_client: Factory) -> None:
    no_machine_key = {k: v for k, v in run_json().items() if k != "machine_id"}
    api = Api(httpx.Response(201, json=no_machine_key))
    error = (await call(make_client(api), mode, "runs", "create", RunCreate(workflow_id=WID))).error
    assert error.kind is ErrorKind.DECODE and error.status_code == 201
    assert "machine_id: required key is missing" in str(error)
    assert len(api.requests) == 1 and not error.is_definite_failure


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, json=run_json(status=5)),
        httpx.Response(200, json=run_json(created_at=1714564800)),
    ],
)
async def test_unparseable_responses(reply: httpx.Response, make_client: Factory) -> None:
    error = make_client(Api(reply)).runs.get_sync(RID).error
    assert error.kind is ErrorKind.DECODE and error.status_code == 200


@pytest.mark.parametrize("api_key", ["", "   "])
def test_empty_api_key(api_key: str) -> None:
    with pytest.raises(ValueError, match="api_key"):
        CyberdeskClient(api_key)


def test_bad_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        CyberdeskClient(API_KEY, base_url="api.cyberdesk.io")


async def test_the_api_key_never_leaks(make_client: Factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = Api(httpx.Response(503, json={"detail": "down"}), httpx.Response(401, json={"detail": "nope"}))
    client = make_client(api)
    error = client.runs.get_sync(RID).error
    texts = [repr(client), repr(client._core.__dict__), str(error), repr(error), caplog.text]
    assert "retrying GET" in caplog.text
    assert all(API_KEY not in text for text in texts)
    assert api.last.headers["Authorization"] == f"Bearer {API_KEY}"


def test_unwrap() -> None:
    error = ApiError(kind=ErrorKind.TIMEOUT, method="GET", path="/v1/health", detail="ReadTimeout")
    assert ApiResponse(data=3).unwrap() == 3
    assert ApiResponse(data=None).ok
    with pytest.raises(CyberdeskError) as raised:
        ApiResponse[int](error=error).unwrap()
    assert raised.value.error is error and str(raised.value) == "GET /v1/health: timeout: ReadTimeout"


async def test_a_closed_client_refuses_calls(make_client: Factory) -> None:
    client = make_client(Api(httpx.Response(200, json={"status": "ok"})))
    client.health.check_sync()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.health.check_sync()
    with pytest.raises(RuntimeError, match="closed"):
        await client.health.check()
