//! The reservations of one lane (sends sharing a tenant's budget) are queued on the instance
//! and written in batches, straight through `PgSendLimiter`.

use std::time::{Duration, Instant};

use chrono::Utc;
use twofold_infra::send_limiter::{lock_key, PgSendLimiter, LOCK_CLASS};
use twofold_services::ports::{Reservation, SendCap, SendLimiter};
use twofold_tests::{spawn_app, TestApp};

const BUDGET: &str = "tenant/t/email";

fn caps(destination: &str, budget: u32) -> Vec<SendCap> {
    vec![
        SendCap {
            bucket: format!("dest/{destination}"),
            limit: 5,
            window: chrono::Duration::minutes(10),
        },
        SendCap {
            bucket: BUDGET.to_owned(),
            limit: budget,
            window: chrono::Duration::hours(1),
        },
    ]
}

/// Sends counted in `bucket`.
async fn counted(app: &TestApp, bucket: &str) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(sends), 0) FROM send_counts WHERE bucket = $1")
        .bind(bucket)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The previous version's reservation rows left in `bucket`.
async fn old_rows(app: &TestApp, bucket: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT challenge_id FROM send_reservations WHERE bucket = $1 ORDER BY challenge_id",
    )
    .bind(bucket)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// Holds `bucket`'s lock on a connection of its own.
async fn hold(app: &TestApp, bucket: &str) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut connection = app.db.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1, $2)")
        .bind(LOCK_CLASS)
        .bind(lock_key(bucket))
        .execute(&mut *connection)
        .await
        .unwrap();
    connection
}

/// Waits until `n` reservations wait in `limiter`, the first batch's statement for a lock.
async fn until_waiting(app: &TestApp, limiter: &PgSendLimiter, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statements: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND classid = $1::oid",
        )
        .bind(LOCK_CLASS)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if limiter.waiting() >= n && statements >= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "{} wait", limiter.waiting());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reservations_abandoned_while_they_wait_are_not_kept() {
    let app = spawn_app().await;
    let limiter = PgSendLimiter::new(app.db.clone());
    let now = Utc::now();
    let (a, b, c) = (caps("a", 100), caps("b", 100), caps("c", 100));
    let mut lock = hold(&app, BUDGET).await;
    // The first is being written (its statement waits for the lock), the second is queued
    // behind it; then both requests go away, as when their clients hang up.
    tokio::select! {
        _ = async {
            tokio::join!(
                limiter.reserve("written", &a, now),
                limiter.reserve("queued", &b, now),
            )
        } => panic!("reserved while the lock was held"),
        () = until_waiting(&app, &limiter, 2) => {}
    }
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *lock)
        .await
        .unwrap();
    // A send that is waited for is written after whatever the lane had to give back.
    let answer = limiter.reserve("kept", &c, now).await.unwrap();
    assert_eq!(answer, Reservation::Granted);
    assert_eq!(counted(&app, BUDGET).await, 1, "only the send waited for");
    assert_eq!(counted(&app, "dest/a").await, 0, "given back");
    assert_eq!(counted(&app, "dest/b").await, 0, "never taken");
}

#[tokio::test]
async fn a_batch_counts_the_sends_granted_before_each_of_its_own() {
    let app = spawn_app().await;
    let limiter = PgSendLimiter::new(app.db.clone());
    let now = Utc::now();
    // A budget of three, with one send counted already; one destination may take two more.
    let earlier = caps("earlier", 3);
    assert_eq!(
        limiter.reserve("earlier", &earlier, now).await.unwrap(),
        Reservation::Granted
    );
    let mut lock = hold(&app, BUDGET).await;
    let requests: Vec<(String, Vec<SendCap>)> = (0..5)
        .map(|i| {
            (
                format!("s{i}"),
                caps(if i < 3 { "same" } else { "other" }, 3),
            )
        })
        .collect();
    let all = futures::future::join_all(
        requests
            .iter()
            .map(|(id, caps)| limiter.reserve(id, caps, now)),
    );
    let release = async {
        // The first waits for the lock alone; the other four are then written in one batch.
        until_waiting(&app, &limiter, 5).await;
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut *lock)
            .await
            .unwrap();
    };
    let (answers, ()) = tokio::join!(all, release);
    let answers: Vec<Reservation> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(answers[..2], [Reservation::Granted, Reservation::Granted]);
    for refused in &answers[2..] {
        let Reservation::Refused {
            cap,
            retry_after_seconds,
        } = *refused
        else {
            panic!("{answers:?}")
        };
        assert_eq!(cap, 1, "the budget is full: {answers:?}");
        // The oldest send counted is this minute's: it leaves the hour in about an hour.
        assert!(
            (3_540..=3_660).contains(&retry_after_seconds),
            "{retry_after_seconds}"
        );
    }
    assert_eq!(counted(&app, BUDGET).await, 3);
}

