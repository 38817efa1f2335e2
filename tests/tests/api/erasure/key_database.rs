//! The separate key database: once used, a process that forgot it is refused (it would make
//! keys in the event database, and erase or rotate nothing); the event database named again
//! under another URL is not a key database; keys left in the event database are refused.

use twofold::databases::Databases;
use twofold_tests::fresh_database;

async fn refusal(events: &str, keys: Option<&str>) -> String {
    Databases::connect(events, keys, 2)
        .await
        .map(|_| ())
        .expect_err("refused")
        .to_string()
}

#[tokio::test]
async fn a_key_database_once_used_is_required_and_must_be_another_database() {
    let (events, keys) = (fresh_database().await, fresh_database().await);
    let alias = format!("{events}?application_name=alias");
    let err = refusal(&events, Some(&alias)).await;
    assert!(err.contains("names the event database itself"), "{err}");

    let both = Databases::connect(&events, Some(&keys), 2).await.unwrap();
    assert!(both.separate_keys);
    let err = refusal(&events, None).await;
    assert!(err.contains("set TWOFOLD_KEY_DATABASE_URL"), "{err}");
    // An instance started before the switch (or without the variable) cannot make a key in
    // the event database any more: an erasure through the key database would miss it.
    let insert = "INSERT INTO data_keys (key_id, tenant_id, user_id, wrapped_key, master_key_id) \
                  VALUES (gen_random_uuid(), 'acme', 'eve', '\\x00', '0123456789abcdef')";
    let late = sqlx::query(insert).execute(&both.events).await.unwrap_err();
    assert!(late.to_string().contains("separate key database"), "{late}");
    sqlx::query(insert).execute(&both.keys).await.unwrap();

    // Keys in an event database (an old backup restored, or a copy not cleaned up) are
    // refused, and the advice does not say to copy them over.
    let restored = fresh_database().await;
    let pool = sqlx::PgPool::connect(&restored).await.unwrap();
    sqlx::query(insert).execute(&pool).await.unwrap();
    let err = refusal(&restored, Some(&keys)).await;
    assert!(err.contains("only delete them here"), "{err}");
}
