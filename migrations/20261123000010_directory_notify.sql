-- Instances cache tenants and API keys in memory (every request authenticates a key and reads
-- its tenant's policy). Any change to either read model is announced, with the tenant's id,
-- when it commits, so every instance drops what it cached about that tenant.
CREATE FUNCTION directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('twofold_directory', OLD.tenant_id);
    ELSE
        PERFORM pg_notify('twofold_directory', NEW.tenant_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION directory_changed();
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION directory_changed();
