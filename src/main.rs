//! `twofold`: the command line. Parses arguments, reads configuration, hands over to `startup`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use twofold::databases::Databases;
use twofold::startup::{AppConfig, Application, Delivery, StoreOptions, Wiring};
use twofold::{say, telemetry, zero_config};
use twofold_infra::config::Settings;
use twofold_infra::crypto::seal::{rotate_master_key, MasterKeys};
use twofold_infra::delivery::tenant::lookups::Lookups;
use twofold_infra::delivery::{DeliverySettings, Senders};
use twofold_infra::pg;
use twofold_infra::processor::DEFAULT_SETTLE_TIMEOUT;
use twofold_services::delivery::RetryPolicy;
use twofold_services::{BudgetCeilings, RequestContext};

/// mimalloc: about a fifth less of the service's CPU per verify and per code than the system
/// allocator (docs/benchmark.md, round 9).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Event-sourced, multi-tenant two-factor authentication service.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service. Without DATABASE_URL it starts its own private PostgreSQL.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage projections (read models).
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Manage the master key that wraps the tenants' data keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Measure verify throughput and latency against PostgreSQL's commit rate, in one run, on
    /// a private PostgreSQL (build with --release for meaningful figures).
    Bench(twofold::bench::BenchOptions),
    /// Three instances on one private PostgreSQL under load while instances, PostgreSQL and the
    /// providers fail; then every acknowledged answer is accounted for (docs/operations.md).
    Chaos(twofold::chaos::ChaosOptions),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first ADMIN key (shown once).
    Create {
        /// Display name.
        name: String,
        /// Tenant id (lowercase letters, digits, '-'); generated when omitted.
        #[arg(long)]
        id: Option<String>,
    },
    /// Erase a tenant: revoke every API key, then destroy the data keys of the tenant and all
    /// its users, so no contact detail, TOTP secret, passkey or provider credential of it can
    /// be read again (the history stays, masked). Cannot be undone.
    Erase {
        /// Tenant id.
        id: String,
        /// Why (recorded in the history).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rewrap every data key under TWOFOLD_MASTER_KEY, opening those still under
    /// TWOFOLD_MASTER_KEY_PREVIOUS; safe while the service runs, and to run again.
    Rotate,
    /// Move what was sealed before per-user keys (under one key per tenant) to the per-user
    /// keys, then destroy those tenant keys, so an erasure reaches the whole history; safe while
    /// the service runs, and to run again.
    Reseal,
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Rebuild one projection (or all) from the start of the event log.
    Rebuild {
        /// Projection name; all when omitted.
        name: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("info,sqlx=warn,tower_http=info");
    twofold::startup::install_crypto_provider();
    let cli = Cli::parse();
    if let Command::Bench(options) = cli.command {
        // The benchmark brings its own database, service and configuration.
        return twofold::bench::run(options).await;
    }
    if let Command::Chaos(options) = cli.command {
        return twofold::chaos::run(options).await;
    }
    // Only `serve` waits for a signal; other commands keep the default (stop at once).
    let signals = matches!(cli.command, Command::Serve)
        .then(StopSignals::install)
        .transpose()?;
    let settings = Settings::from_env()?;
    // Zero-config keeps its master key in dev-secrets.env; a rotation that did not also replace
    // it there would lock the next `serve` out of every tenant.
    let rotation = matches!(
        cli.command,
        Command::Keys {
            command: KeysCommand::Rotate
        }
    );
    if rotation && settings.zero_config() {
        anyhow::bail!(
            "keys rotate is for deployments with DATABASE_URL: zero-config mode keeps its master \
             key in {}/dev-secrets.env",
            settings.data_dir.display()
        );
    }
    let secrets = settings.secrets()?;
    let delivery = delivery_from_env(settings.database_url.is_some())?;
    let db = zero_config::database(&settings).await?;
    let is_serve = matches!(cli.command, Command::Serve);
    let result = run(cli.command, &settings, secrets, &delivery, &db, signals).await;
    if let Some(local) = &db.local {
        // `serve` owns the private cluster for its lifetime; other commands stop it only if
        // they had to start it.
        if is_serve || db.started_here {
            local.stop().context("stopping the private PostgreSQL")?;
            // Not `eprintln!`: a closed stderr (`serve 2>&1 | head`) must not turn a clean stop
            // into a panic.
            let _ = writeln!(std::io::stderr(), "Stopped the private PostgreSQL.");
        }
    }
    result
}

/// Runs one command.
async fn run(
    command: Command,
    settings: &Settings,
    secrets: twofold_infra::config::Secrets,
    delivery: &Delivery,
    db: &zero_config::Database,
    signals: Option<StopSignals>,
) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            // Read again when the schema is built; refused here so a typo stops start-up.
            twofold_graphql::rate_limit::RateLimitSettings::from_lookup(|k| std::env::var(k).ok())
                .map_err(anyhow::Error::msg)?;
            let app = Application::build(AppConfig {
                database_url: db.url.clone(),
                key_database_url: settings.key_database_url.clone(),
                bind: settings.bind,
                secrets: secrets.clone(),
                max_connections: settings.db_pool_size,
                delivery: delivery.clone(),
                http: settings.http.clone(),
                graphiql: settings.graphiql,
                console: settings.console,
                stores: StoreOptions {
                    aggregate_cache: settings.aggregate_cache,
                    ..StoreOptions::default()
                },
                public_url: settings.public_url.clone(),
            })
            .await?;
            let url = format!("http://{}", app.address());
            if settings.zero_config() {
                let keys = zero_config::demo_keys(app.wiring(), &settings.data_dir).await?;
                let banner = zero_config::banner(
                    &url,
                    db.local.as_ref(),
                    secrets.operator_token.expose(),
                    keys.as_ref(),
                );
                // Whoever started us may have stopped reading (a closed pipe, `serve | head`):
                // the banner is a courtesy, and `println!` would panic and take the service down.
                if let Err(e) = writeln!(std::io::stdout().lock(), "{banner}") {
                    tracing::warn!(error = %e, %url, "could not print the start-up banner");
                }
            } else {
                tracing::info!(%url, "Twofold listening");
            }
            let draining = app.draining();
            let drain_delay = settings.drain_delay;
            let stop = async move {
                let Some(mut signals) = signals else {
                    return std::future::pending().await;
                };
                let signal = signals.wait().await;
                draining.begin();
                // A supervisor's SIGTERM: stay up, not ready, until the load balancer has
                // noticed; Ctrl-C, or a second signal during the drain, stops at once.
                if signal == Stop::Terminate && !drain_delay.is_zero() {
                    tracing::info!(
                        seconds = drain_delay.as_secs(),
                        "draining: /health/ready answers 503 while requests are still served"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(drain_delay) => {}
                        _ = signals.wait() => {}
                    }
                }
            };
            app.run_until_stopped(stop).await
        }
        Command::Migrate => {
            let pool = pg::connect(&db.url, 2).await?;
            pg::migrate(&pool).await?;
            say!("Migrations applied.")?;
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Create { name, id },
        } => {
            // The admin key is shown once, after the tenant exists: nothing is created when its
            // key could not be shown.
            say!("Creating tenant {name}...")?;
            let wiring = connect(settings, &db.url, &secrets, delivery).await?;
            let created = wiring
                .tenants
                .create_tenant(&name, id.as_deref(), &RequestContext::system("cli"))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say!("Tenant:    {} ({})", created.tenant.id, created.tenant.name)
                .and_then(|()| say!("Admin key: {}", created.admin_key.secret))
                .and_then(|()| say!("(The key is shown once; store it now.)"))
                .with_context(|| {
                    format!(
                        "tenant {} was created, but its admin key {} could not be shown: issue                          another ADMIN key with the operator token, then revoke this one",
                        created.tenant.id, created.admin_key.key.id
                    )
                })?;
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Erase { id, reason },
        } => {
            let wiring = connect(settings, &db.url, &secrets, delivery).await?;
            let destroyed = wiring
                .tenants
                .erase_tenant(&id, &reason, &RequestContext::system("cli"))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say!("Tenant {id} erased: every API key revoked, {destroyed} data keys destroyed.")?;
            Ok(())
        }
        // Handled in `main` before any configuration is read.
        Command::Bench(_) | Command::Chaos(_) => {
            Err(anyhow::anyhow!("bench and chaos run on their own database"))
        }
        Command::Keys {
            command: KeysCommand::Reseal,
        } => {
            let databases =
                Databases::connect(&db.url, settings.key_database_url.as_deref(), 4).await?;
            twofold::reseal::run(databases, &secrets, delivery, DEFAULT_SETTLE_TIMEOUT).await
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let databases =
                Databases::connect(&db.url, settings.key_database_url.as_deref(), 2).await?;
            let pool = databases.keys;
            let keys = MasterKeys::new(
                secrets.master_key.clone(),
                secrets.previous_master_key.clone(),
            );
            let done = rotate_master_key(&pool, &keys)
                .await
                .context("rewrapping the data keys")?;
            say!(
                "Master key {}: {} data keys rewrapped, {} already under it.",
                keys.current_id(),
                done.rewrapped,
                done.current,
            )?;
            if !done.failed.is_empty() {
                anyhow::bail!(
                    "{} data keys open under neither TWOFOLD_MASTER_KEY nor \
                     TWOFOLD_MASTER_KEY_PREVIOUS and were left untouched (tenants: {}); \
                     keep every old master key and run this again with the one that wrapped them",
                    done.failed.len(),
                    done.failed.join(", ")
                );
            }
            if !done.complete() {
                anyhow::bail!(
                    "{} data keys are still not under the current master key (created meanwhile \
                     by an instance without it?): give every instance the new key, then run this \
                     again; keep TWOFOLD_MASTER_KEY_PREVIOUS until it reports success",
                    done.remaining
                );
            }
            say!(
                "Every data key is under the current master key: TWOFOLD_MASTER_KEY_PREVIOUS \
                 can be removed."
            )?;
            Ok(())
        }
        Command::Projections {
            command: ProjectionsCommand::Rebuild { name },
        } => {
            let wiring = connect(settings, &db.url, &secrets, delivery).await?;
            let rebuilt = wiring.processor.rebuild(name.as_deref()).await?;
            say!("Rebuilt: {}", rebuilt.join(", "))?;
            Ok(())
        }
    }
}

