"""A throwaway PostgreSQL cluster (tests, chaos, demo).

The server binaries are the machine's (`pg_ctl` on PATH, else Debian's
/usr/lib/postgresql/*/bin), else the PostgreSQL that the `pgserver` wheel from PyPI bundles
(installed with the `dev` extra on Linux x86_64 and macOS), so a fresh machine needs nothing
but `pip install -e '.[dev]'`. `pg_ctl` refuses to run as root, so as root the cluster runs as
the `postgres` user, or `nobody` where there is none. The cluster lives in a temp dir, listens
on 127.0.0.1 on a free port, and trades durability for speed (fsync off): it is for tests and
the demo, never for data that matters.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    """Return a TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_bindir() -> Path:
    """Return the directory of the PostgreSQL server binaries to use (see the module doc)."""
    bindir = machine_bindir() or bundled_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server binaries found: install the postgresql package,"
                           " or the dev extra (it brings the pgserver wheel on Linux x86_64 and"
                           " macOS)")
    return bindir


def machine_bindir() -> Path | None:
    """Return the machine's server binaries: pg_ctl on PATH, else Debian's newest."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def bundled_bindir() -> Path | None:
    """Return the pgserver wheel's server binaries, if it is installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bindir / "pg_ctl").exists():
        return None
    if os.geteuid() == 0 and not _reachable_by_others(bindir):
        return _reachable_copy(bindir)
    return bindir


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _reachable_copy(bindir: Path) -> Path:
    """Copy the wheel's PostgreSQL where the unprivileged server user can run it (a venv under
    /root is out of its reach); once per machine, in the temp dir."""
    install = bindir.parent                       # site-packages/pgserver/pginstall
    libs = install.parent.parent / "pgserver.libs"  # its binaries' rpath: $ORIGIN/../../../
    # Keyed by where and which build it is, so an upgraded wheel gets a fresh copy.
    built = (bindir / "postgres").stat().st_mtime_ns
    digest = hashlib.sha256(f"{install}:{built}".encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"kiebot-pginstall-{digest}"
    if target.exists() and not _ours_and_sealed(target):
        # Somebody else made that path (we run these binaries): use a private copy instead.
        private = Path(tempfile.mkdtemp(prefix="kiebot-pginstall-"))
        os.chmod(private, 0o755)
        target = private / "copy"
    if not (target / "pgserver" / "pginstall" / "bin" / "pg_ctl").exists():
        staging = Path(tempfile.mkdtemp(prefix="kiebot-pginstall-"))
        shutil.copytree(install, staging / "pgserver" / "pginstall", symlinks=True)
        if libs.exists():
            shutil.copytree(libs, staging / "pgserver.libs")
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, target)
        except OSError:  # another process made the copy meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return target / "pgserver" / "pginstall" / "bin"


def _ours_and_sealed(path: Path) -> bool:
    info = path.stat()
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def server_version(bindir: Path) -> str:
    """Return what `postgres --version` prints, e.g. 'postgres (PostgreSQL) 16.2'."""
    return subprocess.run([str(bindir / "postgres"), "--version"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _server_user() -> str:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


class ThrowawayCluster:
    """A private PostgreSQL cluster in a temp dir; can be stopped and started (chaos tests)."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="kiebot-pg-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self._run_as = _server_user() if os.geteuid() == 0 else None
        if self._run_as is not None:
            shutil.chown(self.root, self._run_as)
            os.chmod(self.root, 0o755)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._run_as is not None:
            cmd = ["runuser", "-u", self._run_as, "--", *cmd]
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
