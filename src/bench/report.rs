//! What one run prints: the human-readable figures, then the machine-readable `SUMMARY`,
//! `CEILING` and `HISTORY` lines that `docs/benchmark.md` quotes.

use super::checks::Check;
use super::delivery::DeliveryResult;
use super::enrollment::Enrollment;
use super::history::Level;
use super::limit::Limit;
use super::load::LoadResult;
use super::BenchOptions;

const MIB: f64 = 1024.0 * 1024.0;

/// The figures of one run.
pub(super) struct Report<'a> {
    pub options: &'a BenchOptions,
    pub result: &'a mut LoadResult,
    pub limit: &'a Limit,
    pub ceiling: Option<f64>,
    pub floor: &'a mut LoadResult,
    /// Service CPU seconds during the floor load.
    pub svc_floor: f64,
    /// CPU seconds of the service, PostgreSQL and the load generator during the verify load.
    pub cpu: [f64; 3],
    pub enrolled: &'a Enrollment,
    pub delivered: &'a DeliveryResult,
    /// Idle RSS in bytes before and after the load.
    pub rss: [u64; 2],
    pub rss_after_history: Option<u64>,
    pub statements: &'a [String],
    pub history: &'a [Level],
    pub checks: &'a [Check],
    pub check_delivery: &'a Check,
}

