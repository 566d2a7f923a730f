"""JSON-lines logging: one object per line, process context on every line, secrets masked."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator

import orjson
import pytest

from supervisor import logs
from supervisor.logs import SECRET_MASK, JsonFormatter, setup_logging

SECRET = "kie-secret-key-0123456789"
TOKEN = "123456789:TEST-token_abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and the log context back as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    context = (logs.CONTEXT.instance_id, logs.CONTEXT.role, logs.CONTEXT.term)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = handlers
        root.setLevel(level)
        logs.CONTEXT.instance_id, logs.CONTEXT.role, logs.CONTEXT.term = context


def capture(secrets: tuple[str, ...] = ()) -> tuple[logging.Logger, io.StringIO]:
    """Return a private logger writing JSON lines into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter(secrets))
    logger = logging.getLogger(f"test.logs.{id(buffer)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, buffer


def lines_of(buffer: io.StringIO) -> list[dict[str, object]]:
    """Parse every line of the buffer as one JSON object."""
    text = buffer.getvalue()
    assert text.endswith("\n")
    return [orjson.loads(line) for line in text.splitlines()]


def test_each_record_is_one_json_object_on_one_line() -> None:
    logger, buffer = capture()
    logger.info("first_event")
    logger.warning("second\nevent with a newline", extra={"note": "a\nb"})
    entries = lines_of(buffer)
    assert len(entries) == 2
    assert entries[0]["event"] == "first_event"
    assert entries[1]["event"] == "second\nevent with a newline"
    assert entries[1]["note"] == "a\nb"


def test_every_line_has_ts_level_logger_event_and_process_context() -> None:
    logs.CONTEXT.instance_id = "inst-7"
    logs.CONTEXT.role = "leader"
    logs.CONTEXT.term = 42
    logger, buffer = capture()
    logger.info("leader_promoted", extra={"waited_ms": 3.1, "holder": "inst-7"})
    (entry,) = lines_of(buffer)
    assert isinstance(entry["ts"], float)
    assert entry["level"] == "INFO"
    assert entry["logger"] == logger.name
    assert entry["event"] == "leader_promoted"
    assert (entry["instance"], entry["role"], entry["term"]) == ("inst-7", "leader", 42)
    assert entry["waited_ms"] == 3.1
    assert entry["holder"] == "inst-7"


def test_context_changes_show_on_the_next_line() -> None:
    logger, buffer = capture()
    logs.CONTEXT.role, logs.CONTEXT.term = "candidate", None
    logger.info("one")
    logs.CONTEXT.role, logs.CONTEXT.term = "leader", 3
    logger.info("two")
    first, second = lines_of(buffer)
    assert (first["role"], first["term"]) == ("candidate", None)
    assert (second["role"], second["term"]) == ("leader", 3)


def test_extra_values_that_are_not_json_are_stringified() -> None:
    logger, buffer = capture()
    class Thing:
        def __str__(self) -> str:
            return "thing!"

    logger.info("odd", extra={"path": Thing()})
    (entry,) = lines_of(buffer)
    assert entry["path"] == "thing!"


def test_exception_is_included_with_its_traceback() -> None:
    logger, buffer = capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (entry,) = lines_of(buffer)
    assert entry["level"] == "ERROR"
    assert "Traceback" in entry["exc"] and "ValueError: boom" in entry["exc"]


def test_secret_values_are_masked_in_event_extra_and_exception() -> None:
    logger, buffer = capture((SECRET, TOKEN))
    try:
        raise ConnectionError(f"request with key {SECRET} to bot{TOKEN}/getMe failed")
    except ConnectionError as exc:
        logger.exception("call failed: %s", exc, extra={"header": f"Bearer {SECRET}"})
    text = buffer.getvalue()
    assert SECRET not in text and TOKEN not in text
    (entry,) = lines_of(buffer)
    assert f"key {SECRET_MASK} to bot{SECRET_MASK}/getMe" in entry["exc"]
    assert SECRET_MASK in entry["event"]
    assert entry["header"] == f"Bearer {SECRET_MASK}"


def test_a_secret_containing_another_is_masked_whole() -> None:
    short = "abcdef1234567890"
    long = f"{short}-and-more-secret"
    logger, buffer = capture((short, long))
    logger.info(f"value={long}")
    (entry,) = lines_of(buffer)
    assert entry["event"] == f"value={SECRET_MASK}"


def test_a_value_too_short_to_be_a_secret_never_rewrites_the_line() -> None:
    logger, buffer = capture(("e", "level", "0123456789abcde"))
    logger.info("the_event", extra={"key": "0123456789abcde"})
    (entry,) = lines_of(buffer)
    assert (entry["level"], entry["event"], entry["key"]) == ("INFO", "the_event",
                                                              "0123456789abcde")


def test_python_warnings_are_logged_as_json_lines_not_raw_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        setup_logging(level="INFO", instance_id="inst-w")
        warnings.warn("Detected unknown update type", RuntimeWarning, stacklevel=1)
    (line,) = capsys.readouterr().err.splitlines()
    entry = orjson.loads(line)
    assert (entry["level"], entry["logger"], entry["event"], entry["instance"]) == (
        "WARNING", "py.warnings", "python_warning", "inst-w")
    assert "RuntimeWarning: Detected unknown update type" in entry["warning"]


def test_setup_logging_masks_configured_secrets_on_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(level="DEBUG", instance_id="inst-9", secrets=(SECRET, "", TOKEN))
    logger = logging.getLogger("test.logs.setup")
    try:
        raise RuntimeError(f"Kie refused key {SECRET}")
    except RuntimeError:
        logger.exception("kie_failed")
    logging.getLogger("test.logs.setup").debug("debug_visible")
    err = capsys.readouterr().err
    assert SECRET not in err and TOKEN not in err
    entries = [orjson.loads(line) for line in err.splitlines()]
    assert [e["event"] for e in entries] == ["kie_failed", "debug_visible"]
    assert entries[0]["instance"] == "inst-9"
    assert f"Kie refused key {SECRET_MASK}" in entries[0]["exc"]


def test_setup_logging_replaces_handlers_and_quiets_the_access_log() -> None:
    setup_logging(level="WARNING")
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    assert root.level == logging.WARNING
    assert logging.getLogger("aiohttp.access").level == logging.WARNING
