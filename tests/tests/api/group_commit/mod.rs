//! The events writer (group commit): commands that share a statement, what happens when
//! PostgreSQL refuses one or does not answer, and rows equal to those postgres-es writes.

use std::time::Duration;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use cqrs_es::Aggregate;
use serde_json::{json, Value};
use twofold_domain::user::{SignInReason, User, UserEvent};
use twofold_infra::group_commit::{GroupCommit, Statements};
use twofold_tests::spawn_app;

mod stalls;

/// One `SignInEvaluated` event at `sequence` of user `user` of tenant `tenant`, as a command
/// would hand it to the writer.
fn sign_in_event(tenant: &str, user: &str, sequence: usize) -> SerializedEvent {
    let payload = serde_json::to_value(UserEvent::SignInEvaluated {
        required: false,
        reason: SignInReason::NotEnrolled,
        methods: vec![],
        trusted_device: None,
        device_token_rejected: false,
        sso_login: false,
        locked_until: None,
        grace_ends_at: None,
        at: chrono::Utc::now(),
    })
    .unwrap();
    SerializedEvent::new(
        format!("{tenant}/{user}"),
        sequence,
        User::TYPE.to_owned(),
        "SignInEvaluated".to_owned(),
        "1".to_owned(),
        payload,
        json!({ "tenant_id": tenant, "actor": "{\"operator\":true}" }),
    )
}

/// The transaction ids that hold events of these users.
async fn commits_of(app: &twofold_tests::TestApp, tenant: &str, users: &[String]) -> Vec<String> {
    let ids: Vec<String> = users.iter().map(|u| format!("{tenant}/{u}")).collect();
    sqlx::query_scalar(
        "SELECT DISTINCT tx_id::text FROM events WHERE aggregate_type = 'user' \
         AND aggregate_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

// Commands that hand their events over together share one transaction (group commit), and a
// conflict in a shared batch still reaches only the command that conflicted.
#[tokio::test]
async fn commands_that_commit_together_share_one_transaction_and_conflicts_stay_exact() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());

    // Ten commands on ten users, handed over before the committer runs: one transaction.
    let users: Vec<String> = (0..10).map(|i| format!("gc-{i}")).collect();
    let outcomes = futures::future::join_all(
        users
            .iter()
            .map(|u| writer.append(vec![sign_in_event(&tenant, u, 1)])),
    )
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(commits_of(&app, &tenant, &users).await.len(), 1);

    // Three more, one of them a second sequence 2 for gc-0 racing the first: exactly that one
    // is refused as a conflict, and the others are written.
    let outcomes = futures::future::join_all(vec![
        writer.append(vec![sign_in_event(&tenant, "gc-0", 2)]),
        writer.append(vec![
            sign_in_event(&tenant, "gc-1", 2),
            sign_in_event(&tenant, "gc-1", 3),
        ]),
        writer.append(vec![sign_in_event(&tenant, "gc-0", 2)]),
        writer.append(vec![sign_in_event(&tenant, "gc-2", 2)]),
    ])
    .await;
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    assert!(
        matches!(outcomes[2], Err(PersistenceError::OptimisticLockError)),
        "{:?}",
        outcomes[2]
    );
    assert!(outcomes[3].is_ok(), "{:?}", outcomes[3]);
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, count(*) FROM events WHERE aggregate_type = 'user' \
         AND aggregate_id LIKE $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(format!("{tenant}/gc-%"))
    .fetch_all(&app.db)
    .await
    .unwrap();
    let expected: Vec<(String, i64)> = (0..10)
        .map(|i| {
            let n = match i {
                0 | 2 => 2,
                1 => 3,
                _ => 1,
            };
            (format!("{tenant}/gc-{i}"), n)
        })
        .collect();
    assert_eq!(counts, expected);
}

// One command whose events the database refuses (a NUL in a JSON string: jsonb has no room for
// it) shares a batch with other tenants' commands: only it fails, theirs are written.
#[tokio::test]
async fn a_command_the_database_refuses_fails_alone_not_its_batch() {
    let app = spawn_app().await;
    let (acme, _) = app.create_tenant("Acme").await;
    let (globex, _) = app.create_tenant("Globex").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());

    let mut poisoned = sign_in_event(&globex, "poison", 1);
    poisoned.metadata["request_id"] = json!("req\u{0}uest");
    // Handed over together, before the committer runs: one batch.
    let outcomes = futures::future::join_all(vec![
        writer.append(vec![sign_in_event(&acme, "np-a", 1)]),
        writer.append(vec![poisoned]),
        writer.append(vec![sign_in_event(&globex, "np-b", 1)]),
        writer.append(vec![sign_in_event(&acme, "np-c", 1)]),
    ])
    .await;
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(
        outcomes[1].is_err(),
        "the poisoned command cannot be written"
    );
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
    assert!(outcomes[3].is_ok(), "{:?}", outcomes[3]);
    let written: Vec<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE aggregate_type = 'user' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut expected = vec![
        format!("{acme}/np-a"),
        format!("{acme}/np-c"),
        format!("{globex}/np-b"),
    ];
    expected.sort();
    assert_eq!(written, expected);
}

