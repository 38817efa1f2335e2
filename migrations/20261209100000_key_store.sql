-- Where this event database's data keys live (decision 160). A row is written the first time
-- the service starts with a separate key database (TWOFOLD_KEY_DATABASE_URL); from then on a
-- start without it is refused, so an instance or command that forgot the variable cannot make
-- keys here, report an erasure that destroyed nothing, or rotate nothing.
CREATE TABLE key_store (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    separate boolean NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
