//! Builds the application from configuration: pool, migrations, event processor, use-cases,
//! router, listener. `main` and the test harness both go through [`Application::build`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

mod delivery;
pub use delivery::Delivery;

use crate::databases::Databases;
pub use crate::store_options::StoreOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use twofold_domain::provider::ProviderRules;
use twofold_domain::tenant::Tenant;
use twofold_domain::user::User;
use twofold_graphql::client_addr::TrustedProxies;
use twofold_graphql::http::Draining;
use twofold_graphql::{
    build_schema, router, ApiParts, ApiServices, ApiState, Websockets, WsLimits,
};
use twofold_infra::audit_log::PgAuditLog;
use twofold_infra::config::Secrets;
use twofold_infra::console_sessions::PgConsoleSessions;
use twofold_infra::crypto::totp::RfcTotp;
use twofold_infra::crypto::RsWebAuthn;
use twofold_infra::crypto::{HmacHasher, OsEntropy, SystemClock};
use twofold_infra::delivery::tenant::guard::DnsProviderHosts;
use twofold_infra::delivery::tenant::TenantSenderCache;
use twofold_infra::delivery_queue::PgDeliveryQueue;
use twofold_infra::directory_cache::CachedDirectory;
use twofold_infra::hosted::PgHostedStore;
use twofold_infra::http_limits::HttpLimits;
use twofold_infra::operations::PgOperations;
use twofold_infra::processor::EventProcessor;
use twofold_infra::projections::activity::PgOverviewReadModel;
use twofold_infra::projections::compliance::PgComplianceReadModel;
use twofold_infra::projections::tenants::PgTenantDirectory;
use twofold_infra::send_limiter::PgSendLimiter;
use twofold_infra::{event_store, projections};
use twofold_services::audit::AuditService;
use twofold_services::commands::Commands;
use twofold_services::compliance::ComplianceService;
use twofold_services::console_sessions::ConsoleSessions;
use twofold_services::delivery::DeliveryWorker;
use twofold_services::delivery_settings::{DeliverySettingsPorts, DeliverySettingsService};
use twofold_services::hosted::HostedPages;
use twofold_services::overview::OverviewService;
use twofold_services::ports::{Clock, Entropy, SecretHasher, TenantDirectory, TotpEngine};
use twofold_services::tenants::TenantService;
use twofold_services::users::{UserCrypto, UserPorts, UserService};
use twofold_services::Authenticator;
use twofold_web::WebState;

/// The layout version of `User`'s snapshots: changed with its serialized state, so old ones are
/// ignored rather than misread. Public for the benchmark, which runs the load statement with it.
pub const USER_STATE_VERSION: &str = "user-1";

/// The layout version of the tenant aggregate's snapshots (see `USER_STATE_VERSION`).
pub const TENANT_STATE_VERSION: &str = "tenant-2";

/// The use-cases and the machinery behind them, wired to one database.
#[derive(Clone)]
pub struct Wiring {
    pub pool: PgPool,
    /// Drives the projections.
    pub processor: Arc<EventProcessor>,
    /// Tenant use-cases.
    pub tenants: TenantService,
    /// End-user 2FA use-cases.
    pub users: UserService,
    /// Compliance reports.
    pub compliance: ComplianceService,
    /// The tenant overview.
    pub overview: OverviewService,
    /// The audit history.
    pub audit: AuditService,
    /// Tenants' own delivery providers.
    pub delivery_settings: DeliverySettingsService,
    /// Sends queued codes.
    pub worker: DeliveryWorker,
    /// Bearer authentication.
    pub auth: Arc<Authenticator>,
    /// The console's sign-ins.
    pub console_sessions: ConsoleSessions,
    /// The hosted pages' links and results.
    pub hosted: HostedPages,
    /// The send caps' reservations (the tests read how many wait).
    pub send_limiter: Arc<PgSendLimiter>,
}

