//! `twofold chaos`: three instances on one PostgreSQL behind a round-robin proxy, under load,
//! while instances are killed and restarted, PostgreSQL is restarted and the providers go
//! down; afterwards every acknowledged answer is accounted for from the event log and the
//! sinks (issue 20). It ends with one line:
//! `CHAOS acknowledged=N lost=N duplicated=N max_unavailable_s=X`.

mod account;
mod faults;
mod load;
mod proxy;
mod read_models;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::json;
use twofold_infra::pg;

use crate::bench::api::{self, Api};
use crate::bench::random_hex;
use crate::bench::sinks::{Inbox, SmsSink, SmtpSink};
use faults::System;
use load::{Cast, Ledger};
use proxy::Proxy;

/// Options of `twofold chaos`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChaosOptions {
    /// How long the load runs; the fault schedule repeats until then.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    /// One pass of the schedule with short outages and few users (what CI runs).
    #[arg(long)]
    pub smoke: bool,
    /// Fail over to a standby the primary does not wait for (asynchronous replication), to
    /// measure what that loses: losses are reported, not a failure.
    #[arg(long)]
    pub async_standby: bool,
}

const INSTANCES: usize = 3;
const WORKERS: usize = 6;

pub async fn run(options: ChaosOptions) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("twofold-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("chaos: working in {}", dir.display());
    let outcome = run_in(&options, &dir).await;
    match &outcome {
        Ok(()) if std::env::var_os("TWOFOLD_CHAOS_KEEP").is_none() => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(()) => eprintln!("chaos: the logs are kept in {}", dir.display()),
        Err(_) => eprintln!(
            "chaos: failed; the instances' logs and PostgreSQL's are kept in {}",
            dir.display()
        ),
    }
    outcome
}

