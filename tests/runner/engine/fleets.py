"""Small emulator fleets for the runner's tests."""

from __future__ import annotations

from typing import Any


def three_desks(**workflow: Any) -> dict[str, Any]:
    """Three Boston desks and one workflow "Flaky" whose behaviour the test chooses."""
    machines = [
        {
            "name": f"desk-{n}",
            "machine_parameters": {"site": "boston", "username": f"svc_{n}"},
            "sensitive_parameters": {"password": f"desk-{n}-Pa55word"},
        }
        for n in (1, 2, 3)
    ]
    flaky = {
        "name": "Flaky",
        "prompt": "Do {task} as {username} with {$password}",
        "webhooks": True,
        **workflow,
    }
    return {"pools": [], "machines": machines, "workflows": [flaky]}
