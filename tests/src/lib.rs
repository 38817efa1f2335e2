//! The end-to-end test harness: the real service over HTTP against real PostgreSQL.
//!
//! One throwaway PostgreSQL cluster per test run (started from the installed binaries, stopped
//! by a watchdog when the test process exits, however it exits), or the server behind
//! `DATABASE_URL` when set. Every test gets its own database, created from a migrated template,
//! so tests run in parallel without seeing each other. `TEST_LOG=1` shows the service's logs.

pub mod backup;
pub mod browser;
mod client;
pub mod fakes;
mod logs;

use std::net::SocketAddr;
use std::sync::OnceLock;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::{Mutex, OnceCell};
use twofold::startup::{AppConfig, Application, Delivery, StoreOptions};
use twofold_infra::config::{Key32, OperatorToken, Secrets};
use twofold_infra::delivery::{DeliverySettings, Senders};
pub use twofold_infra::http_limits::HttpLimits;
use twofold_pg_local::{LocalPgOptions, LocalPostgres};
use twofold_services::delivery::RetryPolicy;

pub use client::Answer;
pub use logs::captured_logs;
use logs::install_log_capture;

/// The PostgreSQL server of this test run: an admin URL and a URL maker for databases.
struct Server {
    admin_url: String,
    base: String,
    _local: Option<LocalPostgres>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            let base = url
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .expect("DATABASE_URL must end in /<database>");
            return Server {
                admin_url: url,
                base,
                _local: None,
            };
        }
        remove_stale_clusters();
        let dir = std::env::temp_dir().join(format!("twofold-test-pg-{}", std::process::id()));
        let local = LocalPostgres::start(
            &dir,
            &LocalPgOptions {
                ephemeral: true,
                statement_stats: false,
            },
        )
        .expect("starting the test PostgreSQL cluster");
        local
            .stop_when_process_exits(std::process::id())
            .expect("arming the test cluster's watchdog");
        let admin_url = local.url("postgres");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .expect("cluster URL has a database");
        Server {
            admin_url,
            base,
            _local: Some(local),
        }
    })
}

