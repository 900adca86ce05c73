"""A SQLite file's connections: reads on connections with small page caches, writes on the one writer connection
with SQLite's default cache (kept warm from one write to the next)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from cyberdesk_runner.store import Store


def _cache_size(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())


def test_reads_keep_small_page_caches_and_the_writer_the_default(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        with store.core.read() as reader, store.core.read() as other_reader:
            assert _cache_size(reader) == _cache_size(other_reader) == -256  # KiB
        with store.core.write() as writer:
            assert _cache_size(writer) == -2000  # SQLite's default: 2,000 KiB
    finally:
        store.close()


def test_an_in_memory_store_keeps_sqlites_default_cache() -> None:
    store = Store("sqlite://")
    try:
        with store.core.read() as conn:
            assert _cache_size(conn) == -2000
    finally:
        store.close()
