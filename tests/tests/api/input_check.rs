//! Text input is checked in one place, before anything runs (issue 14, points 6, 7 and 10).

use serde_json::json;
use twofold_tests::spawn_app;

/// Events recorded so far, leaving out the delivery worker's (it records a delivery when the
/// provider answers, which may be after the test read the mail).
async fn event_count(app: &twofold_tests::TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events \
         WHERE event_type NOT IN ('CodeDelivered', 'CodeDeliveryFailed')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

// Invisible or control characters, and user ids padded with white space, are refused with a
// message naming the argument, whether the text comes as a literal, a variable, inside an input
// object or inside a list; nothing is recorded.
#[tokio::test]
async fn invisible_and_control_characters_are_invalid_input_naming_the_argument() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    // alice has a confirmed email, so a send reaches the database with its idempotency key.
    let added = app
        .gql(
            Some(&app_key),
            "mutation { addEmail(userId: \"alice\", email: \"alice@example.com\") { id } }",
            json!({}),
        )
        .await;
    let challenge = added.data()["addEmail"]["id"].clone();
    let code = crate::channels::mailed_code(&app, 1).await;
    app.gql(
        Some(&app_key),
        "mutation($c: ID!, $k: String!) { confirmChannel(userId: \"alice\", challengeId: $c, code: $k) { codes } }",
        json!({ "c": challenge, "k": code }),
    )
    .await
    .data();
    let before = event_count(&app).await;
    let cases: Vec<(&str, &str, serde_json::Value, &str)> = vec![
        // A NUL in an idempotency key was INTERNAL: PostgreSQL refuses \0 in text.
        (
            &app_key,
            "mutation($k: String) { sendCode(userId: \"alice\", idempotencyKey: $k) { id } }",
            json!({ "k": "retry\u{0}1" }),
            "idempotencyKey",
        ),
        (
            &app_key,
            "query($u: ID!) { signInRequirement(userId: $u) { required } }",
            json!({ "u": "admin\u{202e}nimda" }),
            "userId",
        ),
        (
            &app_key,
            "query($u: ID!) { signInRequirement(userId: $u) { required } }",
            json!({ "u": "alice\u{2066}" }),
            "userId",
        ),
        (
            &app_key,
            "query($u: ID!) { signInRequirement(userId: $u) { required } }",
            json!({ "u": "al\u{200b}ice" }),
            "userId",
        ),
        (
            &app_key,
            "query($u: ID!) { signInRequirement(userId: $u) { required } }",
            json!({ "u": "\u{feff}alice" }),
            "userId",
        ),
        (
            &app_key,
            "query($u: ID!) { signInRequirement(userId: $u) { required } }",
            json!({ "u": " alice" }),
            "userId",
        ),
        (
            &app_key,
            "query { signInRequirement(userId: \"alice \") { required } }",
            json!({}),
            "userId",
        ),
        (
            &admin,
            "mutation { issueApiKey(role: APP, label: \"ops\\u200Dkey\") { secret } }",
            json!({}),
            "label",
        ),
        (
            &admin,
            "mutation($a: String) { setPolicy(input: { totpAlgorithm: $a }) { codeDigits } }",
            json!({ "a": "SHA1\u{7}" }),
            "totpAlgorithm",
        ),
        (
            &admin,
            "mutation($c: [String!]) { setPolicy(input: { allowedCallingCodes: $c }) { codeDigits } }",
            json!({ "c": ["1", "4\u{2060}4"] }),
            "allowedCallingCodes",
        ),
        (
            &admin,
            "{ auditEvents(filter: { eventTypes: [\"CodeSent\\u0000\"] }) { endCursor } }",
            json!({}),
            "eventTypes",
        ),
    ];
    for (key, query, variables, argument) in cases {
        let a = app.gql(Some(key), query, variables.clone()).await;
        assert_eq!(
            a.error_code(),
            "INVALID_INPUT",
            "{query} {variables}: {}",
            a.body
        );
        assert!(
            a.error_message().contains(&format!("`{argument}`")),
            "{query}: {}",
            a.body
        );
        assert!(a.body["data"].is_null(), "{query}: {}", a.body);
    }
    assert_eq!(event_count(&app).await, before);

    // Ordinary text, including non-Latin scripts and emoji, is still welcome.
    let a = app
        .gql(
            Some(&app_key),
            "query($u: ID!) { signInRequirement(userId: $u) { required } }",
            json!({ "u": "Zoë 山田 👍" }),
        )
        .await;
    assert_eq!(a.data()["signInRequirement"]["required"], false);
}

