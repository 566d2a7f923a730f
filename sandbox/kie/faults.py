"""Fault rules of the Kie sandbox (POST /_sandbox/faults), matched by model or family.

Kinds (every rule has `model`: a market model, a family API model such as `veo3_fast`, a
family name such as `veo`, or `*`; the most specific rule wins):

- `request`: the next `fail_next` calls of `op` (create, status, upload, credit,
  download_url) answer `code`/`msg`, after holding the request `hang_ms` (a client timeout);
  with `created` (create only) the task is created first, so only the answer is lost.
- `task`: standing `duration_ms`, `fail_rate` and `result_bytes`; the next `fail_next` tasks
  end in `fail` with `fail_code`/`fail_msg`.
- `callback`: the next `fail_next` tasks' callbacks are `lost`, sent `duplicate` extra times,
  `delay_ms` late, `out_of_order` (held back behind the next task's callback; a family with
  several callbacks sends them in reverse), `early` (before the createTask answer),
  `unsigned` or with a `bad_signature`.
- `result`: the next `fail_next` tasks' result URLs are `missing` (404), expire after
  `ttl_ms`, or answer 503 to their first `failing_reads` requests (a lagging CDN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from sandbox.common.faults import (
    ANY,
    Chance,
    RuleTable,
    bool_field,
    int_field,
    number_field,
    reject_unknown,
    str_field,
)
from sandbox.kie.config import MAX_MEDIA_BYTES
from sandbox.kie.envelope import KieError

KINDS: Final[frozenset[str]] = frozenset({"request", "task", "callback", "result"})
OPS: Final[frozenset[str]] = frozenset({"create", "status", "upload", "credit", "download_url"})
MAX_COUNT: Final[int] = 10_000_000
MAX_HANG_MS: Final[int] = 600_000
MAX_DELAY_MS: Final[int] = 600_000
MAX_DUPLICATES: Final[int] = 10
MAX_FAILING_READS: Final[int] = 1_000
DEFAULT_FAIL_CODE: Final[str] = "500"
DEFAULT_FAIL_MSG: Final[str] = "Internal Error, Please try again later."


@dataclass(slots=True)
class RequestRule:
    """Fail or hang the next calls of one operation."""

    op: str
    model: str
    fail_next: int = 1
    code: int | None = None
    msg: str | None = None
    hang_ms: int = 0
    created: bool = False

    def is_spent(self) -> bool:
        """Tell whether no call is left to fault."""
        return self.fail_next <= 0

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a JSON-ready dict."""
        return {"kind": "request", **asdict(self)}

    def error(self) -> KieError | None:
        """Return the error this rule answers with (None: answer normally after the hang)."""
        return KieError(self.code, self.msg) if self.code is not None else None


