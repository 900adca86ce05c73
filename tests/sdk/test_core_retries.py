"""Retries, backoff, Retry-After and idempotency keys, with time controlled (nothing really sleeps)."""

import gc
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from freezegun import freeze_time

from cyberdesk import CyberdeskClient, ErrorKind, RetryConfig, RetryEvent, RunCreate, RunStatus, RunUpdate
from cyberdesk._core import parse_retry_after

from .helpers import RID, WID, Api, Sleeps, call, no_wait_retry, run_json

Factory = Callable[..., CyberdeskClient]
CREATED = httpx.Response(201, json=run_json())
FOUND = httpx.Response(200, json=run_json())


def busy(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": "busy"}, headers=headers)


async def create(client: CyberdeskClient, mode: str, **kw: str) -> object:
    return await call(client, mode, "runs", "create", RunCreate(workflow_id=WID), **kw)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(
    status: int, mode: str, make_client: Factory, sleeps: Sleeps
) -> None:
    api = Api(busy(status), busy(status), FOUND)
    response = await call(make_client(api), mode, "runs", "get", RID)
    assert response.error is None and response.data.id.hex == RID.replace("-", "")
    assert len(api.requests) == 3
    assert sleeps.delays == [0.125, 0.25]  # random() = 0.5 times 0.25 * 2**retry_index


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_definite_answers_are_not_retried(
    status: int, mode: str, make_client: Factory, sleeps: Sleeps
) -> None:
    api = Api(busy(status), FOUND)
    response = await call(make_client(api), mode, "runs", "get", RID)
    assert response.error.status_code == status
    assert len(api.requests) == 1 and sleeps.delays == []


async def test_409_in_progress_is_retried_with_the_same_key(mode: str, make_client: Factory) -> None:
    api = Api(busy(409, **{"Idempotency-Status": "in_progress"}), CREATED)
    response = await create(make_client(api), mode)
    assert response.error is None
    keys = {r.headers["Idempotency-Key"] for r in api.requests}
    assert len(api.requests) == 2 and len(keys) == 1


async def test_5xx_gives_up_after_max_retries(mode: str, make_client: Factory, sleeps: Sleeps) -> None:
    api = Api(busy(500))
    response = await call(make_client(api), mode, "runs", "get", RID)
    assert len(api.requests) == 4
    assert response.error.kind is ErrorKind.HTTP_STATUS and response.error.status_code == 500
    assert sleeps.delays == [0.125, 0.25, 0.5]


async def test_backoff_is_capped_and_jittered(make_client: Factory, sleeps: Sleeps) -> None:
    draws = iter([1.0, 1.0, 1.0, 0.0, 0.3])
    retry = RetryConfig(
        max_retries=5,
        min_delay_seconds=0.5,
        max_delay_seconds=1.5,
        sleep=sleeps.sleep,
        random=lambda: next(draws),
    )
    make_client(api := Api(busy(503)), retry=retry).runs.get_sync(RID)
    assert len(api.requests) == 6
    assert sleeps.delays == pytest.approx([0.5, 1.0, 1.5, 0.0, 0.45])


@pytest.mark.parametrize(
    ("header", "delay"), [("2", 2.0), ("0.5", 0.5), ("0", 0.0), ("120", 60.0), ("-3", 0.0)]
)
async def test_retry_after_seconds_is_honoured_up_to_the_cap(
    header: str, delay: float, mode: str, make_client: Factory, sleeps: Sleeps
) -> None:
    api = Api(busy(429, **{"Retry-After": header}), FOUND)
    await call(make_client(api), mode, "runs", "get", RID)
    assert sleeps.delays == [delay]


def test_retry_after_http_date_under_frozen_time(make_client: Factory, sleeps: Sleeps) -> None:
    api = Api(busy(503, **{"Retry-After": "Mon, 01 Jan 2024 00:00:07 GMT"}), FOUND)
    with freeze_time("2024-01-01 00:00:00"):
        response = make_client(api).runs.get_sync(RID)
    assert response.error is None
    assert sleeps.delays == [7.0]


def test_unparseable_retry_after_falls_back_to_backoff(make_client: Factory, sleeps: Sleeps) -> None:
    make_client(Api(busy(503, **{"Retry-After": "soon"}), FOUND)).runs.get_sync(RID)
    assert sleeps.delays == [0.125]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("3", 3.0),
        ("1.25", 1.25),
        ("Mon, 01 Jan 2024 00:01:00 GMT", 60.0),
        ("Sun, 31 Dec 2023 23:59:00 GMT", 0.0),
        ("nan", None),
        ("inf", None),
        ("later", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, datetime(2024, 1, 1, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("read timed out"), ErrorKind.TIMEOUT),
        (httpx.ConnectTimeout("connect timed out"), ErrorKind.TIMEOUT),
        (httpx.ConnectError("connection refused"), ErrorKind.NETWORK),
        (httpx.RemoteProtocolError("server disconnected without sending a response"), ErrorKind.NETWORK),
        (ConnectionResetError("reset by peer"), ErrorKind.NETWORK),
    ],
)
async def test_transport_failures_are_retried_then_returned(
    exc: Exception, kind: ErrorKind, mode: str, make_client: Factory, sleeps: Sleeps
) -> None:
    api = Api(exc)
    response = await create(make_client(api), mode)
    assert len(api.requests) == 4 and len(sleeps.delays) == 3
    assert response.data is None
    assert response.error.kind is kind and response.error.status_code is None
    assert len({r.headers["Idempotency-Key"] for r in api.requests}) == 1


