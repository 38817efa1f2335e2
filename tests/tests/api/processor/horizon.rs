//! The commit horizon the processor and the audit reads read below: never held back by
//! another database's transactions ending as it is read, nor by a kept read of the backends,
//! and the processor's transactions `READ COMMITTED` whatever the default (decision 150).

use sqlx::{Connection, PgConnection};
use twofold_infra::processor::EventProcessor;
use twofold_infra::projections;
use twofold_tests::{fresh_database, repeatable_read_pool};

use super::{insert_registration, tenants};

/// A transaction of another database that ends while the horizon is read must not hold the
/// horizon below what this database had already committed. It did, for that one read: the
/// snapshot came before the scan of `pg_locks`, so such a transaction was in the snapshot and
/// no longer known to be elsewhere, and a page read just after its own write could miss it
/// (the console's audit page did, once, in CI). Here transactions of another database end all
/// the time while this one commits and reads its horizon.
#[tokio::test]
async fn transactions_ending_in_another_database_do_not_hide_what_was_committed_here() {
    let here = fresh_database().await;
    let elsewhere = fresh_database().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (url, stop) = (elsewhere.clone(), stop.clone());
            tokio::spawn(async move {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                    sqlx::query("SELECT pg_current_xact_id()")
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
                }
            })
        })
        .collect();
    let mut reader = PgConnection::connect(&here).await.unwrap();
    let mut conn = PgConnection::connect(&here).await.unwrap();
    let elsewhere_name: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut PgConnection::connect(&elsewhere).await.unwrap())
        .await
        .unwrap();
    let (mut hidden, mut raced) = (0, 0);
    for _ in 0..400 {
        // A transaction of its own, committed when the statement returns.
        let committed: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        // The test's power: reads during which an older transaction of the other database ran.
        let older: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND backend_xid::text::bigint < $2 % 4294967296",
        )
        .bind(&elsewhere_name)
        .bind(committed)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        raced += i32::from(older > 0);
        let horizon = twofold_infra::pg::commit_horizon(&mut reader)
            .await
            .unwrap();
        if horizon <= committed {
            hidden += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(
        raced > 100,
        "only {raced} reads overlapped the other database's transactions"
    );
    assert_eq!(hidden, 0, "reads whose horizon hid a committed transaction");
}

/// Inside a transaction PostgreSQL keeps the first read of `pg_stat_activity` until the
/// transaction ends, while `pg_locks` is read afresh. The processor reads the horizon several
/// times in one transaction (a rebuild), so each later read joined today's locks with the first
/// read's backends: a backend started since was not known at all (its transaction held the
/// horizon), and one that reused the process id of a backend of another database would have
/// been taken for it, and its running transaction skipped: a horizon too high, events lost.
#[tokio::test]
async fn the_horizon_read_twice_in_one_transaction_knows_backends_started_in_between() {
    let here = fresh_database().await;
    let elsewhere = fresh_database().await;
    let mut tx = PgConnection::connect(&here).await.unwrap();
    sqlx::query("BEGIN").execute(&mut tx).await.unwrap();
    twofold_infra::pg::commit_horizon(&mut tx).await.unwrap();

    // A backend of the other database, started after that first read, holds a transaction.
    let mut open = PgConnection::connect(&elsewhere).await.unwrap();
    sqlx::query("BEGIN").execute(&mut open).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut open)
        .await
        .unwrap();
    let committed: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut PgConnection::connect(&here).await.unwrap())
        .await
        .unwrap();

    let horizon = twofold_infra::pg::commit_horizon(&mut tx).await.unwrap();
    assert!(
        horizon > committed,
        "the other database's new backend is known: {horizon} <= {committed}"
    );
    sqlx::query("ROLLBACK").execute(&mut open).await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut tx).await.unwrap();
}

/// An operator may set a database's or role's default to `REPEATABLE READ`. A batch's
/// snapshot would then be taken before it waits for the checkpoints another instance holds,
/// and when that instance commits, PostgreSQL refuses the batch (40001) instead of letting it
/// read on. The processor's transactions are `READ COMMITTED` whatever the default.
#[tokio::test]
async fn a_repeatable_read_default_does_not_fail_a_batch_that_waited_for_another_instance() {
    let url = fresh_database().await;
    let pool = repeatable_read_pool(url.parse().unwrap(), 2).await;
    let processor = std::sync::Arc::new(
        EventProcessor::new(pool.clone(), projections::all())
            .await
            .unwrap(),
    );
    let mut conn = PgConnection::connect(&url).await.unwrap();
    insert_registration(&mut conn, "first").await;

    // Another instance's batch holds every checkpoint.
    let mut other = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("UPDATE projection_checkpoints SET last_position = last_position")
        .execute(&mut other)
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let processor = processor.clone();
        async move { processor.catch_up().await }
    });
    // Until the batch waits on those rows (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let blocked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if blocked > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let applied = waiting.await.unwrap();
    assert!(applied.is_ok(), "{applied:?}");
    assert_eq!(tenants(&pool).await, vec!["first".to_owned()]);
}
