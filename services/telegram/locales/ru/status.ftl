## Сообщение о статусе генерации (им становится карточка подтверждения) и кнопки под результатом
## (services/generation/status_messages.py, services/telegram/results.py, handlers/results.py).

status-queued = ⏳ { $model }: в очереди. Результат пришлю сюда.
status-generating = ⚙️ { $model }: генерируется…
status-generating-for = ⚙️ { $model }: генерируется… { $elapsed }
status-done = ✅ { $model }: готово за { $elapsed }. Результат ниже.
status-failed = ❌ { $model }: не получилось. { $reason }
    Деньги не списаны: резерв вернулся на баланс.
status-expired = ⌛ { $model }: результата не дождались.
    Деньги не списаны: резерв вернулся на баланс.
status-undelivered = ❌ { $model }: результат не удалось доставить.

result-repeat = ↻ Повторить
result-change = ✏️ Изменить параметры
result-other = 🔎 Другая модель
result-next = { $model }: что дальше?
