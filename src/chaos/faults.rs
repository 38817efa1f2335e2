//! The system under test (three instances, PostgreSQL behind a switchable proxy, the two
//! providers) and the faults done to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use twofold_pg_local::{LocalPgOptions, LocalPostgres};

use super::proxy::Proxy;
use crate::bench::service::ServiceProcess;
use crate::bench::sinks::{SmsSink, SmtpSink};

/// What a SIGTERMed instance gets to drain and finish before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct System {
    exe: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
    ports: Vec<u16>,
    instances: Vec<Option<ServiceProcess>>,
    pub pg: LocalPostgres,
    /// The current primary's folder (a promoted standby's after a failover).
    pg_dir: PathBuf,
    /// Standbys made so far (each gets its own folder and name).
    standbys: usize,
    pub db_proxy: Proxy,
    pub smtp: SmtpSink,
    pub sms: SmsSink,
    /// The load balancer in front of the instances, once they first started.
    pub lb: Option<Proxy>,
}

fn pg_options() -> LocalPgOptions {
    // Durable, as in production: an immediate stop must lose nothing committed.
    LocalPgOptions {
        ephemeral: false,
        statement_stats: false,
    }
}

pub async fn start_pg(dir: &Path) -> anyhow::Result<LocalPostgres> {
    let pg_dir = dir.join("pg");
    let pg =
        tokio::task::spawn_blocking(move || LocalPostgres::start(&pg_dir, &pg_options())).await??;
    pg.stop_when_process_exits(std::process::id())?;
    Ok(pg)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl System {
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        exe: PathBuf,
        env: Vec<(String, String)>,
        dir: PathBuf,
        instances: usize,
        pg: LocalPostgres,
        db_proxy: Proxy,
        smtp: SmtpSink,
        sms: SmsSink,
    ) -> anyhow::Result<Self> {
        let mut ports = Vec::new();
        for _ in 0..instances {
            ports.push(
                std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port(),
            );
        }
        let mut system = Self {
            exe,
            env,
            dir: dir.clone(),
            ports,
            instances: Vec::new(),
            pg,
            pg_dir: dir.join("pg"),
            standbys: 0,
            db_proxy,
            smtp,
            sms,
            lb: None,
        };
        for i in 0..instances {
            let instance = system.launch(i).await?;
            system.instances.push(Some(instance));
        }
        system.lb = Some(Proxy::start(system.addresses(), Some("/health/ready")).await?);
        Ok(system)
    }

    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.ports.iter().map(|p| loopback(*p)).collect()
    }

    /// Starts instance `i` on a fresh free port (its old one may have been taken by an
    /// outgoing connection meanwhile) and points the load balancer's slot `i` at it.
    async fn launch(&mut self, i: usize) -> anyhow::Result<ServiceProcess> {
        let log = self.dir.join(format!("instance-{i}.log"));
        let mut tries = 0;
        let instance = loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            match ServiceProcess::start_on(&self.exe, &self.env, &log, port, "/health/ready").await
            {
                Ok(instance) => {
                    self.ports[i] = port;
                    break instance;
                }
                // The port was taken between our probe and the instance's bind: another one.
                Err(e) if tries < 3 => {
                    tries += 1;
                    eprintln!("chaos: instance {i} did not start ({e}); trying another port");
                }
                Err(e) => return Err(e).with_context(|| format!("starting instance {i}")),
            }
        };
        if let Some(lb) = &self.lb {
            lb.retarget(i, loopback(self.ports[i]));
        }
        Ok(instance)
    }

    /// SIGKILL, then a restart on the same port.
    pub async fn kill_and_restart(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(instance) = self.instances[i].take() {
            instance.stop().await;
        }
        self.instances[i] = Some(self.launch(i).await?);
        Ok(())
    }

    /// Each instance in turn: SIGTERM (it drains), then a restart once it is ready again.
    pub async fn rolling_restart(&mut self) -> anyhow::Result<()> {
        for i in 0..self.instances.len() {
            if let Some(instance) = self.instances[i].take() {
                instance.terminate(STOP_TIMEOUT).await;
            }
            self.instances[i] = Some(self.launch(i).await?);
            // The load balancer's probe sees it ready before the next one stops.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(())
    }

    /// Stops PostgreSQL (fast: a clean shutdown; immediate: as a crash) and starts it again;
    /// the proxy in front of it follows it to its new port.
    pub async fn restart_pg(&mut self, immediate: bool) -> anyhow::Result<()> {
        let pg_dir = self.pg_dir.clone();
        tokio::task::block_in_place(|| {
            if immediate {
                self.pg.stop_immediately()
            } else {
                self.pg.stop()
            }
        })?;
        let pg = tokio::task::block_in_place(|| LocalPostgres::start(&pg_dir, &pg_options()))?;
        pg.stop_when_process_exits(std::process::id())?;
        self.db_proxy.retarget(0, loopback(pg.port()));
        self.pg = pg;
        Ok(())
    }

    /// Makes a standby of the primary (`pg_basebackup`, streaming replication) and, when
    /// `synchronous`, has the primary wait for it on every commit (`synchronous_standby_names`),
    /// as a deployment built for zero loss does; returns once the standby streams (and is
    /// synchronous, if asked).
    pub async fn start_standby(&mut self, synchronous: bool) -> anyhow::Result<LocalPostgres> {
        self.standbys += 1;
        let name = format!("standby{}", self.standbys);
        let dir = self.dir.join(&name);
        let standby =
            tokio::task::block_in_place(|| self.pg.start_standby(&dir, &name, &pg_options()))
                .context("making a standby with pg_basebackup")?;
        standby.stop_when_process_exits(std::process::id())?;
        let primary = twofold_infra::pg::connect(&self.pg.url("postgres"), 1).await?;
        let wanted = if synchronous { "sync" } else { "async" };
        let names = if synchronous { name.as_str() } else { "" };
        sqlx::query(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{names}'"
        ))
        .execute(&primary)
        .await?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&primary)
            .await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
            )
            .bind(&name)
            .fetch_optional(&primary)
            .await?;
            if state.as_deref() == Some(wanted) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the standby was not streaming ({wanted}) within 60 s ({state:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        primary.close().await;
        Ok(standby)
    }

    /// The primary is lost (stopped as by a crash), the standby promoted, and the database
    /// proxy pointed at it, as a virtual IP or a pooler would be.
    pub async fn fail_over(&mut self, standby: LocalPostgres) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.pg.stop_immediately())?;
        tokio::task::block_in_place(|| standby.promote())?;
        self.db_proxy.retarget(0, loopback(standby.port()));
        self.pg_dir = standby
            .data_dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.clone());
        self.pg = standby;
        Ok(())
    }

    /// The providers refuse every message (SMTP 451, HTTP 503) for `d`.
    pub async fn providers_down(&self, d: Duration) {
        self.smtp.inbox.set_down(true);
        self.sms.inbox.set_down(true);
        tokio::time::sleep(d).await;
        self.smtp.inbox.set_down(false);
        self.sms.inbox.set_down(false);
    }

    /// Both providers take messages and answer nothing for `d`, then refuse what they held.
    pub async fn providers_hang(&self, d: Duration) {
        self.smtp.inbox.set_hanging(true);
        self.sms.inbox.set_hanging(true);
        tokio::time::sleep(d).await;
        self.smtp.inbox.set_hanging(false);
        self.sms.inbox.set_hanging(false);
    }

    /// Stops the instances, leaving PostgreSQL running for the checks.
    pub async fn stop_instances(&mut self) {
        for instance in self.instances.iter_mut().filter_map(Option::take) {
            instance.terminate(Duration::from_secs(10)).await;
        }
    }

    pub async fn stop(mut self) {
        for instance in self.instances.iter_mut().filter_map(Option::take) {
            instance.terminate(Duration::from_secs(10)).await;
        }
        let pg = self.pg;
        let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
    }
}

/// Seconds since `at`, for the report.
pub fn since(at: Instant) -> f64 {
    at.elapsed().as_secs_f64()
}
