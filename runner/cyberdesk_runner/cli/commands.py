"""Every command of the CLI, registered on the one Typer app."""

from __future__ import annotations

import typer


def register_all(app: typer.Typer) -> None:
    from cyberdesk_runner.cli.alerts import register as register_alerts
    from cyberdesk_runner.cli.control import register as register_control
    from cyberdesk_runner.cli.db import register as register_db
    from cyberdesk_runner.cli.emulator import register as register_emulator
    from cyberdesk_runner.cli.inspect import register as register_inspect
    from cyberdesk_runner.cli.jobs import register as register_jobs
    from cyberdesk_runner.cli.password import register as register_password
    from cyberdesk_runner.cli.results import register as register_results
    from cyberdesk_runner.cli.run import register as register_run
    from cyberdesk_runner.cli.show import register as register_show
    from cyberdesk_runner.cli.status import register as register_status
    from cyberdesk_runner.cli.validate import register as register_validate
    from cyberdesk_runner.cli.watch import register as register_watch

    for register in (
        register_run,
        register_validate,
        register_jobs,
        register_inspect,
        register_show,
        register_results,
        register_alerts,
        register_watch,
        register_status,
        register_control,
        register_emulator,
        register_db,
        register_password,
    ):
        register(app)
