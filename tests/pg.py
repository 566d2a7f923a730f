"""Find or start a PostgreSQL server for the tests, and hand out fresh databases.

Order: testcontainers when a Docker engine answers; else TEST_DATABASE_URL; else a throwaway
cluster started from the machine's PostgreSQL binaries (as the `postgres` user when we are
root, since pg_ctl refuses to run as root).

Each test gets its own database, created from a template that was migrated once per session
(`CREATE DATABASE ... TEMPLATE`), so tests are independent and fast.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

STARTUP_TIMEOUT_S = 30.0


def with_database(url: str, dbname: str) -> str:
    """Return url pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


def free_port() -> int:
    """Return a TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries found (install the postgresql package)")
    return Path(candidates[-1]).parent


class ThrowawayCluster:
    """A private PostgreSQL cluster in a temp dir; can be stopped and started (chaos tests)."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="kiebot-pg-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o755)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=self.root)

    def init(self) -> ThrowawayCluster:
        """Create the cluster files."""
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=300")
        self._run("pg_ctl", "-D", str(self.datadir), "-o", options, "-l",
                  str(self.root / "server.log"), "-w", "-t", str(int(STARTUP_TIMEOUT_S)), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (mode fast or immediate)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server if running and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Server:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self) -> None:
        self.url = ""
        self._cleanup: list[object] = []

    def start(self) -> Server:
        """Find or start a server, in the documented order."""
        if _docker_answers():
            from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped]

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


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll a condition from sync test code until true or timeout; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():  # type: ignore[operator]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