/// A give-back takes its send off the counts of the minute it was granted in, and only its own:
/// the other send of the same destination and budget stays counted.
#[tokio::test]
async fn a_send_given_back_comes_off_its_counts_and_the_others_stay() {
    let app = spawn_app().await;
    let limiter = PgSendLimiter::new(app.db.clone());
    let now = Utc::now();
    let caps = caps("x", 10);
    for id in ["kept", "given back"] {
        let answer = limiter.reserve(id, &caps, now).await.unwrap();
        assert_eq!(answer, Reservation::Granted);
    }
    assert_eq!(counted(&app, BUDGET).await, 2);
    limiter.release("given back", &caps, now).await.unwrap();
    assert_eq!(counted(&app, BUDGET).await, 1);
    assert_eq!(counted(&app, "dest/x").await, 1);
    // A send of an earlier minute given back comes off that minute's count.
    let earlier = now - chrono::Duration::minutes(3);
    limiter.reserve("earlier", &caps, earlier).await.unwrap();
    limiter.release("earlier", &caps, earlier).await.unwrap();
    let minutes: Vec<(String, i32)> = sqlx::query_as(
        "SELECT to_char(minute AT TIME ZONE 'UTC', 'HH24:MI'), sends FROM send_counts \
         WHERE bucket = $1 ORDER BY minute",
    )
    .bind(BUDGET)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let minute = |t: chrono::DateTime<Utc>| t.format("%H:%M").to_string();
    assert_eq!(minutes, vec![(minute(earlier), 0), (minute(now), 1)]);
}