async def test_a_flaky_network_then_success(mode: str, make_client: Factory) -> None:
    api = Api(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), CREATED)
    response = await create(make_client(api), mode)
    assert response.error is None and len(api.requests) == 3


async def test_every_retry_of_a_write_carries_the_same_key(mode: str, make_client: Factory) -> None:
    api = Api(busy(503), busy(502), CREATED)
    response = await create(make_client(api), mode)
    assert response.error is None
    assert len(api.requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in api.requests}) == 1


async def test_each_call_gets_its_own_key(mode: str, make_client: Factory) -> None:
    api = Api(CREATED)
    client = make_client(api)
    await create(client, mode)
    await create(client, mode)
    first, second = (r.headers["Idempotency-Key"] for r in api.requests)
    assert first != second


async def test_the_callers_key_is_kept_across_retries(mode: str, make_client: Factory) -> None:
    api = Api(httpx.ReadTimeout("slow"), busy(500), CREATED)
    await create(make_client(api), mode, idempotency_key="attempt-42")
    assert [r.headers["Idempotency-Key"] for r in api.requests] == ["attempt-42"] * 3


async def test_a_write_without_a_key_is_not_retried(mode: str, make_client: Factory, sleeps: Sleeps) -> None:
    api = Api(busy(503), CREATED)
    response = await create(make_client(api, idempotency_enabled=False), mode)
    assert len(api.requests) == 1 and sleeps.delays == []
    assert "Idempotency-Key" not in api.last.headers
    assert response.error.status_code == 503


async def test_a_write_without_a_key_is_not_retried_after_a_timeout(mode: str, make_client: Factory) -> None:
    api = Api(httpx.ReadTimeout("slow"), CREATED)
    response = await create(make_client(api, idempotency_enabled=False), mode)
    assert len(api.requests) == 1 and response.error.kind is ErrorKind.TIMEOUT


async def test_with_keys_disabled_a_callers_key_still_enables_retries(
    mode: str, make_client: Factory
) -> None:
    api = Api(busy(503), CREATED)
    response = await create(make_client(api, idempotency_enabled=False), mode, idempotency_key="k1")
    assert response.error is None and len(api.requests) == 2


async def test_reads_are_retried_even_with_keys_disabled(mode: str, make_client: Factory) -> None:
    api = Api(busy(503), FOUND)
    response = await call(make_client(api, idempotency_enabled=False), mode, "runs", "get", RID)
    assert response.error is None and len(api.requests) == 2


async def test_max_retries_zero_sends_once(mode: str, make_client: Factory, sleeps: Sleeps) -> None:
    api = Api(busy(503))
    await call(make_client(api, retry=no_wait_retry(sleeps, max_retries=0)), mode, "runs", "get", RID)
    assert len(api.requests) == 1


async def test_with_retry_changes_the_policy_and_shares_the_pools(
    mode: str, make_client: Factory, sleeps: Sleeps
) -> None:
    api = Api(busy(429), busy(429), FOUND)
    client = make_client(api)
    once = client.with_retry(no_wait_retry(sleeps, max_retries=0))
    answer = await call(once, mode, "runs", "update", RID, RunUpdate(status=RunStatus.CANCELLED))
    assert answer.error.status_code == 429 and len(api.requests) == 1  # not repeated later on its own
    assert (await call(client, mode, "runs", "get", RID)).error is None  # the original still retries
    assert len(api.requests) == 3
    once.close()
    await once.aclose()  # the pools are the original's: closing the twin leaves them open
    assert (await call(client, mode, "runs", "get", RID)).error is None
    assert len(api.requests) == 4


async def test_on_retry_receives_each_retry(mode: str, make_client: Factory, sleeps: Sleeps) -> None:
    events: list[RetryEvent] = []
    retry = no_wait_retry(sleeps, on_retry=events.append)
    api = Api(busy(429, **{"Retry-After": "1"}), httpx.ConnectError("refused"), CREATED)
    await create(make_client(api, retry=retry), mode)
    assert events == [
        RetryEvent(
            attempt=1,
            delay=1.0,
            reason=ErrorKind.HTTP_STATUS,
            status_code=429,
            method="POST",
            path="/v1/runs",
        ),
        RetryEvent(
            attempt=2, delay=0.25, reason=ErrorKind.NETWORK, status_code=None, method="POST", path="/v1/runs"
        ),
    ]


def test_retry_config_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryConfig(max_retries=-1)


def test_default_timeouts_are_set() -> None:
    client = CyberdeskClient("k")
    timeout = client._core._timeout
    assert timeout.connect == 5.0 and timeout.read == 30.0


@pytest.mark.parametrize("replies", [[CREATED], [busy(503), CREATED]], ids=["answered", "retried"])
async def test_a_finished_call_leaves_nothing_to_the_cyclic_collector(
    replies: list[httpx.Response], mode: str, make_client: Factory
) -> None:
    """Responses (with their requests and bodies) are freed as soon as the call is done with them, not whenever
    the cyclic garbage collector next runs: a daemon sending 1 MB files kept hundreds of request bodies alive."""
    client = make_client(Api(*replies))
    await create(client, mode)  # the first call opens the client's pools
    gc.collect()
    gc.disable()
    try:
        await create(client, mode)
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
