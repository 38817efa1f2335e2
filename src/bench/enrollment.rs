//! Enrollment over the API, timed: how many users per second, and what each costs the service
//! and PostgreSQL in CPU (steadier than the rate, which the shared cores make noisy).

use std::sync::Arc;
use std::time::Instant;

use super::api::{self, Api, Enrolled};
use super::delivery::Probe;
use super::BenchOptions;

/// The users enrolled, and what it took.
pub(super) struct Enrollment {
    pub users: Vec<Arc<Enrolled>>,
    /// The users of the first batch, which sized the rest.
    pub first_batch: usize,
    pub rate: f64,
    /// CPU per user of the service, PostgreSQL and the load generator, in µs.
    pub cpu_per_user: [f64; 3],
    /// What PostgreSQL spent its time on, with `--statement-stats`.
    pub statements: Vec<String>,
}

/// Enrolls `--users` users, or, without it, a first batch of 2,000 whose rate says how many the
/// verify load will need.
pub(super) async fn run(
    api: &Api,
    key: &str,
    options: &BenchOptions,
    probe: &Probe<'_>,
) -> anyhow::Result<Enrollment> {
    if let Some(pool) = probe.statements {
        super::reset_statement_stats(pool).await?;
    }
    let cpu0 = (probe.cpu)();
    let first_batch = options.users.unwrap_or(2000).min(2000);
    let t = Instant::now();
    let mut users = api::enroll(api, key, "u", first_batch, options.concurrency).await?;
    let first_rate = first_batch as f64 / t.elapsed().as_secs_f64();
    let wanted = options.users.unwrap_or_else(|| {
        // An enrollment is two requests, each costing about twice what a verify does (a seal,
        // recovery codes). A user just enrolled has used the current step, so it gives one
        // valid code (the next step) now and one more each time a 30 s step passes.
        let verify_rate = first_rate * 2.0 * 2.0;
        let valid = verify_rate * options.seconds as f64 * (1.0 - options.wrong_share);
        let per_user = 1.0 + options.seconds as f64 / 30.0;
        (valid / per_user * 1.5) as usize + options.concurrency
    });
    if wanted > users.len() {
        eprintln!("bench: enrolling {wanted} users ({first_rate:.0} enrollments/s so far)");
        let more = api::enroll(api, key, "v", wanted - users.len(), options.concurrency).await?;
        users.extend(more);
    }
    // Over every user enrolled: the first batch alone lasts a second or two, too short to
    // compare two builds by.
    let rate = users.len() as f64 / t.elapsed().as_secs_f64();
    let cpu1 = (probe.cpu)();
    let per_user =
        |i: usize| cpu1[i].saturating_sub(cpu0[i]).as_secs_f64() * 1e6 / users.len().max(1) as f64;
    let statements = match probe.statements {
        Some(pool) => super::statement_stats(pool).await?,
        None => Vec::new(),
    };
    Ok(Enrollment {
        cpu_per_user: [per_user(0), per_user(1), per_user(2)],
        users,
        first_batch,
        rate,
        statements,
    })
}