// A refused command costs the rest of its batch a few statements, not one each: the batch is
// written again in halves, and only the halves that hold it are split further. One statement
// per command held one of the writer's two slots (decision 175) for each of them, while every
// other command of the instance waited.
#[tokio::test]
async fn a_refused_command_costs_its_batch_a_few_statements_not_one_per_command() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());

    let users: Vec<String> = (0..16).map(|i| format!("bs-{i:02}")).collect();
    let commands = users.iter().enumerate().map(|(i, u)| {
        let mut event = sign_in_event(&tenant, u, 1);
        if i == 5 {
            event.metadata["request_id"] = json!("req\u{0}uest");
        }
        writer.append(vec![event])
    });
    // Handed over together, before the committer runs: one batch.
    let outcomes = futures::future::join_all(commands).await;
    let refused: Vec<usize> = (0..16).filter(|&i| outcomes[i].is_err()).collect();
    assert_eq!(refused, [5], "{outcomes:?}");
    let others: Vec<String> = users
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 5)
        .map(|(_, u)| u.clone())
        .collect();
    let commits = commits_of(&app, &tenant, &others).await.len();
    assert!(
        commits <= 4,
        "15 commands written in {commits} statements; halving takes at most 4"
    );
}

// Many refused commands in one batch cost about one statement each, as command-by-command
// writing did: halving alone would send up to twice as many statements as commands, each one
// holding a writer's slot that other tenants' commands wait for.
#[tokio::test]
async fn many_refused_commands_cost_about_one_statement_each() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());

    // Every other command is refused, so every part of two or more holds one.
    let commands = (0..16).map(|i| {
        let mut event = sign_in_event(&tenant, &format!("mr-{i:02}"), 1);
        if i % 2 == 1 {
            event.metadata["request_id"] = json!("req\u{0}uest");
        }
        writer.append(vec![event])
    });
    let outcomes = futures::future::join_all(commands).await;
    let refused: Vec<usize> = (0..16).filter(|&i| outcomes[i].is_err()).collect();
    assert_eq!(refused, [1, 3, 5, 7, 9, 11, 13, 15], "{outcomes:?}");
    let sent = writer.statements();
    assert!(
        sent.written + sent.refused <= 16 + 10,
        "16 commands took {sent:?}: at most one per command and 10 refused parts of several"
    );
}

// Racing commands on one user that write the same key in one batch: the first handed over is
// written and the others hear a conflict at once (they decide again on a fresh load). The batch
// is not refused and halved because of them.
#[tokio::test]
async fn commands_that_write_the_same_key_in_one_batch_cost_no_refused_statement() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());

    let racing = (0..4).map(|_| sign_in_event(&tenant, "rk-same", 1));
    let others = (0..4).map(|i| sign_in_event(&tenant, &format!("rk-{i}"), 1));
    let commands = racing.chain(others).map(|event| writer.append(vec![event]));
    // Handed over together, before the committer runs: one batch.
    let outcomes = futures::future::join_all(commands).await;
    let conflicts: Vec<usize> = (0..8)
        .filter(|&i| matches!(outcomes[i], Err(PersistenceError::OptimisticLockError)))
        .collect();
    assert_eq!(conflicts, [1, 2, 3], "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| o.is_ok() || matches!(o, Err(PersistenceError::OptimisticLockError))));
    assert_eq!(
        writer.statements(),
        Statements {
            written: 1,
            refused: 0
        }
    );
}

/// How long a test waits for what takes a few seconds at most (the lock waits are 2 s each).
const PATIENCE: Duration = Duration::from_secs(60);

