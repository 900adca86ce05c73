"""The background task of a served emulator: advances the simulation and delivers webhooks.

It runs in the server's event loop, so webhook deliveries never block request handling, and state moves
on even when no request arrives (a run finishes and its webhook goes out on time). Between passes it sleeps
until the next run's end or webhook falls due, at most `tick_interval` and at least MIN_PAUSE: a run's webhook
leaves about when the run ends, not up to a whole tick later.
"""

from __future__ import annotations

import asyncio
import logging

from cyberdesk.emulator.emulator import Emulator

log = logging.getLogger("cyberdesk.emulator")

#: Seconds a pass waits at least, so that a busy emulator (an end due every few microseconds) does not spin.
MIN_PAUSE = 0.001


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
                await asyncio.sleep(pause(em, interval, webhooks=len(in_flight) < most_in_flight))
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)


def pause(em: Emulator, interval: float, *, webhooks: bool = True) -> float:
    """Seconds until the next pass: when the next run ends or (if `webhooks`: there is room for more deliveries)
    the next webhook falls due, within the bounds."""
    waits = [interval]
    for due_in in (em.next_due_in(), em.webhooks.next_due_in() if webhooks else None):
        if due_in is not None:
            waits.append(due_in)
    return max(MIN_PAUSE, min(waits))