impl Report<'_> {
    /// Prints the report; whether a correctness check failed.
    pub(super) fn print(self) -> bool {
        let Report {
            options,
            result,
            limit,
            ceiling,
            floor,
            svc_floor,
            cpu: [svc, pg, generator],
            enrolled,
            delivered,
            rss: [rss_idle_start, rss_idle_end],
            rss_after_history,
            statements,
            history,
            checks,
            check_delivery,
        } = self;
        let (svc, pg, generator) = (&svc, &pg, &generator);
        let svc_floor = &svc_floor;
        let (rss_idle_start, rss_idle_end) = (&rss_idle_start, &rss_idle_end);
        let ceiling = &ceiling;
        let rss_after_history = &rss_after_history;
        let wall = result.elapsed.as_secs_f64();
        let rate = result.rate();
        let (p50, p99) = (result.quantile_ms(0.5), result.quantile_ms(0.99));
        let ratio = rate / limit.commits_per_second;
        println!();
        println!(
            "Twofold bench — {} cores, {} clients, {} s, {:.0}% wrong codes{}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            options.concurrency,
            options.seconds,
            options.wrong_share * 100.0,
            if options.smoke {
                " (smoke run: figures are not meaningful)"
            } else {
                ""
            }
        );
        println!(
            "  verify      {rate:.0} verifies/s, p50 {p50:.1} ms, p99 {p99:.1} ms ({} requests, {} valid, {} wrong)",
            result.latencies_us.len(),
            result.valid_sent,
            result.wrong_sent
        );
        println!(
            "  limit       {:.0} single-INSERT commits/s ({})",
            limit.commits_per_second, limit.tool
        );
        println!("  ratio       {:.2} of the limit", ratio);
        match *ceiling {
            Some(ceiling) => println!(
                "  ceiling     {ceiling:.0} verifies/s with no service: PostgreSQL running each verify's load and INSERT (pgbench, {} per commit): {:.2} of the limit; Twofold reaches {:.2} of it",
                options.concurrency,
                ceiling / limit.commits_per_second,
                rate / ceiling
            ),
            None => println!("  ceiling     not measured: pgbench is not installed"),
        }
        let floor_rate = floor.rate();
        println!(
            "  api floor   {floor_rate:.0} requests/s of {{ __typename }} (no database), p50 {:.1} ms, p99 {:.1} ms, service CPU {:.0} µs/request: {:.2} of the limit",
            floor.quantile_ms(0.5),
            floor.quantile_ms(0.99),
            svc_floor * 1e6 / floor.latencies_us.len().max(1) as f64,
            floor_rate / limit.commits_per_second
        );
        println!(
            "  cpu         service {:.1} s, postgres {:.1} s, load generator {:.1} s over {:.1} s wall",
            svc,
            pg,
            generator,
            wall
        );
        println!(
            "  per verify  service {:.0} µs, postgres {:.0} µs, load generator {:.0} µs of CPU",
            svc * 1e6 / result.latencies_us.len().max(1) as f64,
            pg * 1e6 / result.latencies_us.len().max(1) as f64,
            generator * 1e6 / result.latencies_us.len().max(1) as f64,
        );
        let [svc_user, pg_user, gen_user] = enrolled.cpu_per_user;
        println!(
            "  enrollment  {:.0} users/s ({} users); per user: service {svc_user:.0} µs, postgres {pg_user:.0} µs, load generator {gen_user:.0} µs of CPU",
            enrolled.rate,
            enrolled.users.len()
        );
        println!(
            "  delivery    {:.0} codes/s sendCode → delivered ({} codes, email + SMS, {:.1} s; every sendCode answered after {:.1} s)",
            delivered.rate(),
            delivered.codes,
            delivered.elapsed.as_secs_f64(),
            delivered.answered.as_secs_f64()
        );
        let [svc_code, pg_code, gen_code] = delivered.cpu_per_code();
        println!(
            "  per code    service {svc_code:.0} µs, postgres {pg_code:.0} µs, load generator and sinks {gen_code:.0} µs of CPU"
        );
        println!(
            "  memory      idle RSS {:.1} MiB at start, {:.1} MiB after the load",
            *rss_idle_start as f64 / MIB,
            *rss_idle_end as f64 / MIB
        );
        if let Some(rss) = *rss_after_history {
            println!(
                "  memory      idle RSS {:.1} MiB after the history mode (it replays 10,000-event streams)",
                rss as f64 / MIB
            );
        }
        if !statements.is_empty() {
            println!("  postgres    statements during the verify load, by total execution time:");
            for line in statements.iter() {
                println!("              {line}");
            }
        }
        if !enrolled.statements.is_empty() {
            println!("  postgres    statements during enrollment, by total execution time:");
            for line in enrolled.statements.iter() {
                println!("              {line}");
            }
        }
        if !delivered.statements.is_empty() {
            println!("  postgres    statements during the delivery path, by total execution time:");
            for line in delivered.statements.iter() {
                println!("              {line}");
            }
        }
        for level in history.iter() {
            println!(
                "  history     {:>6} past sign-ins: {:.0} verifies/s, p50 {:.1} ms, p99 {:.1} ms ({} requests{})",
                level.history,
                level.rate,
                level.p50,
                level.p99,
                level.requests,
                if level.unexpected > 0 {
                    format!(", {} UNEXPECTED answers", level.unexpected)
                } else {
                    String::new()
                }
            );
        }
        if result.starved > 0 {
            println!("  note        the load ran out of unused (user, time step) pairs {} times: rerun with more --users", result.starved);
        }
        let mut failed = false;
        for c in checks.iter().chain(std::iter::once(check_delivery)) {
            println!(
                "  check       {} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.detail
            );
            failed |= !c.ok;
        }
        println!(
            "SUMMARY verifies/s={rate:.0} p50_ms={p50:.1} p99_ms={p99:.1} limit_commits/s={:.0} ratio={ratio:.2} delivered_codes/s={:.0} idle_rss_mib={:.1} floor_requests/s={floor_rate:.0} floor_ratio={:.2}",
            limit.commits_per_second, delivered.rate(), *rss_idle_start as f64 / MIB, floor_rate / limit.commits_per_second
        );
        if let Some(ceiling) = *ceiling {
            println!(
                "CEILING ceiling_verifies/s={ceiling:.0} ceiling_ratio={:.2} of_ceiling={:.2}",
                ceiling / limit.commits_per_second,
                rate / ceiling
            );
        }
        if !history.is_empty() {
            println!(
                "HISTORY {}",
                history
                    .iter()
                    .map(|l| format!(
                        "h{}_verifies/s={:.0} h{}_p50_ms={:.1}",
                        l.history, l.rate, l.history, l.p50
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let unexpected: usize = history.iter().map(|l| l.unexpected).sum();
        if unexpected > 0 {
            println!(
                "  check       FAIL history mode: {unexpected} answers were not what the code deserved"
            );
            failed = true;
        }
        failed
    }
}