async fn run_in(options: &ChaosOptions, dir: &std::path::Path) -> anyhow::Result<()> {
    let pg = faults::start_pg(dir).await?;
    let database = "twofold_chaos";
    pg::ensure_database(&pg.url("postgres"), database).await?;
    let db_proxy = Proxy::start(vec![([127, 0, 0, 1], pg.port()).into()], None).await?;
    // The instances reach PostgreSQL through the proxy, as through a virtual IP: it follows the
    // server when it restarts on another port.
    let url = pg.url(database).replace(
        &format!(":{}/", pg.port()),
        &format!(":{}/", db_proxy.port()),
    );
    // The accounting reads through the same proxy: PostgreSQL's port changes on each restart.
    let direct = pg::connect(&url, 2).await?;
    let smtp = SmtpSink::start()?;
    let sms = SmsSink::start()?;
    let operator = random_hex(24);
    let mut env = crate::bench::service_env(&url, &operator, &smtp, &sms);
    env.extend(
        [
            // Three instances share PostgreSQL's 100 connections with the accounting.
            ("TWOFOLD_DB_POOL_SIZE", "4"),
            ("TWOFOLD_TENANT_MAX_CONCURRENT_REQUESTS", "3"),
            ("TWOFOLD_DRAIN_SECONDS", "1"),
            ("TWOFOLD_DELIVERY_FIRST_BACKOFF_SECONDS", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let exe = std::env::current_exe().context("finding the twofold executable")?;
    eprintln!("chaos: starting {INSTANCES} instances");
    let mut system = System::start(
        exe.clone(),
        env.clone(),
        dir.to_path_buf(),
        INSTANCES,
        pg,
        db_proxy,
        smtp,
        sms,
    )
    .await?;
    let lb_port = system.lb.as_ref().map(Proxy::port).unwrap_or_default();
    let api = Api::new(&format!("http://127.0.0.1:{lb_port}"), WORKERS)?;

    let (tenant, cast) = cast(&api, &operator, &system.smtp.inbox, options.smoke).await?;
    let cast = Arc::new(cast);
    let ledger = Arc::new(Ledger::default());
    let started = Instant::now();
    let seconds = if options.smoke { 0 } else { options.seconds };
    let schedule_until = started + Duration::from_secs(seconds);
    let load_until = Arc::new(std::sync::Mutex::new(None::<Instant>));
    // The load runs until the schedule's last fault is over, and a few seconds of calm after.
    let load = {
        let (api, cast, ledger, until) = (
            api.clone(),
            cast.clone(),
            ledger.clone(),
            load_until.clone(),
        );
        tokio::spawn(async move {
            load::run_until(api, cast, ledger, WORKERS, until).await;
        })
    };
    let mut faults = Vec::new();
    loop {
        faults.extend(schedule(&mut system, &ledger, options.smoke, options.async_standby).await?);
        if Instant::now() >= schedule_until {
            break;
        }
    }
    ledger.enter("calm after");
    *load_until.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Instant::now() + Duration::from_secs(3));
    load.await.map_err(|e| anyhow!("the load stopped: {e}"))?;

    let sent = ledger.sent.lock().unwrap_or_else(|p| p.into_inner()).len();
    eprintln!("chaos: waiting until no delivery is pending ({sent} codes acknowledged)");
    let settling = Instant::now();
    if !account::settle_deliveries(&direct, &tenant, Duration::from_secs(150)).await {
        eprintln!("chaos: deliveries still pending after 150 s");
    }
    eprintln!(
        "chaos: settled in {:.1} s",
        settling.elapsed().as_secs_f64()
    );
    let inboxes: [&Inbox; 2] = [&system.smtp.inbox, &system.sms.inbox];
    let mut accounts = account::check(&direct, &tenant, &ledger, &inboxes).await?;
    let (logged, read, missing, disordered) =
        read_models::audit_gaps(&api, &cast.admin_key, &direct, &tenant).await?;
    accounts.lines.push(format!(
        "audit history read through the API, oldest first: {read} of {logged} events, \
         {missing} missing, {disordered} repeated or out of commit order"
    ));
    system.stop_instances().await;
    let differing = read_models::differing_from_rebuild(&direct, &exe, &env).await?;
    accounts.lines.push(format!(
        "read models equal to a rebuild from the log: {}",
        if differing.is_empty() {
            "all five".to_owned()
        } else {
            format!("NO, {} differ", differing.join(", "))
        }
    ));
    let stats = ledger.stats();
    report(&stats, &faults, &accounts, started.elapsed());
    system.stop().await;
    direct.close().await;
    if missing > 0 || disordered > 0 || !differing.is_empty() {
        return Err(anyhow!(
            "the audit history has gaps or the read models differ from a rebuild (see above)"
        ));
    }
    if options.async_standby {
        println!(
            "(asynchronous standby: what was lost or accepted twice above is what a failover \
             without synchronous replication costs)"
        );
    } else if accounts.lost > 0 || accounts.duplicated > 0 || accounts.lockout_errors > 0 {
        return Err(anyhow!(
            "the run lost or duplicated acknowledged work (see the lines above)"
        ));
    }
    if !accounts.unexercised.is_empty() {
        return Err(anyhow!(
            "the run acknowledged no {}: it proves nothing about them",
            accounts.unexercised.join(", ")
        ));
    }
    Ok(())
}

/// One pass of the faults. Returns each fault with how long it took.
async fn schedule(
    system: &mut System,
    ledger: &Ledger,
    smoke: bool,
    asynchronous: bool,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let calm = |s| tokio::time::sleep(Duration::from_secs(s));
    let outage = Duration::from_secs(if smoke { 5 } else { 20 });
    let mut done = Vec::new();
    let mut fault = |name: &'static str, at: Instant| done.push((name, faults::since(at)));

    ledger.enter("calm");
    calm(3).await;
    let victim = (api::unix_now() as usize) % INSTANCES;
    ledger.enter("SIGKILL and restart");
    let at = Instant::now();
    system.kill_and_restart(victim).await?;
    fault("SIGKILL and restart", at);

    ledger.enter("calm");
    calm(2).await;
    ledger.enter("rolling SIGTERM restart");
    let at = Instant::now();
    system.rolling_restart().await?;
    fault("rolling SIGTERM restart", at);

    ledger.enter("calm");
    calm(2).await;
    ledger.enter("PostgreSQL fast restart");
    let at = Instant::now();
    system.restart_pg(false).await?;
    fault("PostgreSQL fast restart", at);

    ledger.enter("calm");
    calm(2).await;
    ledger.enter("providers down");
    let at = Instant::now();
    system.providers_down(outage).await;
    fault("providers down", at);

    ledger.enter("calm");
    calm(2).await;
    ledger.enter("providers hang");
    let at = Instant::now();
    system.providers_hang(outage).await;
    fault("providers hang", at);

    ledger.enter("calm");
    calm(2).await;
    ledger.enter("PostgreSQL immediate restart");
    let at = Instant::now();
    system.restart_pg(true).await?;
    fault("PostgreSQL immediate restart", at);

    ledger.enter("calm");
    let standby = system.start_standby(!asynchronous).await?;
    calm(2).await;
    ledger.enter("failover to the standby");
    let at = Instant::now();
    system.fail_over(standby).await?;
    fault("failover to the standby", at);
    ledger.enter("calm");
    calm(2).await;
    Ok(done)
}

/// The tenant, its keys and its users: signers enrolled with TOTP (a few of them with a
/// verified email address for `sendCode`), and users only admins reset.
async fn cast(
    api: &Api,
    operator: &str,
    mail: &Inbox,
    smoke: bool,
) -> anyhow::Result<(String, Cast)> {
    let (tenant, admin_key, app_key) = api.create_tenant(operator, "Chaos").await?;
    let (signers, mailed, resettable, targets) = if smoke {
        (60, 20, 6, 6)
    } else {
        (300, 60, 20, 20)
    };
    eprintln!("chaos: enrolling {signers} users");
    let signers = api::enroll(api, &app_key, "signer-", signers, WORKERS).await?;
    let targets = api::enroll(api, &app_key, "target-", targets, WORKERS).await?;
    let resettable: Vec<String> = api::enroll(api, &app_key, "reset-", resettable, WORKERS)
        .await?
        .iter()
        .map(|u| u.user.clone())
        .collect();
    let mut with_mail = Vec::new();
    for u in signers.iter().take(mailed) {
        add_email(api, &app_key, mail, u).await?;
        with_mail.push(u.user.clone());
    }
    Ok((
        tenant,
        Cast {
            app_key,
            admin_key,
            signers,
            mailed: with_mail,
            mail: mail.clone(),
            targets,
            resettable,
        },
    ))
}

const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!, $r: String!) { addEmail(userId: $u, email: $e, proof: { method: RECOVERY_CODE, code: $r }) { id } }";
const CONFIRM_EMAIL: &str = "mutation($u: ID!, $c: ID!, $k: String!, $r: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k, proof: { method: RECOVERY_CODE, code: $r }) { codes } }";

async fn add_email(api: &Api, key: &str, mail: &Inbox, user: &api::Enrolled) -> anyhow::Result<()> {
    let email = format!("{}@example.com", user.user);
    let proof = |n: usize| {
        user.recovery_codes
            .get(n)
            .cloned()
            .ok_or_else(|| anyhow!("{} has too few recovery codes", user.user))
    };
    let added = api
        .data(
            key,
            ADD_EMAIL,
            json!({ "u": user.user, "e": email, "r": proof(0)? }),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = mail.latest_code(&email, 6) {
            break code;
        }
        if Instant::now() > deadline {
            return Err(anyhow!("no code reached {email}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    api.data(
        key,
        CONFIRM_EMAIL,
        json!({ "u": user.user, "c": added["addEmail"]["id"], "k": code, "r": proof(1)? }),
    )
    .await?;
    Ok(())
}

fn report(
    stats: &std::collections::BTreeMap<&'static str, load::PhaseStats>,
    faults: &[(&'static str, f64)],
    accounts: &account::Accounts,
    took: Duration,
) {
    println!(
        "Chaos run: {INSTANCES} instances, {:.0} s",
        took.as_secs_f64()
    );
    println!();
    println!(
        "| phase | sent | answered | errors by code | unanswered | longest without a success (s) |"
    );
    println!("| --- | ---: | ---: | --- | ---: | ---: |");
    let mut max_unavailable: f64 = 0.0;
    for (phase, s) in stats {
        let errors = s
            .errors
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let gap = s.longest_gap.as_secs_f64();
        max_unavailable = max_unavailable.max(gap);
        println!(
            "| {phase} | {} | {} | {errors} | {} | {gap:.2} |",
            s.sent, s.answered, s.unanswered
        );
    }
    println!();
    for (name, took) in faults {
        println!("- {name}: {took:.1} s");
    }
    println!();
    for line in &accounts.lines {
        println!("- {line}");
    }
    println!(
        "- provider duplicates (not counted as duplicated): {}",
        accounts.provider_duplicates
    );
    println!();
    println!(
        "CHAOS acknowledged={} lost={} duplicated={} max_unavailable_s={max_unavailable:.2} \
         provider_duplicated={} delivered_unrecorded={}",
        accounts.acknowledged,
        accounts.lost,
        accounts.duplicated,
        accounts.provider_duplicates,
        accounts.delivered_unrecorded
    );
}
