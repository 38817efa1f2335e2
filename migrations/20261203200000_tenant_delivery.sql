-- A tenant's own delivery providers, as the `tenants` projection keeps them from
-- `DeliverySettingsChanged`: the version, the facts that may be shown and the settings sealed
-- under the tenant's data key (credentials included, never in clear). NULL: the service's
-- providers. The directory trigger announces changes, so instances drop cached copies.
ALTER TABLE tenants ADD COLUMN delivery jsonb;

-- Finished jobs are pruned after TWOFOLD_DELIVERY_RETENTION (the delivery worker).
CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE status <> 'pending';
