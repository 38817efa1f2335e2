-- The reservation's statements are planned once per session (round 11 of docs/benchmark.md).
--
-- Left to choose, PostgreSQL planned the count of a batch's caps afresh at most calls: its array
-- arguments make a custom plan look cheaper than the generic one, and the planning cost more
-- than the count itself (about 150 µs of the 600 a reservation took). The function already runs
-- without sequential scans, so its generic plans find counts by key whatever the table's size
-- when they were made. No JIT: any scan that cannot be avoided would carry the disabled scan's
-- cost estimate past the JIT threshold and be compiled at every call.
ALTER FUNCTION twofold_reserve_send_counts(
    integer, integer[], integer[], text[], bigint[], timestamptz[], timestamptz[], bigint,
    timestamptz, integer)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION twofold_reserve_send_counts(
    integer, integer[], integer[], text[], bigint[], timestamptz[], timestamptz[], bigint,
    timestamptz, integer)
    SET jit = off;
