//! Shared key statements, on a private throwaway PostgreSQL cluster.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures::future::join_all;
use twofold_domain::secrets::SealedSecret;
use twofold_domain::user::UserRef;
use twofold_services::ports::Sealer;

use super::super::sealer::tests::{cluster, user};
use super::super::tests::tenant;
use super::*;
use crate::config::Key32;
use crate::crypto::seal::PgSealer;
use crate::pg::direct::DirectConnections;

async fn migrated(cluster: &super::super::sealer::tests::Cluster) -> PgPool {
    let pool = crate::pg::connect(&cluster.pg.url("postgres"), 8)
        .await
        .unwrap();
    crate::pg::migrate(&pool).await.unwrap();
    pool
}

fn key_id_of(sealed: &SealedSecret) -> Uuid {
    let raw = BASE64.decode(sealed.as_encoded()).unwrap();
    Uuid::from_slice(&raw[1..17]).unwrap()
}

/// A request for `user`'s key as a seal makes it, and where its answer arrives.
fn wanted(
    master: &MasterKeys,
    user: &UserRef,
) -> (Wanted, oneshot::Receiver<Result<Option<Row>, StoreError>>) {
    let owner = Owner {
        tenant: &user.tenant,
        user: Some(&user.user),
    };
    let fresh_id = Uuid::new_v4();
    let (done, answer) = oneshot::channel();
    let wanted = Wanted {
        tenant: user.tenant.as_str().to_owned(),
        user: user.user.as_str().to_owned(),
        fresh_id,
        wrapped: wrap(master.current(), owner, &fresh_id, &[9; 32]).unwrap(),
        master_id: master.current_id().to_owned(),
        done,
    };
    (wanted, answer)
}

/// A writer over `connections` connections of its own to `pool`'s database, which retries a
/// refused statement's owners for at most `retry_for_ms`.
fn writer(pool: &PgPool, connections: usize, retry_for_ms: u64) -> Writer {
    writer_waiting(pool, connections, 60_000, retry_for_ms)
}

/// As [`writer`], with statements that wait at most `lock_wait_ms` for a lock.
fn writer_waiting(
    pool: &PgPool,
    connections: usize,
    lock_wait_ms: u64,
    retry_for_ms: u64,
) -> Writer {
    let lock_wait = lock_wait_ms.to_string();
    Writer {
        connections: DirectConnections::with_settings(
            pool,
            connections,
            &[("lock_timeout", lock_wait.as_str())],
        ),
        retry_for: Duration::from_millis(retry_for_ms),
    }
}

/// Another instance's first seal for `u`, inserted in a transaction left open: its key id,
/// and the transaction holding the row (its key is 32 bytes of 5).
async fn uncommitted_key(
    pool: &PgPool,
    master: &MasterKeys,
    u: &UserRef,
) -> (Uuid, sqlx::Transaction<'static, sqlx::Postgres>) {
    let theirs = Uuid::new_v4();
    let owner = Owner {
        tenant: &u.tenant,
        user: Some(&u.user),
    };
    let mut open = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO data_keys (key_id, tenant_id, user_id, wrapped_key, master_key_id) \
         VALUES ($1::uuid, $2, $3, $4, $5)",
    )
    .bind(theirs.to_string())
    .bind(u.tenant.as_str())
    .bind(u.user.as_str())
    .bind(wrap(master.current(), owner, &theirs, &[5; 32]).unwrap())
    .bind(master.current_id())
    .execute(&mut *open)
    .await
    .unwrap();
    (theirs, open)
}