impl Wiring {
    /// Wires every use-case to PostgreSQL and the crypto adapters.
    pub async fn new(
        databases: Databases,
        secrets: &Secrets,
        delivery: &Delivery,
        stores: StoreOptions,
    ) -> anyhow::Result<Self> {
        let pool = databases.events.clone();
        let processor = Arc::new(
            EventProcessor::new(pool.clone(), projections::all())
                .await
                .context("registering projections")?
                .with_settle_timeout(stores.settle_timeout),
        );
        let entropy: Arc<dyn Entropy> = Arc::new(OsEntropy);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let hasher: Arc<dyn SecretHasher> = Arc::new(HmacHasher::new(secrets.hash_pepper.clone()));
        let directory: Arc<dyn TenantDirectory> = Arc::new(CachedDirectory::new(
            Arc::new(PgTenantDirectory::new(pool.clone())),
            pool.clone(),
        ));
        let auth = Arc::new(Authenticator::new(
            directory.clone(),
            hasher.clone(),
            entropy.clone(),
            Some(secrets.operator_token.expose()),
        ));
        let commands = Commands::<Tenant>::new(
            Arc::new(
                event_store::PgStore::<Tenant>::new(&pool, (), TENANT_STATE_VERSION)
                    .with_cache(stores.aggregate_cache)
                    .with_writer_limits(stores.writer),
            ),
            processor.clone(),
            entropy.clone(),
        );
        let tenant_commands = commands.clone();
        let session_commands = commands.clone();
        let sealer = databases.sealer(secrets);
        let tenants = TenantService::new(
            commands,
            directory.clone(),
            auth.clone(),
            clock.clone(),
            entropy.clone(),
            sealer.clone(),
        )
        .with_budget_ceilings(delivery.ceilings);
        let totp: Arc<dyn TotpEngine> = Arc::new(RfcTotp);
        let crypto = Arc::new(
            UserCrypto::new(sealer.clone(), totp, hasher.clone())
                .with_webauthn(Arc::new(RsWebAuthn::new()), directory.clone()),
        );
        let user_commands = Commands::<User>::new(
            Arc::new(
                event_store::PgStore::<User>::new(&pool, crypto.clone(), USER_STATE_VERSION)
                    .with_cache(stores.aggregate_cache)
                    .with_writer_limits(stores.writer),
            ),
            processor.clone(),
            entropy.clone(),
        );
        let compliance = ComplianceService::new(
            Arc::new(PgComplianceReadModel::new(pool.clone())),
            directory.clone(),
            processor.clone(),
            sealer.clone(),
        );
        let overview = OverviewService::new(
            Arc::new(PgOverviewReadModel::new(pool.clone())),
            directory.clone(),
            processor.clone(),
            clock.clone(),
        );
        let audit = AuditService::new(
            Arc::new(PgAuditLog::new(pool.clone())),
            processor.clone(),
            hasher.clone(),
            directory.clone(),
        );
        let limiter = Arc::new(PgSendLimiter::new(pool.clone()));
        let tenant_senders = Arc::new(TenantSenderCache::new(
            sealer.clone(),
            delivery.allow_private_provider_urls,
            delivery.lookups.clone(),
        ));
        let delivery_settings = DeliverySettingsService::new(DeliverySettingsPorts {
            commands: tenant_commands,
            directory: directory.clone(),
            sealer: sealer.clone(),
            hosts: Arc::new(DnsProviderHosts {
                lookups: delivery.lookups.clone(),
                allow_private: delivery.allow_private_provider_urls,
            }),
            senders: tenant_senders.clone(),
            limiter: limiter.clone(),
            clock: clock.clone(),
            entropy: entropy.clone(),
            rules: ProviderRules {
                allow_private: delivery.allow_private_provider_urls,
            },
        });
        let console_sessions = ConsoleSessions::new(
            Arc::new(PgConsoleSessions::new(pool.clone())),
            session_commands,
            auth.clone(),
            hasher.clone(),
            entropy.clone(),
            clock.clone(),
        );
        let hosted = HostedPages::new(
            Arc::new(PgHostedStore::new(pool.clone())),
            directory.clone(),
            hasher.clone(),
            sealer.clone(),
            entropy.clone(),
            clock.clone(),
        );
        let users = UserService::new(UserPorts {
            commands: user_commands,
            crypto,
            tenants: directory,
            clock,
            entropy,
            limiter: limiter.clone(),
        })
        .with_budget_ceilings(delivery.ceilings);
        let worker = DeliveryWorker::new(
            users.clone(),
            Arc::new(PgDeliveryQueue::new(pool.clone())),
            delivery.email.clone(),
            delivery.sms.clone(),
            delivery.retry,
        )
        .with_tenant_senders(tenant_senders);
        Ok(Self {
            pool,
            processor,
            tenants,
            users,
            compliance,
            overview,
            audit,
            delivery_settings,
            worker,
            auth,
            console_sessions,
            hosted,
            send_limiter: limiter,
        })
    }
}