/// Backends of the test's database waiting for a lock.
async fn lock_waits(app: &twofold_tests::TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

// Another writer holds one aggregate of a batch and then writes a second one: the batch must
// not have written that second one first (opposite lock orders deadlock, and PostgreSQL then
// fails a whole batch). Every command of the batch gets an exact conflict instead.
#[tokio::test]
async fn a_batch_and_another_writer_on_the_same_aggregates_end_in_conflicts_not_a_deadlock() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let insert = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                  event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let other_writer = |event: SerializedEvent| {
        sqlx::query(insert)
            .bind(event.aggregate_type)
            .bind(event.aggregate_id)
            .bind(event.sequence as i64)
            .bind(event.event_type)
            .bind(event.event_version)
            .bind(event.payload)
            .bind(event.metadata)
    };

    // The other writer (another instance, say) has written dl-a, not yet committed.
    let mut other = app.db.begin().await.unwrap();
    other_writer(sign_in_event(&tenant, "dl-a", 1))
        .execute(&mut *other)
        .await
        .unwrap();

    // One batch with both aggregates, handed over as dl-b then dl-a; it waits for dl-a.
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());
    let batch = {
        let tenant = tenant.clone();
        tokio::spawn(async move {
            futures::future::join_all(vec![
                writer.append(vec![sign_in_event(&tenant, "dl-b", 1)]),
                writer.append(vec![sign_in_event(&tenant, "dl-a", 1)]),
            ])
            .await
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    // Now the other writer writes dl-b too, and commits both.
    other_writer(sign_in_event(&tenant, "dl-b", 1))
        .execute(&mut *other)
        .await
        .expect("the batch had not written dl-b ahead of dl-a");
    other.commit().await.unwrap();

    let outcomes = batch.await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(PersistenceError::OptimisticLockError))),
        "{outcomes:?}"
    );
    let written: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id IN ($1, $2)")
            .bind(format!("{tenant}/dl-a"))
            .bind(format!("{tenant}/dl-b"))
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(written, 2, "only the other writer's two events");
}

// The writer's own multi-row statement writes exactly the rows postgres-es writes: postgres-es
// reads them back as the same events, every column we do not fill in gets the same value, and
// a command's events take their global positions in sequence order.
#[tokio::test]
async fn append_writes_what_postgres_es_writes() {
    use cqrs_es::persist::PersistedEventRepository;
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let ours: GroupCommit<User> = GroupCommit::new(app.db.clone());
    let theirs = postgres_es::PostgresEventRepository::new(app.db.clone());
    let mut events: Vec<SerializedEvent> =
        (1..=3).map(|s| sign_in_event(&tenant, "-", s)).collect();
    events[1].event_version = "2".into();
    events[2].payload = json!({ "nested": { "list": [1, "two", null], "é": "\u{1F600}" } });
    let command = |user: &str| -> Vec<SerializedEvent> {
        let mut events = events.clone();
        for e in &mut events {
            e.aggregate_id = format!("{tenant}/{user}");
        }
        events
    };
    ours.append(command("ours")).await.unwrap();
    theirs
        .persist::<User>(&command("theirs"), None)
        .await
        .unwrap();

    let read = |user: &'static str| {
        let theirs = &theirs;
        let tenant = &tenant;
        async move {
            let mut events = theirs
                .get_events::<User>(&format!("{tenant}/{user}"))
                .await
                .unwrap();
            for e in &mut events {
                e.aggregate_id = "-".into();
            }
            events
        }
    };
    let (a, b) = (read("ours").await, read("theirs").await);
    assert_eq!(a.len(), 3);
    let key = |e: &SerializedEvent| {
        (
            e.aggregate_type.clone(),
            e.sequence,
            e.event_type.clone(),
            e.event_version.clone(),
            e.payload.clone(),
            e.metadata.clone(),
        )
    };
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        b.iter().map(key).collect::<Vec<_>>()
    );

    // Every stored column, ours against postgres-es's, but those that differ by nature.
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(e) - 'aggregate_id' - 'global_position' - 'tx_id' - 'recorded_at' \
         FROM events e WHERE aggregate_type = 'user' AND aggregate_id = ANY($1) \
         ORDER BY aggregate_id, sequence",
    )
    .bind(vec![format!("{tenant}/ours"), format!("{tenant}/theirs")])
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[..3], rows[3..]);
    let positions: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(format!("{tenant}/ours"))
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

// An event past a hole in its stream (its predecessor neither stored nor in the same command)
// is not written: the command hears a conflict, and the others of its batch are written.
#[tokio::test]
async fn an_event_past_a_hole_is_refused_as_a_conflict_and_fails_alone() {
    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let writer: GroupCommit<User> = GroupCommit::new(app.db.clone());
    writer
        .append(vec![sign_in_event(&tenant, "holey", 1)])
        .await
        .unwrap();
    let outcomes = futures::future::join_all(vec![
        writer.append(vec![sign_in_event(&tenant, "holey", 3)]),
        writer.append(vec![
            sign_in_event(&tenant, "whole", 1),
            sign_in_event(&tenant, "whole", 2),
        ]),
    ])
    .await;
    assert!(
        matches!(outcomes[0], Err(PersistenceError::OptimisticLockError)),
        "{:?}",
        outcomes[0]
    );
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "SELECT split_part(aggregate_id, '/', 2), sequence FROM events \
         WHERE aggregate_type = 'user' ORDER BY 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        stored,
        [
            ("holey".to_owned(), 1),
            ("whole".to_owned(), 1),
            ("whole".to_owned(), 2)
        ]
    );
}
