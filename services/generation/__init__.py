"""Generation jobs, database side: request (hold), submission and callback bookkeeping,
settlement (commit / release once per job), delivery bookkeeping, and the invariant audit.

Every function takes a connection and runs inside the caller's transaction: fenced on the
leader (`async with leadership.fenced(pool) as conn`), except `store_callback` and
`store_task_callback`, which any instance runs when Kie calls it back. No HTTP, no loops.
"""

from services.generation.callbacks import (
    apply_callbacks,
    pending_callbacks,
    reconcile_orphans,
    store_callback,
    store_poll_result,
    store_task_callback,
)
from services.generation.delivery import (
    claim_deliveries,
    claim_deliveries_with_languages,
    read_job,
    record_delivered,
    record_unavailable,
    record_undeliverable,
    release_delivery,
    user_history,
)
from services.generation.errors import (
    CallbackUnauthorized,
    GenerationError,
    JobNotFound,
    RequestConflict,
)
from services.generation.invariants import Violation, audit
from services.generation.request import (
    ActiveJobsLimit,
    Created,
    Duplicate,
    FreeQuotaExhausted,
    InsufficientFunds,
    InvalidParams,
    JobLimits,
    ModelUnavailable,
    PriceChanged,
    RequestOutcome,
    request_generation,
)
from services.generation.settlement import (
    Failed,
    Outcome,
    Settlement,
    Succeeded,
    apply_outcome,
    expire_overdue,
    expiry_deadlines,
    refund_charge,
)
from services.generation.store import CALLBACKS_CHANNEL, CallbackSource, Job, JobStatus
from services.generation.submission import (
    SubmitTicket,
    begin_submit,
    claim_for_poll,
    claim_pending,
    record_submitted,
    release_submit,
)

__all__ = [
    "CALLBACKS_CHANNEL",
    "ActiveJobsLimit",
    "CallbackSource",
    "CallbackUnauthorized",
    "Created",
    "Duplicate",
    "Failed",
    "FreeQuotaExhausted",
    "GenerationError",
    "InsufficientFunds",
    "InvalidParams",
    "Job",
    "JobLimits",
    "JobNotFound",
    "JobStatus",
    "ModelUnavailable",
    "Outcome",
    "PriceChanged",
    "RequestConflict",
    "RequestOutcome",
    "Settlement",
    "SubmitTicket",
    "Succeeded",
    "Violation",
    "apply_callbacks",
    "apply_outcome",
    "audit",
    "begin_submit",
    "claim_deliveries",
    "claim_deliveries_with_languages",
    "claim_for_poll",
    "claim_pending",
    "expire_overdue",
    "expiry_deadlines",
    "pending_callbacks",
    "read_job",
    "reconcile_orphans",
    "record_delivered",
    "record_submitted",
    "record_unavailable",
    "record_undeliverable",
    "refund_charge",
    "release_delivery",
    "release_submit",
    "request_generation",
    "store_callback",
    "store_poll_result",
    "store_task_callback",
    "user_history",
]
