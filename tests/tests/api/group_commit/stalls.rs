//! The events writer when PostgreSQL is slow to answer or does not: statement deadlines, lock
//! waits.

use std::time::Duration;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use cqrs_es::Aggregate;
use twofold_domain::user::User;
use twofold_infra::append::append;
use twofold_infra::group_commit::{refused_at_lock_wait, GroupCommit, Statements, WriterLimits};
use twofold_tests::spawn_app;

use super::{lock_waits, sign_in_event, PATIENCE};

// Statements that get no answer in time (here: they wait on keys another transaction holds,
// and the test's deadline is shorter than the writer's lock wait) give their commands an
// unknown outcome at the deadline and free their slots: after two such stalls in a row the
// writer still writes. The server ends each abandoned wait itself (the writer's lock wait), so
// nothing is left waiting to commit once the other transaction lets go.
#[tokio::test]
async fn statements_without_an_answer_end_at_their_deadline_and_leave_nothing_waiting() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let limits = WriterLimits {
        statement_deadline: Duration::from_secs(1),
        ..WriterLimits::default()
    };
    let writer: GroupCommit<User> =
        GroupCommit::with_limits(app.db.clone(), Default::default(), limits);
    let held = [
        sign_in_event(&tenant, "held-1", 1),
        sign_in_event(&tenant, "held-2", 1),
    ];
    let holder = holding(&app, &held).await;

    for event in &held {
        let stuck = tokio::time::timeout(PATIENCE, writer.append(vec![event.clone()]))
            .await
            .expect("an answer within the statement's deadline");
        // The deadline's unknown outcome; on a starved machine the server's lock wait may
        // answer first, with a refusal.
        match &stuck {
            Err(PersistenceError::ConnectionError(_)) => {}
            Err(PersistenceError::UnknownError(e)) if refused_at_lock_wait(e.as_ref()) => {}
            other => panic!("{other:?}"),
        }
    }
    let next = tokio::time::timeout(
        PATIENCE,
        writer.append(vec![sign_in_event(&tenant, "after", 1)]),
    )
    .await
    .expect("the writer writes again");
    assert!(next.is_ok(), "{next:?}");

    let started = std::time::Instant::now();
    while lock_waits(&app).await > 0 {
        assert!(
            started.elapsed() < PATIENCE,
            "abandoned statements still wait for the held keys"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    holder.rollback().await.unwrap();
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id LIKE $1")
        .bind(format!("{tenant}/held-%"))
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(written, 0, "an abandoned statement committed after all");
}

/// What every command of a statement refused at the writer's lock wait hears: a retryable
/// outage, recognised as one that wrote nothing (a code's slot under the send caps is then
/// given back).
fn assert_refused_at_the_lock_wait(outcome: &Result<(), PersistenceError>) {
    let Err(PersistenceError::UnknownError(refused)) = outcome else {
        panic!("a refusal, not {outcome:?}");
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(refused.as_ref());
    let mut unavailable = false;
    while let Some(error) = cause {
        unavailable |= twofold_infra::pg::is_unavailable(error);
        cause = error.source();
    }
    assert!(unavailable, "retryable: {refused}");
    assert!(
        refused_at_lock_wait(refused.as_ref()),
        "wrote nothing: {refused}"
    );
}

/// A transaction of the test's that has written these events and holds their keys.
async fn holding(
    app: &twofold_tests::TestApp,
    events: &[SerializedEvent],
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = app.db.begin().await.unwrap();
    append(&mut holder, User::TYPE, events.iter())
        .await
        .unwrap();
    holder
}

/// Sixteen new users' first events (`{prefix}-00` to `-15`), `held` in place of the eighth,
/// handed over together before the committer runs: one batch.
async fn sixteen_with(
    writer: &GroupCommit<User>,
    tenant: &str,
    prefix: &str,
    held: &SerializedEvent,
) -> Vec<Result<(), PersistenceError>> {
    futures::future::join_all((0..16).map(|i| {
        let event = match i {
            7 => held.clone(),
            _ => sign_in_event(tenant, &format!("{prefix}-{i:02}"), 1),
        };
        writer.append(vec![event])
    }))
    .await
}

/// Three new users' first events, handed over together before the committer runs: one batch.
async fn three_commands(
    writer: &GroupCommit<User>,
    first: SerializedEvent,
    tenant: &str,
) -> Vec<Result<(), PersistenceError>> {
    let batch = futures::future::join_all(vec![
        writer.append(vec![first]),
        writer.append(vec![sign_in_event(tenant, "lw-b", 1)]),
        writer.append(vec![sign_in_event(tenant, "lw-c", 1)]),
    ]);
    tokio::time::timeout(PATIENCE, batch)
        .await
        .expect("the batch ends while the lock is still held")
}

// A lock on the whole table held past the writer's lock wait (a migration building an index
// without CONCURRENTLY, an operator's LOCK TABLE): the batch's commands hear a retryable outage
// after one statement. Before, the lock wait was a conflict (each command decided again, up to
// 20 times, and its caller heard CONFLICT), and the refused batch was halved down to single
// commands, each waiting the lock wait again while it held a writer slot.
#[tokio::test]
async fn a_table_lock_held_past_the_lock_wait_ends_the_batch_as_retryable_in_one_statement() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());
    let mut holder = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();

    let outcomes = three_commands(&writer, sign_in_event(&tenant, "lw-a", 1), &tenant).await;
    holder.rollback().await.unwrap();
    outcomes.iter().for_each(assert_refused_at_the_lock_wait);
    assert_eq!(
        writer.statements(),
        Statements {
            written: 0,
            refused: 1
        }
    );
    // Once the lock is gone, the commands' retries are written.
    let retried = three_commands(&writer, sign_in_event(&tenant, "lw-a", 1), &tenant).await;
    assert!(retried.iter().all(Result::is_ok), "{retried:?}");
}