/// Removes the folders of earlier runs' clusters: their process is gone and their watchdog has
/// stopped the server (no `postmaster.pid` left), so nothing uses them any more.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("twofold-test-pg-") else {
            continue;
        };
        let owner_alive = std::path::Path::new("/proc").join(pid).exists();
        let server_running = entry.path().join("data/postmaster.pid").exists();
        if !owner_alive && !server_running {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Name of this process's migrated template database.
fn template_name() -> String {
    format!("twofold_template_{}", std::process::id())
}

static TEMPLATE: OnceCell<()> = OnceCell::const_new();
static CREATE_LOCK: Mutex<()> = Mutex::const_new(());

/// A connection pool on the server's maintenance database (not a test database).
pub async fn admin_pool() -> PgPool {
    let url = tokio::task::spawn_blocking(|| server().admin_url.clone())
        .await
        .expect("starting the test server");
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connecting to the test server")
}

/// The test server's URL without a database, to name one after it.
pub(crate) async fn server_base() -> String {
    tokio::task::spawn_blocking(|| server().base.clone())
        .await
        .expect("starting the test server")
}

/// A pool of `max` connections to `options`' database whose transactions default to
/// `REPEATABLE READ`, as an operator may set a database or role: for the tests of what must
/// run `READ COMMITTED` whatever the default.
pub async fn repeatable_read_pool(options: sqlx::postgres::PgConnectOptions, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .after_connect(|connection, _| {
            Box::pin(async move {
                sqlx::query("SET default_transaction_isolation = 'repeatable read'")
                    .execute(connection)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(options)
        .await
        .expect("a pool defaulting to REPEATABLE READ")
}

/// A fresh, migrated, empty database; returns its URL.
pub async fn fresh_database() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let admin = admin_pool().await;
            let template = template_name();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {template}"))
                .execute(&admin)
                .await
                .expect("dropping an old template");
            sqlx::query(&format!("CREATE DATABASE {template}"))
                .execute(&admin)
                .await
                .expect("creating the template database");
            admin.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&format!("{}/{template}", server().base))
                .await
                .expect("connecting to the template");
            twofold_infra::pg::migrate(&pool)
                .await
                .expect("migrating the template");
            pool.close().await;
        })
        .await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    {
        let _one_at_a_time = CREATE_LOCK.lock().await;
        let admin = admin_pool().await;
        sqlx::query(&format!(
            "CREATE DATABASE {name} TEMPLATE {}",
            template_name()
        ))
        .execute(&admin)
        .await
        .expect("creating a test database from the template");
        admin.close().await;
    }
    format!("{}/{name}", server().base)
}

/// Secrets for a test service: random master key and pepper, a known operator token.
pub fn test_secrets() -> Secrets {
    Secrets {
        operator_token: OperatorToken::parse(&format!(
            "tfo_test_{}",
            uuid::Uuid::new_v4().simple()
        ))
        .expect("valid test token"),
        master_key: Key32::generate(),
        previous_master_key: None,
        hash_pepper: Key32::generate(),
    }
}

/// How a test service is set up.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// HTTP statuses the fake SMS provider answers with, in order (then 201).
    pub twilio_script: Vec<u16>,
    /// Delivery attempts before giving up.
    pub max_attempts: u32,
    /// Whether this instance runs the delivery worker.
    pub run_worker: bool,
    /// The WebSocket limits.
    pub websocket: twofold_graphql::WsLimits,
    /// Slow-client timeouts and the connection cap (tests shorten them).
    pub http: HttpLimits,
    /// Whether GraphiQL is served.
    pub graphiql: bool,
    /// Whether the console is served (`TWOFOLD_CONSOLE`).
    pub console: bool,
    /// The operator's ceilings on tenants' hourly budgets.
    pub ceilings: twofold_services::BudgetCeilings,
    /// `TWOFOLD_ALLOW_PRIVATE_PROVIDER_URLS` (on by default: the fakes listen on 127.0.0.1).
    pub allow_private_provider_urls: bool,
    /// How long finished deliveries are kept.
    pub delivery_retention: std::time::Duration,
    /// How long a command waits for the read models. A test that holds the commit horizon
    /// (an open transaction that wrote) shortens it: each command it makes meanwhile waits
    /// it out.
    pub settle_timeout: std::time::Duration,
    /// How the event stores' writers wait on PostgreSQL. A test that keeps commands running
    /// behind a lock on `events` lengthens the lock wait, which otherwise ends them in 2 s.
    pub event_writer: twofold_infra::group_commit::WriterLimits,
    /// `TWOFOLD_PUBLIC_URL` (`None`: `http://` and the bound address); `{port}` in it stands
    /// for the bound port (`http://localhost:{port}`: a secure context for WebAuthn).
    pub public_url: Option<String>,
    /// `TWOFOLD_KEY_DATABASE_URL`: a separate database for the data keys.
    pub key_database_url: Option<String>,
    /// How long a page may take to answer (tests of a stalled page shorten it).
    pub page_timeout: std::time::Duration,
    /// Where tenants' provider names are looked up (tests of a silent name server give their
    /// own).
    pub lookups: std::sync::Arc<twofold_infra::delivery::tenant::lookups::Lookups>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            twilio_script: Vec::new(),
            max_attempts: 3,
            run_worker: true,
            websocket: twofold_graphql::WsLimits::default(),
            http: HttpLimits::default(),
            graphiql: true,
            console: true,
            ceilings: twofold_services::BudgetCeilings::default(),
            allow_private_provider_urls: true,
            delivery_retention: RetryPolicy::default().retention,
            settle_timeout: twofold_infra::processor::DEFAULT_SETTLE_TIMEOUT,
            event_writer: Default::default(),
            public_url: None,
            key_database_url: None,
            page_timeout: twofold_graphql::http::REQUEST_TIMEOUT,
            lookups: Default::default(),
        }
    }
}

/// Credentials of the fake SMS provider.
pub const TWILIO_SID: &str = "ACtest0000000000000000000000000000";
/// See [`TWILIO_SID`].
pub const TWILIO_TOKEN: &str = "test-auth-token";

/// A running service on its own database.
pub struct TestApp {
    /// The SMTP server the service sends mail to.
    pub smtp: fakes::SmtpCapture,
    /// The SMS provider the service sends texts to.
    pub twilio: fakes::FakeTwilio,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    pub operator_token: String,
    /// A pool on the service's database, to inspect what it stored.
    pub db: PgPool,
    /// The database URL (to start a second instance on the same database).
    pub database_url: String,
    /// The secrets (a second instance must share them).
    pub secrets: Secrets,
    /// The instance's use-cases, for what only the operator's command line does.
    pub wiring: twofold::startup::Wiring,
    client: reqwest::Client,
}

/// Starts the service on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

/// Starts the service on a fresh database with `options`.
pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    let database_url = fresh_database().await;
    spawn_instance(database_url, test_secrets(), options).await
}

/// Starts a service instance on an existing database (several instances may share one).
pub async fn spawn_app_on(database_url: String, secrets: Secrets) -> TestApp {
    spawn_instance(database_url, secrets, TestOptions::default()).await
}

/// Starts another instance on `app`'s database, with the same secrets and `options`.
pub async fn spawn_instance_of(app: &TestApp, options: TestOptions) -> TestApp {
    spawn_instance(app.database_url.clone(), app.secrets.clone(), options).await
}

/// Starts an instance on `database_url` with `secrets` and `options`.
pub async fn spawn_instance_on(
    database_url: String,
    secrets: Secrets,
    options: TestOptions,
) -> TestApp {
    spawn_instance(database_url, secrets, options).await
}

