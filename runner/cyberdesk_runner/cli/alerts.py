"""`cyberdesk-runner alerts`: the outbox (pending, sent, failed, digested alerts); `alerts test NAME` sends a test
event to one destination now. URLs and secrets are never printed: a destination is shown by its name."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer

from cyberdesk_runner.alerts.formats import request_for
from cyberdesk_runner.cli.access import open_store
from cyberdesk_runner.cli.common import ConfigOption, ExitCode, config_or_exit, fail, out
from cyberdesk_runner.cli.render import print_json

_STATUSES = ("pending", "sent", "failed", "digested")

alerts_app = typer.Typer(help="The alert outbox, and test events.", no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", "-s", metavar="S", help="pending | sent | failed | digested.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most N alerts.")] = 50,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list for scripts.")] = False,
) -> None:
    """List the alert outbox, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in _STATUSES:
        raise typer.BadParameter(f"{status!r}: expected one of {', '.join(_STATUSES)}", param_hint="--status")
    settings = config_or_exit(config)
    with open_store(settings) as store:
        views = store.outbox.alert_views(status=status, limit=limit)
    rows: list[dict[str, Any]] = [
        {
            "id": v.id,
            "destination": v.destination,
            "type": v.type,
            "job": v.job_name,
            "status": v.status,
            "created_at": v.created_at.isoformat(),
            "tries": v.tries,
            "sent_at": v.sent_at.isoformat() if v.sent_at else None,
            "next_try_at": v.next_try_at.isoformat() if v.status == "pending" else None,
            "last_error": v.last_error,
        }
        for v in views
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No alerts" + (f" {status}." if status else "."))
        return
    for r in rows:
        out.print(
            f"{r['created_at'][:19]}  {r['status']:<9} {r['type']:<20} {r['destination']:<12} "
            f"{r['job'] or '-':<16} tries={r['tries']}  {r['id']}"
            + (f"  ({r['last_error']})" if r["last_error"] else ""),
            markup=False,
            soft_wrap=True,
        )


@alerts_app.command("test")
def test(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The destination's name in the config.")],
    config: ConfigOption = None,
) -> None:
    """Send a test event to one destination now and say how it went."""
    settings = config_or_exit(config)
    destination = next((d for d in settings.alerts if d.name == name), None)
    if destination is None:
        known = ", ".join(d.name for d in settings.alerts) or "none"
        fail(f"no alert destination named {name!r} (known: {known})", ExitCode.NOT_FOUND)
    now = datetime.now(UTC)
    ident = f"alrt_test_{secrets.token_hex(8)}"
    payload = {
        "type": "test",
        "id": ident,
        "at": now.isoformat(),
        "job": None,
        "fire": None,
        "item": None,
        "desktop": None,
        "error": None,
        "inputs": None,
    }
    body, headers = request_for(destination, ident, payload, now)
    try:
        response = httpx.post(destination.url.get_secret_value(), content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        fail(f"test alert to {name} failed: {type(exc).__name__}", ExitCode.FAILED)
    if not response.is_success:
        fail(f"test alert to {name} failed: HTTP {response.status_code}", ExitCode.FAILED)
    out.print(f"test alert {ident} delivered to {name} (HTTP {response.status_code})", markup=False)
