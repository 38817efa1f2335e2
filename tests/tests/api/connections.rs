//! Slow, idle and numerous connections are bounded (issue 14, point 2): raw TCP clients that
//! stop half-way are closed by the server, and never lock other clients out.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use twofold_tests::{spawn_app_with, HttpLimits, TestApp, TestOptions};

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(host(app)).await.expect("connecting")
}

/// Reads until the server closes the connection (EOF or reset); panics after `within`.
async fn closed_by_server(mut stream: TcpStream, within: Duration) {
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "the server kept the connection open for {within:?}"
    );
}

/// Reads the first bytes of a response; `None` when none arrive within `within`.
async fn first_bytes(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Ok(_) => Some(String::new()),
        Err(_) => None,
    }
}

fn short_limits(max_connections: Option<usize>) -> TestOptions {
    TestOptions {
        http: HttpLimits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            max_connections,
            ..HttpLimits::default()
        },
        ..TestOptions::default()
    }
}

#[tokio::test]
async fn half_open_connections_are_closed_and_never_lock_others_out() {
    let app = spawn_app_with(short_limits(None)).await;
    let mut half_open = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"POST /graphql HTTP/1.1\r\nHost: twofold\r\nContent-")
            .await
            .unwrap();
        half_open.push(stream);
    }
    // And some that send nothing at all.
    for _ in 0..20 {
        half_open.push(connect(&app).await);
    }
    // A normal client is served while they hang.
    let answer = app.gql(None, "{ __typename }", serde_json::json!({})).await;
    assert_eq!(answer.data()["__typename"], "Query");

    // A body that stops half-way is cut off too.
    let mut slow_body = connect(&app).await;
    slow_body
        .write_all(
            b"POST /graphql HTTP/1.1\r\nHost: twofold\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"query\":",
        )
        .await
        .unwrap();
    // An idle kept-alive connection is closed after its response.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: twofold\r\n\r\n")
        .await
        .unwrap();
    let response = first_bytes(&mut idle, Duration::from_secs(10))
        .await
        .expect("a response to a complete request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let started = Instant::now();
    let mut waits: Vec<_> = half_open
        .into_iter()
        .map(|s| tokio::spawn(closed_by_server(s, Duration::from_secs(10))))
        .collect();
    waits.push(tokio::spawn(closed_by_server(
        idle,
        Duration::from_secs(10),
    )));
    for wait in waits {
        wait.await
            .expect("every connection is closed by the server");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // And the service still answers.
    let answer = app.gql(None, "{ __typename }", serde_json::json!({})).await;
    assert_eq!(answer.data()["__typename"], "Query");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let mut options = short_limits(Some(4));
    // Long enough that nothing times out while the test looks.
    options.http.header_timeout = Duration::from_secs(30);
    let app = spawn_app_with(options).await;
    let request = b"GET /health HTTP/1.1\r\nHost: twofold\r\n\r\n";
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        stream.write_all(request).await.unwrap();
        let answer = first_bytes(&mut stream, Duration::from_secs(10)).await;
        assert!(answer.is_some_and(|a| a.starts_with("HTTP/1.1 200")));
        open.push(stream);
    }
    // A fifth connection is not served while four are open...
    let mut fifth = connect(&app).await;
    fifth.write_all(request).await.unwrap();
    assert_eq!(
        first_bytes(&mut fifth, Duration::from_millis(500)).await,
        None,
        "a fifth connection was served while the cap of 4 was reached"
    );
    // ...and is once one of them closes.
    drop(open.pop());
    let answer = first_bytes(&mut fifth, Duration::from_secs(10))
        .await
        .expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_dropped() {
    let app = spawn_app_with(short_limits(None)).await;
    // The biggest response there is: GraphiQL's script, about a megabyte.
    let page = app.get("/graphql").await.text().await.unwrap();
    let script = page
        .split('"')
        .find(|part| part.starts_with("/graphiql/") && part.ends_with("graphiql.min.js"))
        .expect("the page names its script")
        .to_owned();
    let full = app.get(&script).await.bytes().await.unwrap().len();
    assert!(full > 500_000, "{full}");

    // A client with a tiny receive window asks for it sixteen times in a row (more than the
    // kernel's buffers take) and then reads nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(host(&app).parse().unwrap()).await.unwrap();
    let requests = format!("GET {script} HTTP/1.1\r\nHost: twofold\r\n\r\n").repeat(16);
    stream.write_all(requests.as_bytes()).await.unwrap();
    let full = full * 16;
    // Four times the write stall (the 1 s header timeout) without reading a byte.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0;
    let mut buf = [0u8; 16 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server kept the connection open");
    assert!(
        received < full,
        "the server waited for the reader and sent all {received} bytes"
    );
}
