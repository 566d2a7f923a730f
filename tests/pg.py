"""Find or start a PostgreSQL server for the tests, and hand out fresh databases.

Order: testcontainers when a Docker engine answers; else TEST_DATABASE_URL; else a throwaway
cluster (`sandbox.postgres`: the machine's PostgreSQL binaries, else the pgserver wheel's).

Each test gets its own database, created from a template that was migrated once per session
(`CREATE DATABASE ... TEMPLATE`), so tests are independent and fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg

from sandbox.cluster import wait_until
from sandbox.postgres import ThrowawayCluster, free_port

__all__ = ["Server", "ThrowawayCluster", "free_port", "temporary_cluster", "wait_until"]


def with_database(url: str, dbname: str) -> str:
    """Return url pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


class Server:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self) -> None:
        self.url = ""
        self._cleanup: list[object] = []

    def start(self) -> Server:
        """Find or start a server, in the documented order."""
        if _docker_answers():
            from testcontainers.postgres import PostgresContainer

            container = PostgresContainer("postgres:16-alpine", driver=None)
            container.start()
            self._cleanup.append(container.stop)
            self.url = container.get_connection_url()
        elif os.environ.get("TEST_DATABASE_URL"):
            self.url = os.environ["TEST_DATABASE_URL"]
        else:
            cluster = ThrowawayCluster().init()
            cluster.start()
            self._cleanup.append(cluster.destroy)
            self.url = cluster.url
        return self

    def stop(self) -> None:
        """Stop whatever start() started."""
        for cleanup in reversed(self._cleanup):
            cleanup()  # type: ignore[operator]

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


@contextlib.contextmanager
def temporary_cluster() -> Iterator[ThrowawayCluster]:
    """Start a private cluster for one test (it may stop and start it) and destroy it after."""
    cluster = ThrowawayCluster().init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