#[tokio::test]
async fn a_grant_dropped_before_its_caller_reads_it_is_given_back() {
    let app = spawn_app().await;
    let limiter = PgSendLimiter::new(app.db.clone());
    let caps = caps("unread", 10);
    let mut reserve = Box::pin(limiter.reserve("unread", &caps, Utc::now()));
    assert!(futures::poll!(&mut reserve).is_pending(), "queued");
    // The lane answers, but the caller is not polled again before it is dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while limiter.waiting() > 0 {
        assert!(Instant::now() < deadline, "never answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counted(&app, BUDGET).await, 1, "granted");
    drop(reserve);
    while counted(&app, BUDGET).await != 0 {
        assert!(Instant::now() < deadline, "the unread grant is kept");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_batch_waits_for_a_stalled_lock_only_so_long_and_takes_nothing() {
    let app = spawn_app().await;
    let limiter = PgSendLimiter::with_lock_wait(app.db.clone(), Duration::from_millis(200));
    let now = Utc::now();
    let mut lock = hold(&app, BUDGET).await;
    let stalled = tokio::time::timeout(
        Duration::from_secs(10),
        limiter.reserve("stalled", &caps("s", 10), now),
    )
    .await
    .expect("the batch gives up on the lock");
    assert!(stalled.is_err(), "{stalled:?}");
    assert_eq!(counted(&app, "dest/s").await, 0);
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *lock)
        .await
        .unwrap();
    // The lane goes on with the next sends.
    let after = limiter.reserve("after", &caps("s", 10), now).await.unwrap();
    assert_eq!(after, Reservation::Granted);
}

/// The previous version's expired rows (a rolling deploy) are pruned without waiting for their
/// bucket's counts.
#[tokio::test]
async fn pruning_another_bucket_s_expired_sends_waits_for_none_of_its_counts() {
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at) \
         SELECT 'tenant/other/sms', now() - interval '30 minutes', 'old' || i, \
                now() - interval '10 minutes' \
         FROM generate_series(1, 5) i",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // Another tenant's send is changing that bucket's counts.
    let mut other = app.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM send_counts WHERE bucket = 'tenant/other/sms' FOR UPDATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let limiter = PgSendLimiter::new(app.db.clone());
    let granted = tokio::time::timeout(
        Duration::from_secs(5),
        limiter.reserve("now", &caps("p", 10), Utc::now()),
    )
    .await
    .expect("not held up by another bucket's counts");
    assert_eq!(granted.unwrap(), Reservation::Granted);
    assert_eq!(
        old_rows(&app, "tenant/other/sms").await,
        Vec::<String>::new(),
        "and the expired sends are pruned"
    );
    other.rollback().await.unwrap();
}

#[tokio::test]
async fn an_instance_whose_clock_runs_ahead_prunes_nothing_still_counted() {
    let app = spawn_app().await;
    // A destination's send eight minutes ago (by the previous version, which wrote a row), in
    // its ten-minute window by the database's clock.
    sqlx::query(
        "INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at) \
         VALUES ('dest/victim', now() - interval '8 minutes', 'earlier', \
                 now() + interval '2 minutes')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let limiter = PgSendLimiter::new(app.db.clone());
    let ahead = Utc::now() + chrono::Duration::minutes(5);
    let granted = limiter.reserve("ahead", &caps("p", 10), ahead).await;
    assert_eq!(granted.unwrap(), Reservation::Granted);
    assert_eq!(old_rows(&app, "dest/victim").await, ["earlier"]);
    assert_eq!(counted(&app, "dest/victim").await, 1, "still counted");
}

/// Under REPEATABLE READ (a database or role set so) the count would be read from a snapshot
/// taken before the locks, and two batches could each see room for a cap's last slot: the
/// reservation refuses to run at all.
#[tokio::test]
async fn a_reservation_refuses_to_count_outside_read_committed() {
    let app = spawn_app().await;
    let pool = twofold_tests::repeatable_read_pool((*app.db.connect_options()).clone(), 1).await;
    let limiter = PgSendLimiter::new(pool);
    let e = limiter
        .reserve("rr", &caps("rr", 10), Utc::now())
        .await
        .unwrap_err();
    assert!(
        format!("{e:?}").contains("only under READ COMMITTED"),
        "{e:?}"
    );
    assert_eq!(counted(&app, BUDGET).await, 0);
}

/// Arrays that do not line up (a bug in a caller) fail the batch, taking nothing: a cap
/// without its limit, or one outside its reservation's run, would otherwise go unchecked.
#[tokio::test]
async fn a_batch_whose_caps_do_not_line_up_fails_and_takes_nothing() {
    let app = spawn_app().await;
    let now = Utc::now();
    let batch = |owners: Vec<i32>, limits: Vec<i64>| {
        sqlx::query(
            "SELECT * FROM twofold_reserve_send_counts($1, $2, $3, $4, $5, $6, $7, 0, $8, 1000)",
        )
        .bind(LOCK_CLASS)
        .bind(vec![lock_key("dest/m")])
        .bind(owners)
        .bind(vec!["dest/m", "dest/m"])
        .bind(limits)
        .bind(vec![now - chrono::Duration::minutes(10); 2])
        .bind(vec![now; 2])
        .bind(now - chrono::Duration::hours(2))
        .fetch_all(&app.db)
    };
    let short = batch(vec![1, 2], vec![5]).await;
    assert!(short.is_err(), "a cap without its limit: {short:?}");
    let unordered = batch(vec![2, 1], vec![5, 5]).await;
    assert!(unordered.is_err(), "caps out of order: {unordered:?}");
    assert_eq!(counted(&app, "dest/m").await, 0);
    let fine = batch(vec![1, 2], vec![5, 5]).await.unwrap();
    assert!(fine.is_empty(), "both granted");
    assert_eq!(counted(&app, "dest/m").await, 2);
}

// The reservation plans its statements once per session, never JIT-compiled, without
// sequential scans: PostgreSQL's own choice planned its count of the caps afresh at most calls,
// which cost more than the count (round 11 of docs/benchmark.md). A later migration that
// replaces the function must keep these settings, which `CREATE OR REPLACE` drops.
#[tokio::test]
async fn a_reservation_plans_its_statements_once_per_session() {
    let app = spawn_app().await;
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(proconfig) FROM pg_proc WHERE proname = 'twofold_reserve_send_counts'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for wanted in [
        "enable_seqscan=off",
        "plan_cache_mode=force_generic_plan",
        "jit=off",
    ] {
        assert!(
            settings.iter().any(|s| s == wanted),
            "{wanted}: {settings:?}"
        );
    }
}