@dataclass(slots=True)
class TaskRule:
    """Shape how tasks of a model run and end."""

    model: str
    fail_next: int = 0
    duration_ms: int | None = None
    fail_rate: float = 0.0
    fail_code: str = DEFAULT_FAIL_CODE
    fail_msg: str = DEFAULT_FAIL_MSG
    result_bytes: int | None = None

    def is_spent(self) -> bool:
        """Tell whether the rule has neither a countdown nor a standing effect left."""
        return (
            self.fail_next <= 0
            and self.duration_ms is None
            and self.fail_rate <= 0
            and self.result_bytes is None
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a JSON-ready dict."""
        return {"kind": "task", **asdict(self)}


@dataclass(slots=True)
class CallbackRule:
    """Disturb the callbacks of the next tasks."""

    model: str
    fail_next: int = 1
    lost: bool = False
    duplicate: int = 0
    delay_ms: int = 0
    out_of_order: bool = False
    early: bool = False
    unsigned: bool = False
    bad_signature: bool = False

    def is_spent(self) -> bool:
        """Tell whether no task is left to disturb."""
        return self.fail_next <= 0

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a JSON-ready dict."""
        return {"kind": "callback", **asdict(self)}


@dataclass(slots=True)
class ResultRule:
    """Break the result URLs of the next tasks."""

    model: str
    fail_next: int = 1
    missing: bool = False
    ttl_ms: int | None = None
    failing_reads: int = 0

    def is_spent(self) -> bool:
        """Tell whether no task is left to break."""
        return self.fail_next <= 0

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a JSON-ready dict."""
        return {"kind": "result", **asdict(self)}


AnyRule = RequestRule | TaskRule | CallbackRule | ResultRule
Key = tuple[str, str, str]  # (kind, op, model)


@dataclass(slots=True)
class TaskPlan:
    """How one task will run, decided when it is created."""

    duration_s: float
    fail: bool
    fail_code: str
    fail_msg: str
    result_bytes: int | None
    callback: CallbackRule | None
    result: ResultRule | None


def parse_rule(payload: dict[str, Any]) -> tuple[Key, AnyRule]:
    """Validate one rule payload and return its table key and the rule."""
    kind = payload.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    model = str_field(payload, "model", ANY) or ANY
    count = int_field(payload, "fail_next", 1 if kind != "task" else 0, low=0, high=MAX_COUNT)
    common = {"kind", "model", "fail_next"}
    if kind == "request":
        reject_unknown(payload, common | {"op", "code", "msg", "hang_ms", "created"})
        op = payload.get("op")
        if op not in OPS:
            raise ValueError(f"op must be one of {sorted(OPS)}")
        code = payload.get("code")
        if code is not None:
            code = int_field(payload, "code", 500, low=400, high=599)
        hang_ms = int_field(payload, "hang_ms", 0, low=0, high=MAX_HANG_MS)
        if code is None and hang_ms == 0:
            raise ValueError("a request rule needs code or hang_ms")
        created = bool_field(payload, "created")
        if created and op != "create":
            raise ValueError("created only applies to op create")
        rule: AnyRule = RequestRule(
            op, model, count, code, str_field(payload, "msg", None), hang_ms, created
        )
        return (kind, op, model), rule
    if kind == "task":
        allowed = {"duration_ms", "fail_rate", "fail_code", "fail_msg", "result_bytes"}
        reject_unknown(payload, common | allowed)
        duration = payload.get("duration_ms")
        size = payload.get("result_bytes")
        rule = TaskRule(
            model,
            count,
            None
            if duration is None
            else int_field(payload, "duration_ms", 0, low=0, high=MAX_DELAY_MS),
            number_field(payload, "fail_rate", 0.0, low=0.0, high=1.0) or 0.0,
            str_field(payload, "fail_code", DEFAULT_FAIL_CODE) or DEFAULT_FAIL_CODE,
            str_field(payload, "fail_msg", DEFAULT_FAIL_MSG) or DEFAULT_FAIL_MSG,
            None
            if size is None
            else int_field(payload, "result_bytes", 0, low=0, high=MAX_MEDIA_BYTES),
        )
        return (kind, "", model), rule
    if kind == "callback":
        flags = ("lost", "out_of_order", "early", "unsigned", "bad_signature")
        reject_unknown(payload, common | {"duplicate", "delay_ms", *flags})
        rule = CallbackRule(
            model,
            count,
            duplicate=int_field(payload, "duplicate", 0, low=0, high=MAX_DUPLICATES),
            delay_ms=int_field(payload, "delay_ms", 0, low=0, high=MAX_DELAY_MS),
            **{flag: bool_field(payload, flag) for flag in flags},
        )
        return (kind, "", model), rule
    reject_unknown(payload, common | {"missing", "ttl_ms", "failing_reads"})
    ttl = payload.get("ttl_ms")
    rule = ResultRule(
        model,
        count,
        bool_field(payload, "missing"),
        None if ttl is None else int_field(payload, "ttl_ms", 0, low=0, high=MAX_DELAY_MS),
        int_field(payload, "failing_reads", 0, low=0, high=MAX_FAILING_READS),
    )
    return (kind, "", model), rule


class KieFaults:
    """Hold the rules and answer "what happens to this call / task?"."""

    def __init__(self, seed: int = 0) -> None:
        """Start with no rules; failure rates draw from a generator seeded with `seed`."""
        self._table: RuleTable[Key, Any] = RuleTable()
        self._chance = Chance(seed)

    def __bool__(self) -> bool:
        """Tell whether any rule is active."""
        return bool(self._table)

    def add(self, payload: dict[str, Any]) -> None:
        """Validate and add (or replace) one rule."""
        key, rule = parse_rule(payload)
        self._table.set(key, rule)

    def clear(self, seed: int | None = None) -> None:
        """Remove every rule (and restart the failure-rate sequence from `seed`)."""
        self._table.clear()
        if seed is not None:
            self._chance.reseed(seed)

    def rules(self) -> list[dict[str, Any]]:
        """Return every rule as a dict."""
        return self._table.rules()

    def _keys(self, kind: str, op: str, names: tuple[str, ...]) -> list[Key]:
        """Return the table keys to look at, most specific first."""
        return [(kind, op, name) for name in (*names, ANY)]

    def _fire(self, kind: str, op: str, names: tuple[str, ...]) -> Any:
        """Consume and return the first matching rule with a countdown left."""
        if not self._table:
            return None
        for key in self._keys(kind, op, names):
            rule = self._table.get(key)
            if rule is not None and self._table.fire(key, rule):
                return rule
        return None

    def request(self, op: str, *names: str) -> RequestRule | None:
        """Return the request rule that faults this call, if any."""
        rule: RequestRule | None = self._fire("request", op, names)
        return rule

    def plan(self, default_duration_s: float, *names: str) -> TaskPlan:
        """Decide a new task's duration, outcome, result size and callback/result faults."""
        duration_s, fail, code, msg, size = default_duration_s, False, "", "", None
        if self._table:
            rules: list[TaskRule] = self._table.matching(self._keys("task", "", names))
            fired: TaskRule | None = self._fire("task", "", names)
            for rule in rules:
                if rule.duration_ms is not None:
                    duration_s = rule.duration_ms / 1000
                    break
            size = next((r.result_bytes for r in rules if r.result_bytes is not None), None)
            chosen = fired or next(
                (r for r in rules if r.fail_rate > 0 and self._chance.hit(r.fail_rate)), None
            )
            if chosen is not None:
                fail, code, msg = True, chosen.fail_code, chosen.fail_msg
        return TaskPlan(
            duration_s,
            fail,
            code,
            msg,
            size,
            self._fire("callback", "", names),
            self._fire("result", "", names),
        )
