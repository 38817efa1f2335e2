//! Parallel commands on one aggregate: each lands or fails cleanly, none is lost.

use futures::future::join_all;
use serde_json::json;
use twofold_tests::spawn_app;

#[tokio::test]
async fn parallel_key_issues_on_one_tenant_all_land() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    const N: usize = 16;
    let answers = join_all((0..N).map(|i| {
        let app = &app;
        let admin = &admin;
        async move {
            app.gql(
                Some(admin),
                "mutation($l: String!) { issueApiKey(role: APP, label: $l) { key { id } secret } }",
                json!({ "l": format!("parallel {i}") }),
            )
            .await
        }
    }))
    .await;

    let mut issued = Vec::new();
    for a in &answers {
        if a.body["errors"].is_null() {
            issued.push(
                a.body["data"]["issueApiKey"]["key"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            // The only acceptable failure is a clean conflict after bounded retries.
            assert_eq!(a.error_code(), "CONFLICT", "{}", a.body);
        }
    }
    assert_eq!(issued.len(), N, "with retries every command should land");

    // Every success is in the stream exactly once, with gap-free sequence numbers.
    let sequences: Vec<i64> =
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(format!("{tenant}/tenant"))
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(sequences, (1..=(2 + N as i64)).collect::<Vec<_>>());
    assert_eq!(
        app.count_events(&tenant, "ApiKeyIssued").await,
        1 + N as i64
    );

    // And every issued key is listed and works.
    let listed = app
        .gql(Some(&admin), "{ tenant { apiKeys { id } } }", json!({}))
        .await;
    let listed = listed.data()["tenant"]["apiKeys"].to_string();
    for id in &issued {
        assert!(
            listed.contains(id.as_str()),
            "{id} lost from the read model"
        );
    }
    for a in &answers {
        let secret = a.body["data"]["issueApiKey"]["secret"].as_str().unwrap();
        let t = app.gql(Some(secret), "{ tenant { id } }", json!({})).await;
        assert_eq!(t.data()["tenant"]["id"], tenant.as_str());
    }
}

#[tokio::test]
async fn parallel_policy_changes_serialize() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let digits = [6, 7, 8, 7, 6, 8, 7, 8];
    let answers = join_all(digits.iter().map(|d| {
        let app = &app;
        let admin = &admin;
        async move {
            app.gql(
                Some(admin),
                "mutation($d: Int!) { setPolicy(input: { codeDigits: $d }) { codeDigits } }",
                json!({ "d": d }),
            )
            .await
        }
    }))
    .await;
    for a in &answers {
        a.data();
    }
    // Each recorded change starts from the one before it: no lost update.
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE tenant_id = $1 AND event_type = 'TwoFactorPolicySet' ORDER BY sequence",
    )
    .bind(&tenant)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut current = 6;
    for p in &payloads {
        let set = &p["TwoFactorPolicySet"];
        assert_eq!(set["previous"]["codeDigits"], current);
        current = set["policy"]["codeDigits"].as_i64().unwrap();
    }
    let read = app
        .gql(
            Some(&admin),
            "{ tenant { policy { codeDigits } } }",
            json!({}),
        )
        .await;
    assert_eq!(read.data()["tenant"]["policy"]["codeDigits"], current);
}

