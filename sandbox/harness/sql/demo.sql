-- Queries of the demo (`python -m supervisor demo`): read-only views of the Telegram inbox.

-- name: counts_by_status
-- Stored Telegram updates per status, for the live table.
SELECT status, count(*)::bigint AS n
  FROM telegram_updates
 GROUP BY status;

-- name: unhandled
-- The given update ids that are not handled to the end yet, with their status ('missing' when
-- never stored); an empty answer means every one is done or dead-lettered.
SELECT u.update_id, coalesce(t.status, 'missing') AS status
  FROM unnest(%(update_ids)s::bigint[]) AS u(update_id)
  LEFT JOIN telegram_updates t ON t.update_id = u.update_id
 WHERE t.status IS NULL OR t.status NOT IN ('done', 'failed')
 ORDER BY u.update_id;
