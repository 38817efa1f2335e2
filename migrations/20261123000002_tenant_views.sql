-- Read models of the tenant aggregate, kept by the `tenants` projection.
CREATE TABLE tenants (
    tenant_id  text        PRIMARY KEY,
    name       text        NOT NULL,
    policy     jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- API keys by keyed hash: how a bearer key is authenticated on every request.
CREATE TABLE api_keys (
    tenant_id  text        NOT NULL,
    key_id     text        NOT NULL,
    role       text        NOT NULL,
    label      text        NOT NULL,
    key_hash   text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);