/// Chooses rustls's crypto provider for the whole process. Two are compiled in (ring through
/// sqlx, aws-lc through lettre and reqwest); code that asks rustls for "the default" without
/// naming one would otherwise panic. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// What [`Application::build`] needs.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// `TWOFOLD_KEY_DATABASE_URL`: a separate database for the data keys; `None`: the same.
    pub key_database_url: Option<String>,
    /// Where to listen (port 0 picks a free one).
    pub bind: SocketAddr,
    /// Operator token, master key, pepper.
    pub secrets: Secrets,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Code delivery.
    pub delivery: Delivery,
    /// Slow-client timeouts and the connection cap.
    pub http: HttpLimits,
    /// Whether `GET /graphql` serves GraphiQL.
    pub graphiql: bool,
    /// Whether the console is served at `/console` (`TWOFOLD_CONSOLE`).
    pub console: bool,
    /// How the event stores wait and what they keep.
    pub stores: StoreOptions,
    /// Where browsers reach the service (`TWOFOLD_PUBLIC_URL`); `None`: `http://` and the
    /// bound address.
    pub public_url: Option<String>,
}

/// A built application, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    wiring: Wiring,
    run_worker: bool,
    websocket_limits: WsLimits,
    page_timeout: std::time::Duration,
    http: HttpLimits,
    graphiql: bool,
    console: bool,
    draining: Draining,
}

