"""Every CLI command validates the environment first: exit 78 before any network I/O."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config import REQUIRED_ENV_KEYS
from tests.helpers import BOT_TOKEN, KIE_KEY, make_env

ROOT = Path(__file__).resolve().parents[2]
EXIT_CONFIG = 78
# A non-routable address: connecting would hang until a timeout, so a fast exit proves that
# validation ran before any connection attempt.
DB_PASSWORD = "hang-pass-7f3a9c"
HANGING_DB_URL = f"postgresql://u:{DB_PASSWORD}@10.255.255.1:5432/db"
# The one bound on time in this file: generous for interpreter start-up, far below any
# connect timeout.
INSTANT_S = 5.0
COMMANDS = [["run"], ["migrate"], ["migrate", "--status", "--json"], ["check"],
            ["status"], ["status", "--json"]]


def run_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                            float]:
    """Run `python -m supervisor <args>` from the repo root; return the result and duration."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    return result, time.monotonic() - started


def bare_env(**extra: str) -> dict[str, str]:
    """Return an environment with only PATH (plus extra)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_empty_environment_exits_78_listing_every_required_key(args: list[str]) -> None:
    result, _ = run_cli(args, bare_env())
    assert result.returncode == EXIT_CONFIG, result.stderr
    for key in REQUIRED_ENV_KEYS:
        assert f"{key}: missing" in result.stderr, key
    assert result.stdout == ""


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_one_invalid_key_exits_78_at_once_without_connecting(args: list[str]) -> None:
    env = bare_env(**make_env(HANGING_DB_URL, DB_MAXCONN="1", PORT="10000"))
    result, elapsed = run_cli(args, env)
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "DB_MAXCONN: must be between 2 and 100" in result.stderr
    assert elapsed < INSTANT_S, f"took {elapsed:.1f} s: a connection was attempted"
    output = result.stdout + result.stderr
    for secret in (DB_PASSWORD, HANGING_DB_URL, BOT_TOKEN, KIE_KEY):
        assert secret not in output


def test_config_error_names_only_the_bad_keys() -> None:
    env = bare_env(**make_env(HANGING_DB_URL, DB_MAXCONN="1", BOT_MODE="pull", PORT="10000"))
    result, _ = run_cli(["check"], env)
    assert result.returncode == EXIT_CONFIG
    problem_lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert [line.split(":")[0].strip(" -") for line in problem_lines] == ["BOT_MODE",
                                                                          "DB_MAXCONN"]


def test_unknown_command_is_a_usage_error() -> None:
    result, _ = run_cli(["frobnicate"], bare_env())
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
