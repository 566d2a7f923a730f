-- name: overrides
-- Every operator override of the catalog (a small table: one row per touched model).
SELECT model_id, enabled, price_kop FROM model_overrides;

-- name: override
-- One model's override, if an operator set one (read inside a request's transaction).
SELECT model_id, enabled, price_kop FROM model_overrides WHERE model_id = %(model_id)s;

-- name: set_override
-- Turn a model on or off and set or clear its price override, by an operator.
INSERT INTO model_overrides (model_id, enabled, price_kop, updated_by)
VALUES (%(model_id)s, %(enabled)s, %(price_kop)s, %(updated_by)s)
ON CONFLICT (model_id) DO UPDATE
   SET enabled = EXCLUDED.enabled, price_kop = EXCLUDED.price_kop,
       updated_by = EXCLUDED.updated_by, updated_at = now();
