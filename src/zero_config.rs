//! The zero-configuration default: a private PostgreSQL in the data folder, generated dev
//! secrets, a `demo` tenant with one key per role, and a banner saying how to use them.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use twofold_domain::Role;
use twofold_infra::config::{write_private, Settings};
use twofold_infra::pg::ensure_database;
use twofold_pg_local::{LocalPgOptions, LocalPostgres};
use twofold_services::{Call, KeyPrincipal, RequestContext, ServiceError};

use crate::startup::Wiring;

/// The database name the service uses on its private cluster.
const DATABASE: &str = "twofold";
/// The demo tenant's id.
pub const DEMO_TENANT: &str = "demo";

/// Where the service's database is, and the private cluster if this process started one.
pub struct Database {
    /// Connection URL.
    pub url: String,
    /// The private cluster (zero-config mode only).
    pub local: Option<LocalPostgres>,
    /// Whether this process started the private cluster (rather than finding it running, e.g.
    /// under a `serve` in another terminal): only then should it stop it when done.
    pub started_here: bool,
}

/// `DATABASE_URL` when set; otherwise starts (or reuses) the private cluster in
/// `<data dir>/pg` and makes sure the service's database exists on it.
pub async fn database(settings: &Settings) -> anyhow::Result<Database> {
    if let Some(url) = &settings.database_url {
        return Ok(Database {
            url: url.clone(),
            local: None,
            started_here: false,
        });
    }
    let dir = absolute(&settings.data_dir.join("pg"))?;
    let was_running = dir.join("data/postmaster.pid").exists();
    let local =
        tokio::task::spawn_blocking(move || LocalPostgres::start(&dir, &LocalPgOptions::default()))
            .await
            .context("starting the private PostgreSQL")??;
    ensure_database(&local.url("postgres"), DATABASE)
        .await
        .context("creating the service database on the private PostgreSQL")?;
    Ok(Database {
        // The server is on this machine: its Unix-domain socket spares every round trip the
        // TCP/IP stack (decision 73).
        url: local.socket_url(DATABASE),
        local: Some(local),
        started_here: !was_running,
    })
}

fn absolute(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

/// The demo tenant's keys, kept in `<data dir>/demo-keys.json` (mode 0600) so every start can
/// print them (the service itself stores only their hashes).
#[derive(Debug, Serialize, Deserialize)]
pub struct DemoKeys {
    /// ADMIN key.
    pub admin: String,
    /// APP key.
    pub app: String,
    /// AUDITOR key.
    pub auditor: String,
}

/// Creates the `demo` tenant and its keys on first start; later starts read the saved keys.
pub async fn demo_keys(wiring: &Wiring, data_dir: &Path) -> anyhow::Result<Option<DemoKeys>> {
    let path = data_dir.join("demo-keys.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let keys: DemoKeys = serde_json::from_str(&text).context("reading demo-keys.json")?;
        // Keys only work under the pepper they were hashed with: if the dev secrets changed,
        // say so instead of printing keys that will be refused.
        if wiring.auth.authenticate(&keys.admin).await.is_err() {
            tracing::warn!(
                "the keys in {} no longer authenticate (were the dev secrets replaced?); \
                 delete the data folder to start afresh",
                path.display()
            );
            return Ok(None);
        }
        return Ok(Some(keys));
    }
    let ctx = RequestContext::system("zero-config-bootstrap");
    let created = match wiring
        .tenants
        .create_tenant("Demo", Some(DEMO_TENANT), &ctx)
        .await
    {
        Ok(created) => created,
        Err(ServiceError::Conflict(_)) => {
            tracing::warn!(
                "the demo tenant exists but {} is missing: its keys cannot be shown again",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("creating the demo tenant")),
    };
    let admin = KeyPrincipal {
        tenant_id: created.tenant.id.clone(),
        key_id: created.admin_key.key.id.clone(),
        role: Role::Admin,
    };
    let admin = Call::new(admin, ctx);
    let app = wiring
        .tenants
        .issue_api_key(&admin, Role::App, "demo app key")
        .await
        .context("issuing the demo APP key")?;
    let auditor = wiring
        .tenants
        .issue_api_key(&admin, Role::Auditor, "demo auditor key")
        .await
        .context("issuing the demo AUDITOR key")?;
    let keys = DemoKeys {
        admin: created.admin_key.secret,
        app: app.secret,
        auditor: auditor.secret,
    };
    write_private(&path, &serde_json::to_string_pretty(&keys)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(keys))
}

/// What a developer needs to start using the service, printed once at start-up.
pub fn banner(
    url: &str,
    local: Option<&LocalPostgres>,
    operator_token: &str,
    keys: Option<&DemoKeys>,
) -> String {
    let mut out = String::new();
    out.push_str("\n  Twofold is running in ZERO-CONFIG DEVELOPMENT MODE (not for production)\n\n");
    out.push_str(&format!(
        "  GraphQL (POST, GraphiQL on GET): {url}/graphql\n"
    ));
    out.push_str(&format!(
        "  Console (ADMIN or AUDITOR key):  {url}/console\n"
    ));
    out.push_str(&format!(
        "  Health:                          {url}/health\n"
    ));
    if let Some(pg) = local {
        out.push_str(&format!(
            "  Private PostgreSQL:              {} (port {})\n",
            pg.data_dir().display(),
            pg.port()
        ));
    }
    out.push_str(&format!(
        "  Operator token:                  {operator_token}\n"
    ));
    if let Some(k) = keys {
        out.push_str(&format!(
            "  Demo tenant '{DEMO_TENANT}' keys:\n    ADMIN    {}\n    APP      {}\n    AUDITOR  {}\n",
            k.admin, k.app, k.auditor
        ));
    }
    out.push_str(&format!(
        "\n  Try: curl -s {url}/graphql -H 'Authorization: Bearer <ADMIN key>' \
         -H 'Content-Type: application/json' -d '{{\"query\":\"{{ tenant {{ id name policy {{ enforceTwoFactor }} }} }}\"}}'\n"
    ));
    out
}