/// `u`'s current key through `keys`, in a task of its own.
fn spawn_current(
    keys: &Arc<CurrentKeys>,
    pool: &PgPool,
    master: &MasterKeys,
    u: &UserRef,
) -> tokio::task::JoinHandle<Result<(Uuid, DataKey), StoreError>> {
    let (keys, pool, master, u) = (keys.clone(), pool.clone(), master.clone(), u.clone());
    tokio::spawn(async move {
        let owner = Owner {
            tenant: &u.tenant,
            user: Some(&u.user),
        };
        keys.current(&pool, &master, owner).await
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn first_seals_made_together_each_get_their_own_owners_one_key() {
    let cluster = cluster().await;
    let pool = migrated(&cluster).await;
    let master = Key32::from_bytes([3; 32]);
    let sealer = PgSealer::new(pool.clone(), master.clone());
    let users: Vec<UserRef> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|u| user("acme", u))
        .chain([user("other", "alice")])
        .collect();
    let ctx = |u: &UserRef| format!("{}/totp", u.aggregate_id());

    // Eight first seals per user and four of the tenant's own, all at once: they queue behind
    // each other and share statements, several for one owner in the same statement.
    let seals = join_all((0..8).flat_map(|round| {
        let sealer = &sealer;
        users.iter().map(move |u| async move {
            let secret = format!("{}-{round}", u.user.as_str());
            let sealed = sealer.seal_for_user(u, &ctx(u), secret.as_bytes()).await;
            (u.clone(), secret, sealed.unwrap())
        })
    }))
    .await;
    let acme = tenant("acme");
    let tenant_seals = join_all((0..4).map(|_| sealer.seal(&acme, "settings", b"s"))).await;

    // One key per owner, and every seal is under its own owner's stored key: it opens, from a
    // sealer with nothing in memory, for that owner only.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, users.len() as i64 + 1);
    let cold = PgSealer::new(pool.clone(), master.clone());
    for (u, secret, sealed) in &seals {
        let stored: String = sqlx::query_scalar(
            "SELECT key_id::text FROM data_keys WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(u.tenant.as_str())
        .bind(u.user.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(key_id_of(sealed).to_string(), stored);
        let opened = cold.open_for_user(u, &ctx(u), sealed).await.unwrap();
        assert_eq!(&*opened, secret.as_bytes());
        for other in users.iter().filter(|o| *o != u) {
            assert!(cold.open_for_user(other, &ctx(u), sealed).await.is_err());
        }
    }
    let tenant_keys: Vec<Uuid> = tenant_seals
        .into_iter()
        .map(|s| key_id_of(&s.unwrap()))
        .collect();
    assert!(tenant_keys.windows(2).all(|w| w[0] == w[1]));
    assert!(seals.iter().all(|(_, _, s)| key_id_of(s) != tenant_keys[0]));
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_the_database_refuses_fails_alone_in_a_shared_statement() {
    let cluster = cluster().await;
    let pool = migrated(&cluster).await;
    // Stands in for whatever one owner's row could be refused for.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_mallory() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.user_id = 'mallory' THEN RAISE EXCEPTION 'refused'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_mallory BEFORE INSERT ON data_keys \
         FOR EACH ROW EXECUTE FUNCTION refuse_mallory();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let master = MasterKeys::new(Key32::from_bytes([3; 32]), None);
    let (alice, alice_answer) = wanted(&master, &user("acme", "alice"));
    let (alice_again, alice_again_answer) = wanted(&master, &user("acme", "alice"));
    let (mallory, mallory_answer) = wanted(&master, &user("acme", "mallory"));
    let alice_id = alice.fresh_id.to_string();

    writer(&pool, 1, 60_000)
        .write(vec![vec![alice, alice_again], vec![mallory]])
        .await;

    let (id, _, _) = alice_answer.await.unwrap().unwrap().unwrap();
    assert_eq!(id, alice_id);
    let (again, _, _) = alice_again_answer.await.unwrap().unwrap().unwrap();
    assert_eq!(again, alice_id);
    assert!(mallory_answer.await.unwrap().is_err());
    let stored: Vec<String> = sqlx::query_scalar("SELECT user_id FROM data_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, ["alice"]);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seal_waiting_on_a_racing_key_gets_that_key_and_holds_no_one_else_back() {
    let cluster = cluster().await;
    let pool = migrated(&cluster).await;
    let master = MasterKeys::new(Key32::from_bytes([3; 32]), None);
    let (alice, bob) = (user("acme", "alice"), user("acme", "bob"));

    // Another instance's first seal for alice, not yet committed.
    let (theirs, racing) = uncommitted_key(&pool, &master, &alice).await;

    // Their commit comes when the test says so: no lock wait runs out before.
    let timing = Timing {
        lock_wait: Duration::from_secs(60),
        ..TIMING
    };
    let keys = Arc::new(CurrentKeys::new(&pool, timing));
    let seal = |u: UserRef| spawn_current(&keys, &pool, &master, &u);
    let alice_seal = seal(alice.clone());
    // Our statement has taken its snapshot and waits on their row.
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO data_keys%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }

    // Meanwhile bob's first seal goes through: the stalled statement holds no one back.
    let bob_key = tokio::time::timeout(Duration::from_secs(30), seal(bob.clone()))
        .await
        .expect("bob's seal waited for alice's stalled statement")
        .unwrap()
        .unwrap();
    assert!(!alice_seal.is_finished());
    let stored: String =
        sqlx::query_scalar("SELECT key_id::text FROM data_keys WHERE user_id = 'bob'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(bob_key.0.to_string(), stored);

    racing.commit().await.unwrap();
    let (id, key) = alice_seal.await.unwrap().unwrap();
    assert_eq!(id, theirs);
    assert_eq!(**key, [5; 32]);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_locked_for_long_fails_its_owners_seals_and_no_one_elses() {
    let cluster = cluster().await;
    let pool = migrated(&cluster).await;
    let master = MasterKeys::new(Key32::from_bytes([3; 32]), None);
    let (bob, mallory) = (user("acme", "bob"), user("acme", "mallory"));
    let timing = Timing {
        stalled: Duration::from_millis(20),
        lock_wait: Duration::from_millis(200),
    };
    let keys = Arc::new(CurrentKeys::new(&pool, timing));
    let seal = |u: UserRef| spawn_current(&keys, &pool, &master, &u);
    // Bob's key is stored already.
    seal(bob.clone()).await.unwrap().unwrap();

    // A transaction holds mallory's row and does not end (another instance's first seal whose
    // commit never comes, an operator's open transaction).
    let (_, holding) = uncommitted_key(&pool, &master, &mallory).await;

    // Mallory's seals, enough to take every statement slot while they wait, and bob's among
    // them: bob's is answered, and each of mallory's fails, while the row stays locked.
    let mallorys: Vec<_> = (0..6).map(|_| seal(mallory.clone())).collect();
    let bobs = seal(bob.clone());
    let bob_key = tokio::time::timeout(Duration::from_secs(30), bobs)
        .await
        .expect("bob's seal waited behind mallory's locked row");
    assert!(bob_key.unwrap().is_ok());
    for m in mallorys {
        let answer = tokio::time::timeout(Duration::from_secs(30), m)
            .await
            .expect("a seal of mallory's waited on her row with no end");
        assert!(answer.unwrap().is_err());
    }
    holding.rollback().await.unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_that_fails_without_an_answer_is_not_sent_again() {
    let cluster = cluster().await;
    let pool = migrated(&cluster).await;
    // The writer's one connection is taken: the statement gets none in time, as when the
    // database is unreachable or an answer is lost with its connection, when the statement may
    // have committed. Sent again after an erasure, its keys would be stored again, and what
    // was sealed under them would open.
    let writer = Arc::new(writer(&pool, 1, 60_000));
    let held = writer.connections.acquire().await.unwrap();
    let master = MasterKeys::new(Key32::from_bytes([3; 32]), None);
    let (owners, mut answers): (Vec<_>, Vec<_>) = (0..20)
        .map(|i| {
            let (w, a) = wanted(&master, &user("acme", &format!("u{i:02}")));
            (vec![w], a)
        })
        .unzip();
    let writing = {
        let writer = writer.clone();
        tokio::spawn(async move { writer.write(owners).await })
    };

    // The first answer is a failure; the connection is free from then on.
    let first = answers.remove(0).await.unwrap().unwrap_err();
    // Answered as an outage, which the API calls retryable.
    let first = twofold_services::ServiceError::from(first);
    assert!(first.is_unavailable(), "{first:?}");
    drop(held);
    writing.await.unwrap();
    for answer in answers {
        assert!(answer.await.unwrap().is_err());
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_refused_for_a_lock_are_retried_for_a_bounded_time_only() {
    let cluster = cluster().await;
    let pool = migrated(&cluster).await;
    // Every row is out of reach (a migration's lock queued behind a backup, a large tenant's
    // erasure): each statement waits 200 ms and fails. Retried owner by owner for as long as
    // that took, 64 owners would wait 13 s for an error known after 0.2.
    let mut holding = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE data_keys IN SHARE MODE")
        .execute(&mut *holding)
        .await
        .unwrap();
    let master = MasterKeys::new(Key32::from_bytes([3; 32]), None);
    let (owners, answers): (Vec<_>, Vec<_>) = (0..64)
        .map(|i| {
            let (w, a) = wanted(&master, &user("acme", &format!("u{i:02}")));
            (vec![w], a)
        })
        .unzip();
    let writer = writer_waiting(&pool, 1, 200, 400);
    let answered = tokio::time::timeout(Duration::from_secs(8), async {
        writer.write(owners).await;
        futures::future::join_all(answers).await
    })
    .await
    .expect("the owners of a refused statement were retried one by one with no bound");
    assert!(answered.into_iter().all(|a| a.unwrap().is_err()));
    holding.rollback().await.unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_refuses_the_writers_settings_still_gets_keys() {
    let cluster = cluster().await;
    let pool = migrated(&cluster).await;
    // As PgBouncer refuses start-up settings it does not track (the writer asks for two): the
    // connections come without them, rather than every seal failing as an outage.
    let writer = Writer {
        connections: DirectConnections::with_settings(&pool, 1, &[("no_such_setting", "on")]),
        retry_for: Duration::from_secs(1),
    };
    let master = MasterKeys::new(Key32::from_bytes([3; 32]), None);
    let (alice, answer) = wanted(&master, &user("acme", "alice"));
    let fresh = alice.fresh_id.to_string();
    writer.write(vec![vec![alice]]).await;
    let (id, _, _) = answer.await.unwrap().unwrap().unwrap();
    assert_eq!(id, fresh);
    pool.close().await;
}
