"""Schedule entries -> due fires: slots from APScheduler 3 triggers, catch-up, overlap, pause, jitter.

- `slots`: pure slot computation (UTC instants without jitter; the DST rules live there).
- `policy`: pure catch-up / pause / overlap / jitter decisions.
- `scheduler`: `Scheduler.tick()`, the only part that talks to the store.
- `describe`: schedules in words, for `cyberdesk-runner jobs`.
"""

from cyberdesk_runner.scheduling.scheduler import Scheduler
from cyberdesk_runner.scheduling.slots import Schedule, Slot

__all__ = ["Schedule", "Scheduler", "Slot"]