impl Application {
    /// Connects, migrates, wires, binds.
    pub async fn build(config: AppConfig) -> anyhow::Result<Self> {
        let databases = Databases::connect(
            &config.database_url,
            config.key_database_url.as_deref(),
            config.max_connections,
        )
        .await?;
        let mut wiring =
            Wiring::new(databases, &config.secrets, &config.delivery, config.stores).await?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {} (check TWOFOLD_BIND)", config.bind))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let public_url = config.public_url.unwrap_or_else(|| {
            let mut shown = address;
            if !shown.ip().is_loopback() {
                tracing::warn!(
                    "TWOFOLD_PUBLIC_URL is not set: the hosted pages' links are made as plain \
                     http to the bound address; set it to the https address browsers use"
                );
            }
            if shown.ip().is_unspecified() {
                shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{shown}")
        });
        wiring.hosted = wiring.hosted.with_public_url(&public_url);
        Ok(Self {
            listener,
            address,
            wiring,
            run_worker: config.delivery.run_worker,
            websocket_limits: WsLimits::default(),
            page_timeout: twofold_web::PAGE_TIMEOUT,
            http: config.http,
            graphiql: config.graphiql,
            console: config.console,
            draining: Draining::default(),
        })
    }

    /// Flips `/health/ready` to 503 when begun (on a stop signal, before the drain delay).
    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    /// Replaces the WebSocket limits (the defaults of [`WsLimits`] otherwise).
    pub fn with_websocket_limits(mut self, limits: WsLimits) -> Self {
        self.websocket_limits = limits;
        self
    }

    /// Replaces how long a page may take to answer ([`twofold_web::PAGE_TIMEOUT`] otherwise).
    pub fn with_page_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.page_timeout = timeout;
        self
    }

    /// Replaces where browsers reach the service, for a caller that knows it only once the
    /// port is bound (a test serving its pages as `http://localhost:PORT`).
    pub fn with_public_url(mut self, public_url: &str) -> Self {
        self.wiring.hosted = self.wiring.hosted.clone().with_public_url(public_url);
        self
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The wired use-cases (the zero-config bootstrap creates the demo tenant through them).
    pub fn wiring(&self) -> &Wiring {
        &self.wiring
    }

    /// Serves until `shutdown` completes, then stops the event processor after in-flight
    /// requests have finished.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let processor = self.wiring.processor.clone().spawn(stop_rx.clone());
        let deliveries = self.run_worker.then(|| {
            tokio::spawn(supervise_worker(
                self.wiring.worker.clone(),
                self.wiring.processor.clone(),
                stop_rx.clone(),
            ))
        });
        // Live audit streams end as soon as shutdown starts: their WebSockets are upgraded
        // connections, which the HTTP server's graceful shutdown does not wait for.
        let (live_tx, live_rx) = watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            let _ = live_tx.send(true);
        };
        let state = ApiState::from(ApiParts {
            schema: build_schema(
                ApiServices {
                    tenants: self.wiring.tenants.clone(),
                    users: self.wiring.users.clone(),
                    compliance: self.wiring.compliance.clone(),
                    overview: self.wiring.overview.clone(),
                    audit: self.wiring.audit.clone(),
                    delivery_settings: self.wiring.delivery_settings.clone(),
                    hosted: self.wiring.hosted.clone(),
                },
                live_rx.clone(),
            ),
            auth: self.wiring.auth.clone(),
            operations: Arc::new(PgOperations::new(
                self.wiring.pool.clone(),
                self.wiring.processor.clone(),
                self.run_worker.then(|| self.wiring.worker.stats()),
            )),
            draining: self.draining.clone(),
            audit: self.wiring.audit.clone(),
            queries: Arc::default(),
            metrics: Arc::default(),
            websockets: Arc::new(Websockets::new(self.websocket_limits)),
            graphiql: self.graphiql,
            anonymous: Arc::default(),
            health_cache: Arc::default(),
            trusted_proxies: TrustedProxies::new(self.http.trusted_proxies.clone()),
        });
        // The hosted pages are served whatever `TWOFOLD_CONSOLE` says: links made by
        // `createUserSession` must open.
        let pages = twofold_web::router(
            WebState {
                sessions: self.wiring.console_sessions.clone(),
                tenants: self.wiring.tenants.clone(),
                compliance: self.wiring.compliance.clone(),
                overview: self.wiring.overview.clone(),
                audit: self.wiring.audit.clone(),
                stopping: live_rx,
                users: self.wiring.users.clone(),
                rate_limits: state
                    .schema
                    .data::<Arc<twofold_graphql::rate_limit::RateLimits>>()
                    .cloned(),
                anonymous: state.anonymous.clone(),
                hosted: self.wiring.hosted.clone(),
                console_budgets: Arc::default(),
                page_timeout: self.page_timeout,
            },
            self.console,
        );
        let served =
            crate::server::serve(self.listener, router(state, pages), self.http, shutdown).await;
        let _ = stop_tx.send(true);
        let _ = processor.await;
        if let Some(deliveries) = deliveries {
            let _ = deliveries.await;
        }
        self.wiring.pool.close().await;
        served.context("serving HTTP")
    }
}

/// Runs the delivery worker, starting it again after a panic: a dead worker would leave this
/// instance's share of the codes waiting for the other instances' workers, or for no one.
async fn supervise_worker(
    worker: twofold_services::delivery::DeliveryWorker,
    progress: Arc<EventProcessor>,
    stop: watch::Receiver<bool>,
) {
    loop {
        match worker.clone().spawn(progress.clone(), stop.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "the delivery worker stopped; starting it again in 1 s");
                if *stop.borrow() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