// A key another transaction holds past the writer's lock wait (a stalled writer of another
// instance) is one command's: PostgreSQL's error names the key's index. That command alone
// hears the retryable outage; the batch is halved and its other commands are written.
#[tokio::test]
async fn a_key_held_past_the_lock_wait_fails_its_command_alone_as_retryable() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());
    let held = sign_in_event(&tenant, "lw-held", 1);
    let holder = holding(&app, std::slice::from_ref(&held)).await;

    let outcomes = three_commands(&writer, held.clone(), &tenant).await;
    holder.rollback().await.unwrap();
    assert_refused_at_the_lock_wait(&outcomes[0]);
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
    // In key order (b, c, held): the batch, then (c, held), then held alone were refused.
    assert_eq!(
        writer.statements(),
        Statements {
            written: 2,
            refused: 3
        }
    );
}

// A key another transaction holds costs its batch one full lock wait, then a short one at each
// halving level: the holder has held it that long already. With a lock wait of 5 s, a batch of
// 16 holding it is answered in about 6 s, where 5 s at each of its five levels took 25, with
// one of the writer's two slots busy all along.
#[tokio::test]
async fn a_held_key_costs_its_batch_one_full_lock_wait_then_short_ones() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let limits = WriterLimits {
        lock_wait: Duration::from_secs(5),
        ..WriterLimits::default()
    };
    let writer: GroupCommit<User> =
        GroupCommit::with_limits(app.db.clone(), Default::default(), limits);
    let held = sign_in_event(&tenant, "hk-07", 1);
    let holder = holding(&app, std::slice::from_ref(&held)).await;

    let started = std::time::Instant::now();
    let batch = sixteen_with(&writer, &tenant, "hk", &held);
    let outcomes = tokio::time::timeout(PATIENCE, batch)
        .await
        .expect("answers");
    let took = started.elapsed();
    holder.rollback().await.unwrap();
    assert_refused_at_the_lock_wait(&outcomes[7]);
    for (i, outcome) in outcomes.iter().enumerate().filter(|&(i, _)| i != 7) {
        assert!(outcome.is_ok(), "{i}: {outcome:?}");
    }
    assert_eq!(writer.statements().refused, 5, "16, 8, 4, 2 and 1 commands");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(9),
        "one full wait, then short ones: took {took:?}"
    );
    let written: Vec<String> =
        sqlx::query_scalar("SELECT aggregate_id FROM events WHERE aggregate_id LIKE $1 ORDER BY 1")
            .bind(format!("{tenant}/hk-%"))
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(written.len(), 15, "{written:?}");
    assert!(!written.contains(&format!("{tenant}/hk-07")));

    // The short wait was the statements' own: a key held for 800 ms now is waited for.
    let next = sign_in_event(&tenant, "hk-next", 1);
    let holder = holding(&app, std::slice::from_ref(&next)).await;
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        holder.rollback().await.unwrap();
    });
    let waited = tokio::time::timeout(PATIENCE, writer.append(vec![next]))
        .await
        .expect("an answer");
    release.await.unwrap();
    assert!(waited.is_ok(), "{waited:?}");
}

