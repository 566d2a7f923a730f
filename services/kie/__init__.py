"""Kie.ai client: submit generations, read their state, verify callbacks, upload inputs.

Modules, one concern each:

    client.py     KieClient: one aiohttp session, Bearer key, envelope check, retry loop
    errors.py     KieError > KieRetryable | KieFinal, and the code classification
    ratelimit.py  TokenBucket: at most 20 createTask in any 10 s
    adapters.py   one adapter per Kie family: endpoints, request body, result fields
    state.py      TaskState: pending / running / succeeded (URLs) / failed (code, text)
    callbacks.py  task_id_of(body), verify_callback_signature (HMAC-SHA256, constant time)
    uploads.py    stream / base64 / URL upload -> downloadUrl; transfer_telegram_file
    failures.py   Kie's failure -> a short user text in ru and en

Reading an answer. Kie often says HTTP 200 with the error in the body: a call failed when the
HTTP status is not 2xx OR the body `code` is not 200; a body that is not JSON (a proxy's page)
is judged by its HTTP status. The error carries the code, a fixed meaning safe to log, and
Kie's text (scrubbed of the key, cut to 200 chars) as `detail`.

What is retried (KieRetryable): no answer (connection refused or broken, timeout; code 0),
408, 429 (rate limited; rejected tasks are not queued by Kie), 455 (maintenance), 5xx except
501/505, 550 (4o queue full), and a 2xx whose body is not JSON. The client retries these with
`supervisor.aio.Backoff` (1 s doubling, capped at 8 s), at most MAX_ATTEMPTS (4) attempts in
all, then raises, so a caller may also catch KieRetryable and try later itself. A createTask
is not retried after a timeout or a dropped connection once sent (`maybe_executed`): Kie may
have started the task, and a blind second attempt could pay for it twice.

What is final (KieFinal): 400 (invalid or policy-rejected), 401 (key), 402 (credits), 404,
405, 413, 422 (validation), 433, 451 (input file not downloadable), 501 (generation failed),
505 (feature disabled), 531 (Suno: failed, refunded) and every other code; also a 200 answer
missing what it must carry.

The bucket. Kie allows 20 new tasks per 10 s per account. Only the leader submits, so one
in-process bucket is exact: each spent token comes back exactly 10 s after it was spent (a
continuously refilling bucket could pass 22 in one window). Waiters queue FIFO on a lock and
the head sleeps until the oldest grant ages out; `available()` counts what would pass now;
the clock is injectable for tests.

The adapters (catalog `endpoint` -> family; 66 market + 7 family models = 73). Paths are
under /api/v1; status calls are GET ?taskId=; result paths are status | callback:

    market (66)   jobs/createTask, jobs/recordInfo
                  body {model: kie_model, input: params, callBackUrl}
                  result resultJson.resultUrls (JSON string or object; resultObject for text)
    Veo 3.1 (2)   veo/generate, veo/record-info
                  body params + model veo3_fast
                  result response.resultUrls | info.resultUrls (array or JSON string)
    4o Image      gpt4o-image/generate, gpt4o-image/record-info
                  body params + size 1:1 (required, not a catalog input)
                  result response.resultUrls | info.result_urls
    Flux Kontext  flux/kontext/generate, flux/kontext/record-info
                  body params + model flux-kontext-pro
                  result response.resultImageUrl | info.resultImageUrl
    Runway        runway/generate, runway/record-detail
                  body resolution -> quality, duration "5" -> 5, aspectRatio 16:9 for text
                  result videoInfo.videoUrl | data.video_url
    Suno          generate, generate/record-info
                  body params + customMode false, instrumental false, model V5,
                  callBackUrl (required)
                  result sunoData[].audioUrl | data.data[].audio_url; callbacks `text` and
                  `first` are RUNNING, only `complete` (or `error`) is terminal
    Midjourney    mj/generate, mj/record-info
                  body params + taskType mj_txt2img, version 7
                  result resultInfoJson.resultUrls[].resultUrl | data.resultUrls
                  (objects or strings)

States: market waiting/queuing, Runway wait/queueing, Suno PENDING are PENDING; a state the
adapter does not know is RUNNING (never terminal); "success" without any URL is FAILED with
code `no_result`.

Secrets: the Kie key only ever sits in the Authorization header of requests to Kie's hosts
(never a URL, log line, error or repr); a Telegram file URL (it carries the bot token) is
used for one GET and never logged, sent to Kie or put in an exception.
"""

from services.kie.adapters import Adapter, Family, adapter_for
from services.kie.callbacks import task_id_of, verify_callback_signature
from services.kie.client import KieClient
from services.kie.errors import FileTooLarge, KieError, KieFinal, KieRetryable
from services.kie.failures import FailureReason, failure_reason, failure_text
from services.kie.ratelimit import TokenBucket
from services.kie.state import TaskState, TaskStatus
from services.kie.uploads import transfer_telegram_file

__all__ = [
    "Adapter",
    "FailureReason",
    "Family",
    "FileTooLarge",
    "KieClient",
    "KieError",
    "KieFinal",
    "KieRetryable",
    "TaskState",
    "TaskStatus",
    "TokenBucket",
    "adapter_for",
    "failure_reason",
    "failure_text",
    "task_id_of",
    "transfer_telegram_file",
    "verify_callback_signature",
]
