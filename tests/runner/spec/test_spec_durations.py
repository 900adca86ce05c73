"""Durations: `30s`, `15m`, `2h`, `1d`, `1h30m`, `500ms` and nothing else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from cyberdesk_runner.durations import DURATION_PATTERN, Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("90m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "30", "30 s", "30 seconds", "1.5h", "30m1h", "1h1h", "-5m", "5M", "ms", "1w", "PT30S", "5m30"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == f"expected a duration like 30s, 15m or 2h, got {text!r}"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=30), "30d"),
        (timedelta(milliseconds=1500), "1s500ms"),
        (timedelta(0), "0s"),
    ],
)
def test_format_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


class Model(BaseModel):
    timeout: Duration


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (30, "expected a duration like 30s, 15m or 2h, got 30 (a number needs a unit, e.g. 30s or 30m)"),
        (2.5, "expected a duration like 30s, 15m or 2h, got 2.5 (a number needs a unit, e.g. 2.5s or 2.5m)"),
        (True, "expected a duration like 30s, 15m or 2h, got True"),
        (None, "expected a duration like 30s, 15m or 2h, got an empty value"),
        ("0s", "must be longer than 0s, got '0s'"),
        (timedelta(seconds=-1), "must be longer than 0s, got '0s'"),
    ],
)
def test_pydantic_type_accepts_only_strings(value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Model.model_validate({"timeout": value})
    assert info.value.errors()[0]["ctx"]["error"].args[0] == message


def test_pydantic_type_round_trip() -> None:
    model = Model.model_validate({"timeout": "1h30m"})
    assert model.timeout == timedelta(hours=1, minutes=30)
    assert model.model_dump(mode="json") == {"timeout": "1h30m"}
    assert Model.model_json_schema()["properties"]["timeout"]["pattern"] == DURATION_PATTERN
