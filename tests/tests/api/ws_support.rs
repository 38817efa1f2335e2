//! A small graphql-transport-ws client for the WebSocket tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use twofold_tests::TestApp;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for an answer that must come.
pub const WAIT: Duration = Duration::from_secs(10);

/// Opens a `graphql-transport-ws` socket (no `connection_init` sent yet).
pub async fn open(app: &TestApp) -> Socket {
    open_with(app, "graphql-transport-ws").await
}

/// Opens a socket offering `subprotocol`.
pub async fn open_with(app: &TestApp, subprotocol: &str) -> Socket {
    let url = format!("{}/graphql", app.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", subprotocol.parse().unwrap());
    // The client's own limits are far above the server's: the server must do the refusing.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false)
        .await
        .unwrap();
    socket
}

/// Opens a socket and sends `connection_init` with `payload`.
pub async fn connect(app: &TestApp, payload: Value) -> Socket {
    let mut socket = open(app).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await;
    socket
}

/// Opens a socket with `key` and waits for the `connection_ack`.
pub async fn connect_with_key(app: &TestApp, key: &str) -> Socket {
    let mut socket = connect(app, json!({ "Authorization": format!("Bearer {key}") })).await;
    let ack = next_message(&mut socket, WAIT).await;
    assert_eq!(
        ack.as_ref().map(|m| &m["type"]),
        Some(&json!("connection_ack")),
        "{ack:?}"
    );
    socket
}

/// Sends a JSON message, ignoring a socket the server has already closed.
pub async fn send(socket: &mut Socket, message: Value) {
    let _ = socket.send(Message::text(message.to_string())).await;
}

/// Sends `subscribe` for `query` under `id`.
pub async fn subscribe(socket: &mut Socket, id: &str, query: &str) {
    send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
}

/// The next message (pings and pongs skipped), a close as `{"type": "close", "code": ..}`, or
/// `None` if nothing comes within `wait` or the connection ends without a close frame.
pub async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ping" || v["type"] == "pong" {
                    continue;
                }
                return Some(v);
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(json!({
                    "type": "close",
                    "code": frame.as_ref().map(|f| u16::from(f.code)),
                    "reason": frame.map(|f| f.reason.to_string()),
                }))
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Waits for the server to close the socket; its close code.
pub async fn close_code(socket: &mut Socket, wait: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = next_message(socket, left).await?;
        if m["type"] == "close" {
            return m["code"].as_u64();
        }
    }
}

/// The single result of operation `id` (a query or mutation): its errors' first code, or the
/// data when it succeeded.
pub async fn result_of(socket: &mut Socket, id: &str) -> Value {
    loop {
        let m = next_message(socket, WAIT)
            .await
            .unwrap_or_else(|| panic!("no answer for operation {id}"));
        if m["type"] == "close" {
            return m;
        }
        if m["id"] != id {
            continue;
        }
        match m["type"].as_str() {
            Some("next") => return m["payload"].clone(),
            Some("error") => return json!({ "errors": m["payload"] }),
            _ => panic!("unexpected message {m}"),
        }
    }
}

/// The `extensions.code` of the first error in a `result_of` answer.
pub fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a coded error, got {answer}"))
}

/// Opens a `graphql-transport-ws` socket from the local address `local` (a 127.0.0.0/8
/// address); the HTTP status and body when the upgrade is refused.
pub async fn open_from(app: &TestApp, local: &str) -> Result<Socket, (u16, String)> {
    open_from_with(app, local, None).await
}

/// [`open_from`], with `key` in the upgrade's `Authorization` header when given.
pub async fn open_from_with(
    app: &TestApp,
    local: &str,
    key: Option<&str>,
) -> Result<Socket, (u16, String)> {
    open_as(app, local, key.map(|key| format!("Bearer {key}")), None).await
}

/// [`open_from`], with `authorization` as the upgrade's `Authorization` header.
pub async fn open_from_authorized(
    app: &TestApp,
    local: &str,
    authorization: &str,
) -> Result<Socket, (u16, String)> {
    open_as(app, local, Some(authorization.to_owned()), None).await
}

/// Opens a socket from 127.0.0.1 through a proxy that says the client is `client` in
/// `X-Forwarded-For` (the app must trust 127.0.0.1 as a proxy).
pub async fn open_forwarded(app: &TestApp, client: &str) -> Result<Socket, (u16, String)> {
    open_as(app, "127.0.0.1", None, Some(client)).await
}

async fn open_as(
    app: &TestApp,
    local: &str,
    authorization: Option<String>,
    forwarded_for: Option<&str>,
) -> Result<Socket, (u16, String)> {
    let url = format!("{}/graphql", app.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    if let Some(authorization) = authorization {
        request
            .headers_mut()
            .insert("authorization", authorization.parse().unwrap());
    }
    if let Some(client) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
    }
    let server: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let stream = tcp.connect(server).await.unwrap();
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
            Err((response.status().as_u16(), body.into_owned()))
        }
        Err(e) => panic!("the upgrade failed: {e}"),
    }
}
