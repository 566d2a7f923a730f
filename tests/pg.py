"""Find or start a PostgreSQL server for the tests, and hand out fresh databases.

Order: testcontainers when a Docker engine answers; else what `sandbox.harness.databases`
finds (TEST_DATABASE_URL, else a throwaway cluster from the machine's PostgreSQL binaries or
the pgserver wheel's).

Each test gets its own database, created from a template that was migrated once per session
(`CREATE DATABASE ... TEMPLATE`), so tests are independent and fast.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

from sandbox.harness import databases
from sandbox.harness.cluster import wait_until
from sandbox.harness.postgres import ThrowawayCluster, free_port

__all__ = ["Server", "ThrowawayCluster", "free_port", "temporary_cluster", "wait_until"]


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


class Server(databases.Server):
    """The harness's server finder with a PostgreSQL container tried first."""

    def start(self) -> Server:
        """Start a container when Docker answers, else find a server as the harness does."""
        if not _docker_answers():
            super().start()
            return self
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        self._cleanup.append(container.stop)
        self.url, self.source = container.get_connection_url(), "testcontainers"
        return self


@contextlib.contextmanager
def temporary_cluster() -> Iterator[ThrowawayCluster]:
    """Start a private cluster for one test (it may stop and start it) and destroy it after."""
    cluster = ThrowawayCluster().init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