async fn connect(
    settings: &Settings,
    url: &str,
    secrets: &twofold_infra::config::Secrets,
    delivery: &Delivery,
) -> anyhow::Result<Wiring> {
    let databases = Databases::connect(url, settings.key_database_url.as_deref(), 4).await?;
    // A one-shot command decides on stored state only: nothing to keep between commands.
    Wiring::new(databases, secrets, delivery, StoreOptions::default()).await
}

/// Email and SMS channels from `TWOFOLD_SMTP_*` / `TWOFOLD_SMS_*`; the console for a channel
/// with no provider configured.
/// `production`: `DATABASE_URL` is set, so printing codes needs `TWOFOLD_DELIVERY=console`.
fn delivery_from_env(production: bool) -> anyhow::Result<Delivery> {
    let settings = DeliverySettings::from_lookup(|k| std::env::var(k).ok())?;
    settings.check_console_allowed(production, |k| std::env::var(k).ok())?;
    let senders = Senders::build(&settings)?;
    let run_worker = match std::env::var("TWOFOLD_DELIVERY_WORKER").ok().as_deref() {
        None | Some("") | Some("on") => true,
        Some("off") => false,
        Some(_) => anyhow::bail!("TWOFOLD_DELIVERY_WORKER must be `on` or `off`"),
    };
    let allow_private_provider_urls = match std::env::var("TWOFOLD_ALLOW_PRIVATE_PROVIDER_URLS")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("false") => false,
        Some("true") => {
            tracing::warn!(
                "TWOFOLD_ALLOW_PRIVATE_PROVIDER_URLS=true: tenants' own providers may be on \
                 loopback or private addresses and use plain SMTP or HTTP; for development only"
            );
            true
        }
        Some(_) => anyhow::bail!("TWOFOLD_ALLOW_PRIVATE_PROVIDER_URLS must be `true` or `false`"),
    };
    Ok(Delivery {
        email: senders.email,
        sms: senders.sms,
        retry: RetryPolicy::from_lookup(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?,
        run_worker,
        allow_private_provider_urls,
        ceilings: BudgetCeilings::from_lookup(|k| std::env::var(k).ok())
            .map_err(anyhow::Error::msg)?,
        lookups: Arc::new(Lookups::new()),
    })
}

/// SIGINT and SIGTERM, caught from the first moment of `main`. Caught only once `serve` was
/// listening, a signal during start-up (a supervisor stopping a service it just started)
/// killed the process outright and left its private PostgreSQL running; caught early, it is
/// kept until `serve` waits for it, and `serve` then stops at once, cleanly.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("catching SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("catching SIGTERM")?,
        })
    }

    async fn wait(&mut self) -> Stop {
        let signal = tokio::select! {
            _ = self.interrupt.recv() => Stop::Interrupt,
            _ = self.terminate.recv() => Stop::Terminate,
        };
        tracing::info!(?signal, "shutting down");
        signal
    }
}

/// Which signal asked `serve` to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGINT: someone at a terminal; stop now.
    Interrupt,
    /// SIGTERM: a supervisor; drain first.
    Terminate,
}