async fn spawn_instance(database_url: String, secrets: Secrets, options: TestOptions) -> TestApp {
    install_log_capture();
    twofold::startup::install_crypto_provider();
    let smtp = fakes::SmtpCapture::start();
    let twilio = fakes::FakeTwilio::start_with_credentials(
        TWILIO_SID,
        TWILIO_TOKEN,
        options.twilio_script.clone(),
    );
    let vars: std::collections::HashMap<&str, String> = [
        ("TWOFOLD_SMTP_URL", smtp.url()),
        (
            "TWOFOLD_EMAIL_FROM",
            "Twofold <no-reply@twofold.test>".to_owned(),
        ),
        ("TWOFOLD_SMS_PROVIDER", "twilio".to_owned()),
        ("TWOFOLD_TWILIO_API_BASE", twilio.base_url()),
        ("TWOFOLD_TWILIO_ACCOUNT_SID", TWILIO_SID.to_owned()),
        ("TWOFOLD_TWILIO_AUTH_TOKEN", TWILIO_TOKEN.to_owned()),
        ("TWOFOLD_TWILIO_FROM", "+15005550006".to_owned()),
    ]
    .into_iter()
    .collect();
    let settings =
        DeliverySettings::from_lookup(|k| vars.get(k).cloned()).expect("test delivery settings");
    let senders = Senders::build(&settings).expect("test senders");
    let delivery = Delivery {
        email: senders.email,
        sms: senders.sms,
        retry: RetryPolicy {
            max_attempts: options.max_attempts,
            first_backoff: std::time::Duration::from_millis(20),
            lease: std::time::Duration::from_secs(60),
            retention: options.delivery_retention,
            ..RetryPolicy::default()
        },
        run_worker: options.run_worker,
        ceilings: options.ceilings,
        allow_private_provider_urls: options.allow_private_provider_urls,
        lookups: options.lookups.clone(),
    };
    let app = Application::build(AppConfig {
        database_url: database_url.clone(),
        key_database_url: options.key_database_url.clone(),
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        secrets: secrets.clone(),
        max_connections: 10,
        delivery,
        http: options.http,
        graphiql: options.graphiql,
        console: options.console,
        stores: StoreOptions {
            settle_timeout: options.settle_timeout,
            aggregate_cache: twofold_infra::event_store::DEFAULT_CACHED_AGGREGATES,
            writer: options.event_writer,
        },
        public_url: options
            .public_url
            .clone()
            .filter(|url| !url.contains("{port}")),
    })
    .await
    .expect("building the application")
    .with_websocket_limits(options.websocket.clone())
    .with_page_timeout(options.page_timeout);
    let app = match &options.public_url {
        Some(url) if url.contains("{port}") => {
            let port = app.address().port().to_string();
            app.with_public_url(&url.replace("{port}", &port))
        }
        _ => app,
    };
    let address = format!("http://{}", app.address());
    let wiring = app.wiring().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect(&database_url)
        .await
        .expect("connecting to the test database");
    TestApp {
        smtp,
        twilio,
        address,
        operator_token: secrets.operator_token.expose().to_owned(),
        db,
        database_url,
        secrets,
        wiring,
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    /// An outage of this test's database only (`true`): it refuses new connections and the
    /// open ones are cut, as in a restart, while the other tests' databases carry on.
    /// `false` ends it.
    pub async fn database_outage(&self, down: bool) {
        let name = self
            .database_url
            .rsplit('/')
            .next()
            .and_then(|tail| tail.split('?').next())
            .expect("a database name in the URL")
            .to_owned();
        let admin = admin_pool().await;
        sqlx::query(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {down}",
            down = !down
        ))
        .execute(&admin)
        .await
        .unwrap();
        if down {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&name)
            .execute(&admin)
            .await
            .unwrap();
        }
        admin.close().await;
    }

    /// How many events of `event_type` the tenant's stream holds.
    pub async fn count_events(&self, tenant: &str, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1 AND event_type = $2")
            .bind(tenant)
            .bind(event_type)
            .fetch_one(&self.db)
            .await
            .expect("counting events")
    }

    /// Waits (bounded) until streams whose id is LIKE `pattern` hold `n` events of
    /// `event_type`: what the delivery worker records happens after the request returns.
    pub async fn wait_for_events(&self, pattern: &str, event_type: &str, n: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let found = self.count_events_like(pattern, event_type).await;
            if found >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited 20 s for {n} {event_type} events, found {found}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// How many events of `event_type` streams whose id is LIKE `pattern` hold.
    pub async fn count_events_like(&self, pattern: &str, event_type: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id LIKE $1 AND event_type = $2",
        )
        .bind(pattern)
        .bind(event_type)
        .fetch_one(&self.db)
        .await
        .expect("counting events")
    }
}
