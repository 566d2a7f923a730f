"""Find a PostgreSQL server and hand out fresh databases on it (tests and benchmarks).

Order: the URL in TEST_DATABASE_URL when set; else a throwaway cluster (`postgres`: the
machine's PostgreSQL binaries, else the pgserver wheel's). The tests put testcontainers in
front of both (tests/pg.py); that stays a tests-only concern.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg

from sandbox.harness.postgres import ThrowawayCluster

URL_VARIABLE = "TEST_DATABASE_URL"


def with_database(url: str, dbname: str) -> str:
    """Return url pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


class Server:
    """A PostgreSQL server one may create databases on."""

    def __init__(self) -> None:
        self.url = ""
        self.source = ""
        self._cleanup: list[Callable[[], object]] = []

    def start(self) -> Server:
        """Find or start a server, in the documented order."""
        if os.environ.get(URL_VARIABLE):
            self.url, self.source = os.environ[URL_VARIABLE], URL_VARIABLE
        else:
            cluster = ThrowawayCluster().init()
            cluster.start()
            self._cleanup.append(cluster.destroy)
            self.url, self.source = cluster.url, "throwaway cluster"
        return self

    def stop(self) -> None:
        """Stop whatever start() started."""
        for cleanup in reversed(self._cleanup):
            cleanup()

    def admin(self) -> psycopg.Connection:
        """Return an autocommit connection to the server's maintenance database."""
        return psycopg.connect(self.url, autocommit=True)

    def create_database(self, *, template: str | None = None, prefix: str = "kiebot_t") -> str:
        """Create a new database (optionally from a template) and return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            tmpl = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{tmpl}".encode())
        return with_database(self.url, name)

    def drop_database(self, url: str) -> None:
        """Drop a database created by create_database, disconnecting its sessions."""
        name = urlsplit(url).path.lstrip("/")
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())

    def template_from(self, url: str) -> str:
        """Return the database name of url (to use it as a template)."""
        return urlsplit(url).path.lstrip("/")
