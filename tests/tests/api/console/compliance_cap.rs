//! A tenant downloads at most two compliance CSVs at once on an instance (decision 146): one
//! more is refused with 429, `Retry-After` and the console's text in the reader's language, and
//! a place comes back when a download ends or its reader goes away.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use twofold_domain::user::{SignInReason, UserEvent};
use twofold_tests::{spawn_app_with, HttpLimits, TestApp, TestOptions};

use super::Browser;
use crate::sign_in::acme;

/// A user id of 128 characters, 4 bytes each but the number: long CSV lines, few users.
fn long_id(n: usize) -> String {
    format!("{n:06}{}", "𝕏".repeat(122))
}

/// How many users make a CSV longer than everything the kernel and the server can buffer for a
/// client that reads nothing: twice the largest send buffer of this machine, plus the server's
/// own buffers.
fn users_to_outgrow_the_buffers() -> usize {
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
    let largest: usize = wmem.split_whitespace().last().unwrap().parse().unwrap();
    let line = long_id(0).len() + ",2026-12-05T10:00:00.000000+00:00,\n".len();
    2 * (largest + (1 << 20)) / line
}

/// Records `n` users the tenant has shown us, as `signInRequirement` records them. Written as
/// events in one statement: tens of thousands of API calls would take minutes, and the read
/// models are still built from the events by the service's own projections.
async fn seen_users(app: &TestApp, tenant: &str, n: usize) {
    let event = UserEvent::SignInEvaluated {
        required: false,
        reason: SignInReason::NotEnrolled,
        methods: Vec::new(),
        trusted_device: None,
        device_token_rejected: false,
        sso_login: false,
        locked_until: None,
        grace_ends_at: None,
        at: Utc::now(),
    };
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'user', $1 || '/user/' || lpad(n::text, 6, '0') || repeat('𝕏', 122), 1, \
                'SignInEvaluated', '1', $2, '{}' \
         FROM generate_series(0, $3 - 1) AS n",
    )
    .bind(tenant)
    .bind(serde_json::to_value(&event).unwrap())
    .bind(n as i64)
    .execute(&app.db)
    .await
    .unwrap();
}

/// A download that reads its answer's head and then nothing more, through a receive buffer of
/// a few KiB, so the rest waits in the server.
async fn stalled_download(app: &TestApp, browser: &Browser) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = app.address.trim_start_matches("http://").parse().unwrap();
    let mut stream = socket.connect(address).await.unwrap();
    let cookies = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let request = format!(
        "GET /console/compliance.csv HTTP/1.1\r\nHost: twofold\r\nCookie: {cookies}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 1024];
    let n = stream.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

/// The start of a long answer, for a failure's message.
fn head(body: &str) -> String {
    body.chars().take(300).collect()
}

/// Asks for the CSV until a download is let in (each refusal is a 429), for at most 10 s: a
/// place comes back once the server has seen the connection go, not at the client's close.
async fn let_in_again(browser: &mut Browser) -> super::Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = browser.get("/console/compliance.csv").await;
        if answer.status != 429 || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_tenant_runs_two_compliance_csvs_at_once_and_gets_a_place_back_when_one_ends() {
    // Stalled writes must not end the stalled downloads during the test: only their readers
    // going away may.
    let app = spawn_app_with(TestOptions {
        http: HttpLimits {
            header_timeout: Duration::from_secs(300),
            ..HttpLimits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let t = acme(&app).await;
    let n = users_to_outgrow_the_buffers();
    seen_users(&app, &t.id, n).await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    let mut english = Browser::new(&app);
    assert_eq!(english.sign_in(&auditor).await.status, 303);
    let mut georgian = Browser::new(&app).speaking("ka");
    assert_eq!(georgian.sign_in(&auditor).await.status, 303);

    // Downloads that end give their place back: three in a row, all whole.
    for _ in 0..3 {
        let csv = english.get("/console/compliance.csv").await;
        assert_eq!(csv.status, 200, "{}", head(&csv.body));
        assert_eq!(csv.body.lines().count(), n + 1, "every user, once");
    }

    // Two readers that stop reading hold both places.
    let first = stalled_download(&app, &english).await;
    let _second = stalled_download(&app, &georgian).await;
    let refused = english.get("/console/compliance.csv").await;
    assert_eq!(refused.status, 429, "{}", head(&refused.body));
    assert!(refused.headers.contains_key("retry-after"));
    assert!(refused.body.contains("data-error-code=\"RATE_LIMITED\""));
    assert!(
        refused
            .body
            .contains("already has 2 downloads of this list running"),
        "{}",
        refused.body
    );
    let refused = georgian.get("/console/compliance.csv").await;
    assert_eq!(refused.status, 429);
    assert!(
        refused.body.contains("2 ჩამოტვირთვა უკვე მიმდინარეობს"),
        "{}",
        refused.body
    );
    // The pages are not downloads: still served.
    assert_eq!(english.get("/console/compliance").await.status, 200);

    // One reader goes away: its place comes back, and only its place.
    drop(first);
    let _third = {
        let answer = let_in_again(&mut english).await;
        assert_eq!(answer.status, 200, "the place never came back");
        assert_eq!(answer.body.lines().count(), n + 1);
        stalled_download(&app, &english).await
    };
    assert_eq!(english.get("/console/compliance.csv").await.status, 429);
}