// Every text argument has a maximum length, also those the domain did not bound (a challenge
// id of any length reached the command), and the refusal names the argument.
#[tokio::test]
async fn every_text_argument_has_a_maximum_length() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let before = event_count(&app).await;
    for (query, variables, argument) in [
        (
            "mutation($c: String!) { verify(userId: \"alice\", method: TOTP, code: $c) { method } }",
            // `code` also carries WebAuthn assertions (a few KiB); TOTP codes longer than 64
            // characters are the services' refusal.
            json!({ "c": "1".repeat(40_000) }),
            "code",
        ),
        (
            "query($u: ID!) { signInRequirement(userId: $u) { required } }",
            json!({ "u": "u".repeat(300) }),
            "userId",
        ),
        (
            "mutation($c: ID!) { verify(userId: \"alice\", method: EMAIL, code: \"123456\", challengeId: $c) { method } }",
            json!({ "c": "c".repeat(300) }),
            "challengeId",
        ),
    ] {
        let a = app.gql(Some(&app_key), query, variables).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{query}: {}", a.body);
        assert!(
            a.error_message().contains(&format!("`{argument}` must be at most")),
            "{query}: {}",
            a.body
        );
    }
    assert_eq!(event_count(&app).await, before);
}

// `method: "TOTP"` is a string, not an enum value: the GraphQL specification refuses it, and so
// do we (as a literal; in variables, JSON has only strings for enum values).
#[tokio::test]
async fn enum_arguments_written_as_string_literals_are_invalid_input() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let before = event_count(&app).await;
    for (key, query) in [
        (
            &admin,
            "mutation { issueApiKey(role: \"APP\", label: \"x\") { secret } }",
        ),
        (
            &app_key,
            "mutation { verify(userId: \"alice\", method: \"TOTP\", code: \"123456\") { method } }",
        ),
        (
            &admin,
            "mutation { setPolicy(input: { allowedMethods: [TOTP, \"EMAIL\"] }) { codeDigits } }",
        ),
    ] {
        let a = app.gql(Some(key), query, json!({})).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{query}: {}", a.body);
        assert!(a.body["data"].is_null(), "{query}: {}", a.body);
    }
    assert_eq!(event_count(&app).await, before);
    // The same values as enum literals, or as variables, work.
    let a = app
        .gql(
            Some(&admin),
            "mutation($r: Role!) { a: issueApiKey(role: APP, label: \"x\") { secret } \
             b: issueApiKey(role: $r, label: \"y\") { secret } }",
            json!({ "r": "AUDITOR" }),
        )
        .await;
    assert!(a.data()["b"]["secret"].is_string());
}

