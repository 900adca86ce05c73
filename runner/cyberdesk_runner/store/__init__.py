"""The runner's store: the one place that knows SQL. Everything else asks `Store` questions by name.

Records (what the store takes and returns) live in `cyberdesk_runner.store.records`.
"""

from cyberdesk_runner.store.store import Store, new_id

__all__ = ["Store", "new_id"]
