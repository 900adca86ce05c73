"""`cyberdesk-runner emulator`: serve a local Cyberdesk cloud (the demo fleet unless --fixture is given)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator)


def emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8765,
    api_key: Annotated[
        str | None, typer.Option(help="Bearer key clients must send [default: cd_emulator_key].")
    ] = None,
    fixture: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", help="YAML fleet (desktops, pools, workflows); default: the demo fleet."
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(metavar="X", help="Divides every simulated duration.", min=0.0001)
    ] = 1.0,
    run_duration: Annotated[
        str, typer.Option(metavar="MIN-MAX", help="Simulated seconds a run takes, drawn uniformly.")
    ] = "30-300",
    failure_rate: Annotated[
        float, typer.Option(metavar="P", help="Probability that a run fails.", min=0.0, max=1.0)
    ] = 0.0,
    webhook_url: Annotated[
        str | None, typer.Option(metavar="URL", help="Receiver of signed run_complete events.")
    ] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(metavar="SECRET", help="Svix signing secret (whsec_...).")
    ] = None,
    webhook_rate: Annotated[
        float | None,
        typer.Option(
            metavar="N", help="At most N webhook deliveries per second [default: no cap].", min=0.001
        ),
    ] = None,
    rate_limit: Annotated[
        float, typer.Option(metavar="P", help="Probability of a 429.", min=0.0, max=1.0)
    ] = 0.0,
    server_errors: Annotated[
        float, typer.Option(metavar="P", help="Probability of a 500/503.", min=0.0, max=1.0)
    ] = 0.0,
    drop_responses: Annotated[
        float,
        typer.Option(
            metavar="P", help="Probability that an applied request's reply is dropped.", min=0.0, max=1.0
        ),
    ] = 0.0,
    latency: Annotated[
        float, typer.Option(metavar="MS", help="Milliseconds added to each request.", min=0.0)
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option(metavar="N", help="Seed of every random draw (runs and faults).")
    ] = None,
) -> None:
    """Serve the Cyberdesk cloud emulator until Ctrl-C."""
    from cyberdesk.emulator.cli import ServeOptions, serve
    from cyberdesk.emulator.fleet import FixtureError
    from cyberdesk.emulator.options import DEFAULT_API_KEY

    if (webhook_url is None) != (webhook_secret is None):
        raise typer.BadParameter("--webhook-url and --webhook-secret go together")
    options = ServeOptions(
        host=host,
        port=port,
        api_key=api_key or DEFAULT_API_KEY,
        fixture=fixture,
        speed=speed,
        run_duration=run_duration,
        failure_rate=failure_rate,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_rate=webhook_rate,
        rate_limit=rate_limit,
        server_errors=server_errors,
        drop_responses=drop_responses,
        latency=latency,
        seed=seed,
    )
    try:
        serve(options, echo=typer.echo)
    except (FixtureError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