// Each root field that records events runs a command: a document holds at most 5 of them. Six
// aliased `signInRequirement` fields, or six mutations through a fragment, run nothing.
#[tokio::test]
async fn a_document_records_events_in_at_most_five_root_fields() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let fields = |n: usize| {
        (0..n)
            .map(|i| format!("u{i}: signInRequirement(userId: \"user-{i}\") {{ required }}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let a = app
        .gql(
            Some(&app_key),
            &format!("{{ tenant {{ id }} {} }}", fields(6)),
            json!({}),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    assert!(a.error_message().contains("at most 5"), "{}", a.body);
    assert_eq!(app.count_events(&tenant, "SignInEvaluated").await, 0);

    let spread = format!(
        "mutation {{ ...M }} fragment M on Mutation {{ {} }}",
        (0..6)
            .map(|i| format!("k{i}: issueApiKey(role: APP, label: \"k{i}\") {{ secret }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let keys_before = app.count_events(&tenant, "ApiKeyIssued").await;
    let a = app.gql(Some(&admin), &spread, json!({})).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    assert_eq!(app.count_events(&tenant, "ApiKeyIssued").await, keys_before);

    // Five is allowed.
    let a = app
        .gql(Some(&app_key), &format!("{{ {} }}", fields(5)), json!({}))
        .await;
    assert_eq!(a.data()["u4"]["required"], false);
    assert_eq!(app.count_events(&tenant, "SignInEvaluated").await, 5);
}

// Pages count by their size: one document asks for at most 1,000 items in all.
#[tokio::test]
async fn a_document_asks_for_at_most_a_thousand_items() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    for query in [
        "{ a: auditEvents(first: 500) { endCursor } b: auditEvents(first: 500) { endCursor } \
         c: compliance(first: 1) { endCursor } }",
        "query($n: Int) { a: auditEvents(first: 500) { endCursor } b: compliance(first: $n) { endCursor } }",
    ] {
        let a = app.gql(Some(&admin), query, json!({ "n": 501 })).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{query}: {}", a.body);
        assert!(a.error_message().contains("1000 items"), "{query}: {}", a.body);
    }
    // The default page (50) counts too: 21 of them ask for 1,050.
    let defaults = (0..21)
        .map(|i| format!("p{i}: auditEvents {{ endCursor }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let a = app
        .gql(Some(&admin), &format!("{{ {defaults} }}"), json!({}))
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);

    let a = app
        .gql(
            Some(&admin),
            "{ a: auditEvents(first: 500) { endCursor } b: compliance(first: 500) { endCursor } }",
            json!({}),
        )
        .await;
    assert!(a.data()["b"].is_object());
}

// The export's query parameters are the one input outside GraphQL: the same text rules apply.
#[tokio::test]
async fn export_parameters_follow_the_same_text_rules() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    for query in [
        "?userId=ad%E2%80%AEmin",
        "?userId=%20alice",
        "?eventType=CodeSent%00",
    ] {
        let res = reqwest::Client::new()
            .get(format!("{}/audit/export{query}", app.address))
            .header("authorization", format!("Bearer {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400, "{query}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{query}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("`userId`") || message.contains("`eventType`"),
            "{query}: {message}"
        );
    }
}

// The check is part of the schema, so a WebSocket subscription gets it exactly like HTTP.
#[tokio::test]
async fn a_subscription_over_a_websocket_is_checked_the_same_way() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let url = format!("{}/graphql", app.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({
        "type": "connection_init",
        "payload": { "Authorization": format!("Bearer {admin}") },
    });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let subscription = json!({
        "id": "1",
        "type": "subscribe",
        "payload": {
            "query": "subscription($u: ID) { auditEvents(filter: { userId: $u }) { eventType } }",
            "variables": { "u": "ad\u{202e}min" },
        },
    });
    socket
        .send(Message::text(subscription.to_string()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let error = loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("an answer to the subscription")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if message["type"] == "error" || message["type"] == "next" {
            break message;
        }
    };
    // async-graphql answers a refused subscription with one `next` holding the errors.
    let errors = if error["type"] == "error" {
        &error["payload"]
    } else {
        &error["payload"]["errors"]
    };
    assert_eq!(errors[0]["extensions"]["code"], "INVALID_INPUT", "{error}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`userId`"),
        "{error}"
    );
}

// Query root fields run side by side, each with its own database work: a thousand aliases of
// `user` took every pooled connection at once. Ten is the most one document may hold.
#[tokio::test]
async fn a_document_holds_at_most_ten_root_fields() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let users = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("u{i}: user(userId: \"user-{i}\") {{ userId }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let a = app.gql(Some(&app_key), &users(10), json!({})).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    let a = app.gql(Some(&app_key), &users(11), json!({})).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    assert!(
        a.error_message().contains("at most 10 root fields"),
        "{}",
        a.body
    );
    // Through a fragment, too.
    let spread = "{ ...F ...F2 } fragment F on Query { a: tenant { id } b: tenant { id } c: tenant { id } d: tenant { id } e: tenant { id } f: tenant { id } } fragment F2 on Query { g: tenant { id } h: tenant { id } i: tenant { id } j: tenant { id } k: tenant { id } }";
    let a = app.gql(Some(&app_key), spread, json!({})).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
}

// A field that reads the database, aliased under one root field: the root-field cap does not
// see it, its cost does.
#[tokio::test]
async fn a_database_read_nested_under_many_aliases_is_refused() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("k{i}: apiKeys {{ id }}")).collect();
        format!("{{ tenant {{ {} }} }}", fields.join(" "))
    };
    let a = app.gql(Some(&admin), &aliases(2), json!({})).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    let a = app.gql(Some(&admin), &aliases(11), json!({})).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
}
