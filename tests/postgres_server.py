"""pytest fixtures over :mod:`kline_rs.testing.postgres` (a throwaway PostgreSQL cluster).

``postgres_server`` (session) starts it once; ``postgres_url`` gives each test a fresh database.
Tests skip, naming what was missing, where the server binaries or psycopg are absent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kline_rs.testing.postgres import PostgresServer, PostgresUnavailable

__all__ = ["PostgresServer", "postgres_server", "postgres_url"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway cluster for the whole session (skips where none can start)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install psycopg[binary])")
    try:
        server = PostgresServer.throwaway()
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    with server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database on the session's server; the server runs again afterwards."""
    yield postgres_server.create_database()
    if not postgres_server.running():
        postgres_server.start()
