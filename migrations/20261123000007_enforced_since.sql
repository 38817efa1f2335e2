-- When the tenant last turned 2FA enforcement on: the grace period of every user already known
-- starts then (users first seen later start theirs when first seen). Kept by the `tenants`
-- projection; the back-fill below derives it from the policy events already recorded.
ALTER TABLE tenants ADD COLUMN enforced_since timestamptz;

UPDATE tenants t
SET enforced_since = (
    SELECT max((e.payload -> 'TwoFactorPolicySet' ->> 'set_at')::timestamptz)
    FROM events e
    WHERE e.aggregate_type = 'tenant'
      AND e.aggregate_id = t.tenant_id || '/tenant'
      AND e.event_type = 'TwoFactorPolicySet'
      AND (e.payload -> 'TwoFactorPolicySet' -> 'policy' ->> 'enforceTwoFactor')::boolean
      AND NOT (e.payload -> 'TwoFactorPolicySet' -> 'previous' ->> 'enforceTwoFactor')::boolean
)
WHERE (t.policy ->> 'enforceTwoFactor')::boolean;
