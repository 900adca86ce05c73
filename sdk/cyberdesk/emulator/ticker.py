"""The background task of a served emulator: advances the simulation and delivers webhooks.

It runs in the server's event loop, so webhook deliveries never block request handling, and state moves
on even when no request arrives (a run finishes and its webhook goes out on time).
"""

from __future__ import annotations

import asyncio
import logging

from cyberdesk.emulator.emulator import Emulator

log = logging.getLogger("cyberdesk.emulator")


async def run_ticker(em: Emulator) -> None:
    interval, most_in_flight = em.options.tick_interval, em.options.webhook_concurrency
    in_flight: set[asyncio.Task[None]] = set()
    async with em.webhooks.client() as client:
        try:
            while True:
                try:
                    em.process_due()
                    # Bounded: thousands of deliveries at once (or a dead receiver's retries piling up) would
                    # starve the API this same loop serves.
                    for delivery in em.webhooks.take_due(limit=most_in_flight - len(in_flight)):
                        task = asyncio.create_task(em.webhooks.attempt(client, delivery))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                except Exception:  # one bad tick must not stop time for the whole emulator
                    log.exception("emulator tick failed")
                await asyncio.sleep(interval)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
