"""Errors the emulator's operations raise; the app turns them into `{"detail": "..."}` responses."""

from __future__ import annotations


class EmulatorError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(EmulatorError):
    """An unknown id: 404, e.g. `{"detail": "Run not found"}`."""

    status_code = 404


class Conflict(EmulatorError):
    """A request the current state forbids, e.g. retrying a run that is still active."""

    status_code = 409
