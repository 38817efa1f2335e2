-- Hosted pages (issue 19): the trusted-device token a hosted sign-in made, sealed under the
-- tenant's data key until the tenant's backend redeems the result (and deleted with the row).
ALTER TABLE hosted_results ADD COLUMN device_token text;
