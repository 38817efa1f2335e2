-- Which master key wrapped each data key, so a rotation (`twofold keys rotate`) knows what is
-- left to rewrap and an instance knows which of its keys to try. NULL: wrapped before ids were
-- recorded, by whichever master key was configured then.
ALTER TABLE tenant_data_keys ADD COLUMN master_key_id text
    CHECK (master_key_id ~ '^[0-9a-f]{16}$');