/// Commands on one user that overlap on one instance (an email and an SMS code requested at
/// once, a code sent while the worker records another's delivery) take turns: each decides on
/// what the one before it committed, so none is refused and re-decided on a fresh load.
#[tokio::test]
async fn overlapping_commands_on_one_user_take_turns_instead_of_conflicting() {
    use std::collections::HashMap;
    use std::time::Duration;
    use twofold_domain::user::UserRef;
    use twofold_domain::{TenantId, UserId};
    use twofold_services::commands::CommandGateway;

    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    // Turns waited for long enough that a slow machine sees them all through (by default a
    // turn not come within 100 ms is given up, and the command may conflict as it used to).
    let store = crate::snapshots::store(&app, "user-1").with_turn_wait(Duration::from_secs(30));
    let user = UserRef {
        tenant: TenantId::parse(&tenant).unwrap(),
        user: UserId::parse("busy").unwrap(),
    };
    let id = user.aggregate_id();
    let command = |n: usize| start_enrollment(&user, &n.to_string());
    let no_metadata = HashMap::new();
    // The first commit leaves the user in this instance's memory (a store's first command is
    // decided again once its writer has opened a connection: see `PgStore`'s epochs).
    let mut first = store.execute_once(&id, command(0), &no_metadata).await;
    for _ in 0..3 {
        if first.is_ok() {
            break;
        }
        first = store.execute_once(&id, command(0), &no_metadata).await;
    }
    assert_eq!(first.unwrap().last_sequence, Some(1));

    let attempts =
        join_all((1..=16).map(|n| store.execute_once(&id, command(n), &no_metadata))).await;
    for (n, attempt) in attempts.into_iter().enumerate() {
        let executed = attempt.unwrap_or_else(|e| panic!("command {}: {e:?}", n + 1));
        assert_eq!(
            executed.last_sequence,
            Some(n + 2),
            "in turn, one after another"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 17);
}

/// Reads of cached users at once each ask the database whether this instance's memory is
/// current: the one user another instance changed is read from the database, each of the
/// others from memory, as it stands.
#[tokio::test]
async fn reads_checked_together_see_the_one_user_another_instance_changed() {
    use std::collections::HashMap;
    use twofold_domain::user::{User, UserCommand, UserRef};
    use twofold_domain::{TenantId, UserId};
    use twofold_infra::event_store::PgStore;
    use twofold_services::commands::CommandGateway;

    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let (here, elsewhere) = (
        crate::snapshots::store(&app, "user-1"),
        crate::snapshots::store(&app, "user-1"),
    );
    let user = |n: usize| UserRef {
        tenant: TenantId::parse(&tenant).unwrap(),
        user: UserId::parse(&format!("u{n}")).unwrap(),
    };
    let enroll = |n: usize, secret: &str| start_enrollment(&user(n), secret);
    const USERS: usize = 24;
    // A store's first command is decided again once its writer has opened a connection.
    async fn run(store: &PgStore<User>, id: &str, command: UserCommand) {
        let mut tries = 0;
        while let Err(e) = store
            .execute_once(id, command.clone(), &HashMap::new())
            .await
        {
            tries += 1;
            assert!(tries < 3, "{id}: {e:?}");
        }
    }
    let ids: Vec<String> = (0..USERS).map(|n| user(n).aggregate_id()).collect();
    for (n, id) in ids.iter().enumerate() {
        run(&here, id, enroll(n, "first")).await;
    }
    // Reads at once open the connections they need. An entry read before a connection was
    // opened is never trusted over it (that connection may be to a server that lost commits):
    // the second commands leave entries every connection may vouch for.
    join_all(ids.iter().map(|id| here.read(id))).await;
    for (n, id) in ids.iter().enumerate() {
        run(&here, id, enroll(n, "here")).await;
    }
    assert_eq!(here.cached(), USERS);
    let changed = 7;
    run(
        &elsewhere,
        &user(changed).aggregate_id(),
        enroll(changed, "elsewhere"),
    )
    .await;

    let reads = join_all(ids.iter().map(|id| here.read(id))).await;
    for (n, read) in reads.into_iter().enumerate() {
        let state = serde_json::to_string(&read.unwrap()).unwrap();
        let expected = if n == changed {
            "sealed-elsewhere"
        } else {
            "sealed-here"
        };
        assert!(state.contains(expected), "u{n}: {state}");
    }
}

/// A command that records a TOTP enrollment of `user` with the sealed secret `sealed-{secret}`.
fn start_enrollment(
    user: &twofold_domain::user::UserRef,
    secret: &str,
) -> twofold_domain::user::UserCommand {
    use twofold_domain::secrets::{SealedSecret, TotpParams};
    use twofold_domain::user::{Notifications, UserAction, UserCommand};
    UserCommand {
        user: user.clone(),
        at: chrono::Utc::now(),
        action: UserAction::StartTotpEnrollment {
            secret: SealedSecret::from_encoded(format!("sealed-{secret}")),
            params: TotpParams {
                algorithm: Default::default(),
                digits: 6,
                period: 30,
            },
        },
        notifications: Notifications {
            enabled: false,
            id: format!("notice-{secret}-{}", user.aggregate_id()),
        },
    }
}

/// A command's answer shares its state with the aggregate cache (decision 180): the next
/// command on the user decides on a copy of its own, so an answer still held keeps the state
/// it answered with, and the next read sees the newer one.
#[tokio::test]
async fn an_answer_still_held_keeps_its_state_when_the_next_command_commits() {
    use std::collections::HashMap;
    use twofold_domain::user::{User, UserCommand, UserRef};
    use twofold_domain::{TenantId, UserId};
    use twofold_infra::event_store::PgStore;
    use twofold_services::commands::{CommandGateway, Executed};

    let app = spawn_app().await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let store = crate::snapshots::store(&app, "user-1");
    let user = UserRef {
        tenant: TenantId::parse(&tenant).unwrap(),
        user: UserId::parse("alice").unwrap(),
    };
    let id = user.aggregate_id();
    // A store's first command is decided again once its writer has opened a connection.
    async fn run(store: &PgStore<User>, id: &str, command: UserCommand) -> Executed<User> {
        let mut tries = 0;
        loop {
            match store
                .execute_once(id, command.clone(), &HashMap::new())
                .await
            {
                Ok(executed) => return executed,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 3, "{id}: {e:?}");
                }
            }
        }
    }
    let text = |state: &User| serde_json::to_string(state).unwrap();

    let first = run(&store, &id, start_enrollment(&user, "first")).await;
    let answered = text(&first.state);
    assert!(answered.contains("sealed-first"), "{answered}");
    assert_eq!(store.cached(), 1);
    let second = run(&store, &id, start_enrollment(&user, "second")).await;

    assert_eq!(text(&first.state), answered, "the held answer is unchanged");
    assert!(text(&second.state).contains("sealed-second"));
    let read = text(&store.read(&id).await.unwrap());
    assert!(read.contains("sealed-second"), "{read}");
}