// A lock on the whole table taken while a batch is halved for a held key: the part that meets
// it waits once, and every part still to write is answered with the same retryable refusal,
// instead of each waiting out the lock wait in turn with a writer slot busy.
#[tokio::test]
async fn a_table_lock_met_while_halving_answers_the_rest_of_the_batch_at_once() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer = std::sync::Arc::new(GroupCommit::<User>::new(app.db.clone()));
    let held = sign_in_event(&tenant, "tl-07", 1);
    let mut holder = holding(&app, std::slice::from_ref(&held)).await;

    let batch = tokio::spawn({
        let (writer, tenant) = (writer.clone(), tenant.clone());
        async move { sixteen_with(&writer, &tenant, "tl", &held).await }
    });
    // Once the batch was refused for the held key, the same transaction locks the table: the
    // part being halved meets the lock at once or a moment later, the last half (8 to 15)
    // before it is written.
    let started = std::time::Instant::now();
    while writer.statements().refused < 1 {
        assert!(started.elapsed() < PATIENCE, "the batch was never halved");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let locked = std::time::Instant::now();
    let outcomes = tokio::time::timeout(PATIENCE, batch)
        .await
        .expect("answers")
        .unwrap();
    let took = locked.elapsed();
    holder.rollback().await.unwrap();
    assert_refused_at_the_lock_wait(&outcomes[7]);
    assert!(
        outcomes[8..].iter().all(|o| o.is_err()),
        "the parts after the lock: {outcomes:?}"
    );
    for outcome in outcomes.iter().filter(|o| o.is_err()) {
        assert_refused_at_the_lock_wait(outcome);
    }
    // One lock wait (2 s) from the lock on, not one for each part still to write.
    assert!(took < Duration::from_millis(3500), "took {took:?}");
}

// A statement whose session PostgreSQL ends (an administrator's termination, a crash and
// restart) has an unknown outcome: the error can come after the commit was flushed. Its
// commands hear so, and none of them is written again or told it wrote nothing. Before, any
// error with a SQLSTATE was a refusal: the batch was halved and its commands written again.
#[tokio::test]
async fn a_statement_whose_session_is_ended_has_an_unknown_outcome() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer = std::sync::Arc::new(GroupCommit::<User>::new(app.db.clone()));
    let held = sign_in_event(&tenant, "se-held", 1);
    let holder = holding(&app, std::slice::from_ref(&held)).await;
    let batch = tokio::spawn({
        let (writer, tenant) = (writer.clone(), tenant.clone());
        async move {
            futures::future::join_all(vec![
                writer.append(vec![sign_in_event(&tenant, "se-a", 1)]),
                writer.append(vec![held]),
            ])
            .await
        }
    });
    let started = std::time::Instant::now();
    while lock_waits(&app).await == 0 {
        assert!(started.elapsed() < PATIENCE, "the statement never waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let outcomes = tokio::time::timeout(PATIENCE, batch)
        .await
        .expect("answers")
        .unwrap();
    holder.rollback().await.unwrap();
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Err(PersistenceError::ConnectionError(_))),
            "{outcomes:?}"
        );
    }
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(format!("{tenant}/se-a"))
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(written, 0, "written again after an unknown outcome");
}
