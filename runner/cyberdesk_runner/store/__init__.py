"""The runner's store: the one place that knows SQL. Everything else asks `Store` questions by name.

`Store` (store.py) holds one object per aggregate: `store.jobs`, `store.fires`, `store.dispatch`,
`store.tracking`, `store.control`, `store.counts`, `store.retention`, `store.daemons`, and `store.queries` for
the CLI's reads; store.py's docstring maps them to their modules. They share `core.StoreCore` (engine,
transactions, retries of transient errors, NOTIFY on commit, the event log); core.py's docstring says how to
add an aggregate module. Records (what the store takes and returns) live in `cyberdesk_runner.store.records`.
"""

from cyberdesk_runner.store.core import new_id
from cyberdesk_runner.store.store import Store

__all__ = ["Store", "new_id"]
