"""Run several real instance processes (and the Telegram sandbox) on this machine.

Used by the demo, the e2e tests, the chaos tests and the benchmarks: each member is a real
`python -m ...` process with its own INSTANCE_ID and PORT, its output in a log file, and
observed only through its HTTP endpoints and the database, as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from sandbox.harness.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT_S = 0.5
STOP_TIMEOUT_S = 25.0
SANDBOX_START_TIMEOUT_S = 20.0


def wait_until(predicate: Callable[[], object], timeout_s: float,
               interval_s: float = 0.02) -> bool:
    """Poll a condition until it is true or timeout_s passes; return whether it came true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def get_json(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> dict[str, object] | None:
    """GET url and return its JSON body (also for 4xx/5xx), or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return orjson.loads(exc.read())
        except orjson.JSONDecodeError:
            return None
    except (OSError, orjson.JSONDecodeError):
        return None


@dataclass
class Member:
    """One instance process."""

    index: int
    instance_id: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Tell whether the process is running."""
        return self.process is not None and self.process.poll() is None


class InstanceCluster:
    """N instance processes sharing one environment (each with its own id and port)."""

    def __init__(self, n: int, *, command: Sequence[str], env: Mapping[str, str],
                 logs_dir: Path | None = None, name: str = "i") -> None:
        self.logs_dir = logs_dir or Path(tempfile.mkdtemp(prefix="kiebot-cluster-"))
        self._command = list(command)
        self.env = dict(env)
        self._name = name
        self._generation = 0
        self.members = [self._new_member(i, free_port()) for i in range(n)]

    def _new_member(self, index: int, port: int) -> Member:
        self._generation += 1
        instance_id = f"{self._name}{index}-g{self._generation}"
        return Member(index, instance_id, port, self.logs_dir / f"{instance_id}.log")

    @property
    def urls(self) -> list[str]:
        """Return every member's base URL (stable across restarts: a slot keeps its port)."""
        return [member.url for member in self.members]

    def start(self, index: int | None = None) -> None:
        """Start one member (or all); a restarted member gets a new instance id, same port."""
        for i in range(len(self.members)) if index is None else [index]:
            member = self.members[i]
            if member.process is not None:
                member = self.members[i] = self._new_member(i, member.port)
            env = self.env | {"INSTANCE_ID": member.instance_id, "PORT": str(member.port),
                               "PATH": os.environ.get("PATH", "")}
            with member.log_path.open("ab") as log:
                member.process = subprocess.Popen(
                    [sys.executable, *self._command], env=env, cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, index: int, sig: signal.Signals) -> float:
        """Send sig to a member; return the wall-clock instant just before."""
        process = self.members[index].process
        assert process is not None, "member was never started"
        at = time.time()
        process.send_signal(sig)
        return at

    def wait_exit(self, index: int, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for a member's process to exit; return its code."""
        process = self.members[index].process
        assert process is not None, "member was never started"
        return process.wait(timeout=timeout_s)

    def reap(self, index: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Wait for a faulted member to exit; SIGKILL it if it takes longer than timeout_s."""
        try:
            self.wait_exit(index, timeout_s)
        except subprocess.TimeoutExpired:
            process = self.members[index].process
            if process is not None:
                process.kill()
                process.wait()

    def stop(self) -> None:
        """Stop every member: SIGTERM (after SIGCONT), then SIGKILL whatever lingers."""
        running = [m.process for m in self.members if m.alive()]
        for process in running:
            assert process is not None
            process.send_signal(signal.SIGCONT)
            process.terminate()
        for process in running:
            assert process is not None
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def health(self, index: int) -> dict[str, object] | None:
        """Return a member's /health document, or None if it does not answer."""
        return get_json(self.members[index].url + "/health")

    def roles(self) -> list[str | None]:
        """Return each member's role as its /health says (None if it does not answer)."""
        docs = [self.health(i) for i in range(len(self.members))]
        return [str(doc["role"]) if doc else None for doc in docs]

    def leader_index(self) -> int | None:
        """Return the index of the member whose /health says leader (first one), or None."""
        roles = self.roles()
        return roles.index("leader") if "leader" in roles else None

    def wait_leader(self, timeout_s: float = 30.0) -> int:
        """Wait until exactly one member says it leads; return its index."""
        found: list[int] = []

        def one_leader() -> bool:
            roles = self.roles()
            if roles.count("leader") == 1:
                found.append(roles.index("leader"))
                return True
            return False

        if not wait_until(one_leader, timeout_s, interval_s=0.05):
            raise AssertionError(f"no single leader within {timeout_s} s: {self.roles()};"
                                 f" logs in {self.logs_dir}")
        return found[-1]

    def wait_all_answering(self, timeout_s: float = 30.0) -> None:
        """Wait until every member's /health answers."""
        if not wait_until(lambda: None not in self.roles(), timeout_s, interval_s=0.05):
            raise AssertionError(f"not every member answers /health: {self.roles()};"
                                 f" logs in {self.logs_dir}")

    def index_of(self, instance_id: str) -> int:
        """Return the member index running instance_id."""
        return next(m.index for m in self.members if m.instance_id == instance_id)


class ServerProcess:
    """A helper server (`python -m sandbox.telegram`, `python -m sandbox.harness.balancer`)
    that prints one JSON line with its `base_url` when it is up."""

    def __init__(self, module: str, args: Sequence[str], log_path: Path) -> None:
        self._module = module
        self._args = list(args)
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def start(self) -> str:
        """Start the server and return its base URL once it is listening."""
        stdout_path = self._log_path.with_suffix(".out")
        with stdout_path.open("wb") as out, self._log_path.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self._module, *self._args], cwd=ROOT, stdout=out,
                stderr=err, start_new_session=True,
                env={"PATH": os.environ.get("PATH", "")})

        def announced() -> bool:
            for line in stdout_path.read_text().splitlines():
                doc = orjson.loads(line)
                if isinstance(doc, dict) and doc.get("base_url"):
                    self.base_url = str(doc["base_url"])
                    return True
            return False

        if not wait_until(announced, SANDBOX_START_TIMEOUT_S, interval_s=0.05):
            self.stop()
            raise RuntimeError(f"{self._module} did not start; see {self._log_path}")
        return self.base_url

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
