-- Where this event database's data keys live (decision 160). A row is written the first time
-- the service starts with a separate key database (TWOFOLD_KEY_DATABASE_URL); from then on a
-- start without it is refused, so an instance or command that forgot the variable cannot make
-- keys here, report an erasure that destroyed nothing, or rotate nothing.
CREATE TABLE key_store (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    separate boolean NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Once the keys live elsewhere, no key may be written here, whatever the process: an instance
-- started before the switch, or without the variable, fails its seal instead of leaving a key
-- that an erasure through the key database would not destroy. (Only the event database ever
-- has the row, so the key database, which has this table too, is unaffected.)
CREATE FUNCTION keys_live_elsewhere() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM key_store WHERE separate) THEN
        RAISE EXCEPTION 'this database keeps its data keys in a separate key database (TWOFOLD_KEY_DATABASE_URL)';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER data_keys_live_elsewhere BEFORE INSERT ON data_keys
    FOR EACH ROW EXECUTE FUNCTION keys_live_elsewhere();
CREATE TRIGGER tenant_data_keys_live_elsewhere BEFORE INSERT ON tenant_data_keys
    FOR EACH ROW EXECUTE FUNCTION keys_live_elsewhere();
