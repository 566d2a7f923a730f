## A generation's status message (the confirm card it replaces) and the buttons under its result
## (services/generation/status_messages.py, services/telegram/results.py, handlers/results.py).

status-queued = ⏳ { $model }: queued. I will send the result here.
status-generating = ⚙️ { $model }: generating…
status-generating-for = ⚙️ { $model }: generating… { $elapsed }
status-done = ✅ { $model }: done in { $elapsed }. The result is below.
status-failed = ❌ { $model }: it did not work. { $reason }
    You were not charged: the hold is back on your balance.
status-expired = ⌛ { $model }: no result in time.
    You were not charged: the hold is back on your balance.
status-undelivered = ❌ { $model }: the result could not be delivered.

result-repeat = ↻ Repeat
result-change = ✏️ Change parameters
result-other = 🔎 Another model
result-next = { $model }: what next?
