"""Where the PostgreSQL tests find their server: 127.0.0.1:5432, database `test` (`.ci/run` starts it), or
`$CYBERDESK_RUNNER_TEST_PG`. Each test works in schemas of its own, named in the URL's search_path."""

from __future__ import annotations

import os

PG_URL = os.environ.get("CYBERDESK_RUNNER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_url_for(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"
