//! GraphQL over a WebSocket (`GET /graphql` with `Upgrade: websocket`): the live audit stream,
//! and any query or mutation a client sends the same way.
//!
//! The protocol loop is ours rather than async-graphql's, because the transport must enforce
//! what the HTTP path enforces and async-graphql's loop offers no hook between a message and
//! its parsing: each message is bounded in size; nothing is parsed before `connection_init`
//! has given a valid key; every operation checks the key again and passes the same admission
//! gate (nesting, fragments) as `POST /graphql`; queries and mutations have the HTTP time
//! bound; and a socket whose key is revoked is closed (4403) within about a second.

mod key;
mod operation;
mod protocol;
mod registry;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{sleep_until, timeout, Instant};
use tracing::Instrument;
use twofold_services::{ErrorCode, RequestContext};

pub use registry::{Websockets, WsLimits};

use crate::client_addr::{budget_site, budget_unit};
use crate::guard::attach;
use crate::http::{
    bearer, client_ip, error_response, rate_limited, request_context, ApiState, RequestId,
};
use crate::schema::Shutdown;
use key::{Accepted, Credential};
use operation::Operation;
use protocol::{ClientMessage, Close, Protocol};
use registry::SocketSlot;

/// Longest wait for the client's close frame after the server has sent its own.
const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(1);

/// Longest a message may wait to be written: a client that stops reading would otherwise
/// hold the socket's loop, and with it the key check and the timeouts, for ever.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Messages a socket may send before its key is accepted: `connection_init` and a few pings.
const MAX_MESSAGES_BEFORE_INIT: u32 = 4;

/// How many /64s' worth of waiting sockets one IPv6 /48 may hold
/// ([`WsLimits::max_pending_per_address`] each): enough that a few servers of a hosting
/// provider's /48 cannot shut its other clients out, few enough that a /48's 65,536 /64s cannot
/// fill the instance's connections.
pub const PENDING_SITE_FACTOR: usize = 16;

/// Upgrades `GET /graphql` to a WebSocket speaking `graphql-transport-ws` (or the older
/// `graphql-ws`). A key may come with the upgrade request's `Authorization` header (servers can
/// send headers; browsers cannot, and put it in the `connection_init` payload instead).
pub(crate) async fn upgrade(state: ApiState, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::choose);
    let Some(protocol) = protocol else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            "WebSocket subscriptions need the `graphql-transport-ws` subprotocol",
        );
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let ip = client_ip(&parts.extensions);
    // An address that spent its budget of requests without a valid key is refused here when
    // its upgrade carries a key this instance does not hold as valid; one without a key may
    // still give a valid one in `connection_init` (browsers cannot send headers), and is
    // judged there.
    if let Some(seconds) = state.anonymous.refused(ip) {
        match bearer(&parts.headers) {
            Ok(Some(credential)) if state.auth.is_known(credential) => {}
            Ok(None) => {}
            // A malformed header is refused as an unknown key is, before it spends again.
            Ok(Some(_)) | Err(_) => return rate_limited(seconds),
        }
    }
    let header_credential = match bearer(&parts.headers) {
        Ok(c) => c.map(|c| Credential(c.to_owned())),
        Err(message) => {
            state.anonymous.spend(ip);
            return error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                message,
            );
        }
    };
    let limits = &state.websockets.limits;
    // A socket waiting for its key holds a connection for up to the init timeout: without a
    // bound per address, one client could hold every connection of the instance.
    let pending_counter = format!(
        "pending:{}",
        ip.map(budget_unit)
            .map_or_else(String::new, |ip| ip.to_string())
    );
    // And per IPv6 /48, whose 65,536 /64s would each have their own count.
    let site_counter = ip
        .and_then(budget_site)
        .map(|site| format!("pending-site:{site}"));
    // An upgrade carrying a key this instance knows as valid does not count: sockets that
    // never give a key must not lock a tenant's backend behind the same address out.
    let known_key = header_credential
        .as_ref()
        .is_some_and(|c| state.auth.is_known(&c.0));
    let counters = if known_key {
        Vec::new()
    } else {
        let per_site = limits
            .max_pending_per_address
            .saturating_mul(PENDING_SITE_FACTOR);
        std::iter::once((pending_counter, limits.max_pending_per_address))
            .chain(site_counter.map(|counter| (counter, per_site)))
            .collect()
    };
    let Some(pending) = state.websockets.open(&counters) else {
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many sockets from this address are waiting for connection_init",
        );
    };
    // The transport reads messages up to four times the limit, so one over the limit is read
    // whole and refused with a close frame the client can see (1009); past that, the read
    // itself fails and the connection is dropped. Either way nothing larger is parsed.
    let transport_limit = limits.max_message_bytes.saturating_mul(4);
    let mut upgrade = upgrade
        .max_message_size(transport_limit)
        .max_frame_size(transport_limit);
    upgrade.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    let span = tracing::info_span!(
        "websocket",
        request_id = %request_id,
        tenant = tracing::field::Empty,
        actor = tracing::field::Empty,
    );
    let connection = Connection {
        context: request_context(&parts, &request_id),
        state,
        protocol,
        request_id,
        ip,
        header_credential,
        pending: Some(pending),
        key: None,
        operations: HashMap::new(),
        serial: 0,
        before_init: 0,
        last_activity: Instant::now(),
    };
    upgrade.on_upgrade(move |socket| connection.serve(socket).instrument(span))
}

/// One socket's state.
struct Connection {
    state: ApiState,
    protocol: Protocol,
    context: RequestContext,
    request_id: String,
    /// The client's address, whose budget a refused `connection_init` spends.
    ip: Option<std::net::IpAddr>,
    header_credential: Option<Credential>,
    /// The socket's place among those of its address still waiting for a key.
    pending: Option<SocketSlot>,
    key: Option<Accepted>,
    /// Operations in flight, by the client's id, with a serial number so that the end of an
    /// operation is never mistaken for the end of a later one reusing its id.
    operations: HashMap<String, (u64, AbortHandle)>,
    serial: u64,
    /// Messages received before a key was accepted.
    before_init: u32,
    /// The last message that asked for work, or the end of an operation. Pings (of the
    /// WebSocket or of the protocol) and `complete`s for nothing do not count.
    last_activity: Instant,
}

impl Connection {
    async fn serve(mut self, socket: WebSocket) {
        let limits = self.state.websockets.limits.clone();
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::channel::<String>(32);
        let mut running: JoinSet<(String, u64)> = JoinSet::new();
        let opened = Instant::now();
        self.last_activity = opened;
        let mut recheck = tokio::time::interval(limits.recheck_interval);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.state.schema.data::<Shutdown>().map(|s| s.0.clone());
        let close = loop {
            let (deadline, timeout_close) = match self.key {
                None => (opened + limits.init_timeout, Close::InitTimeout),
                Some(_) => (self.last_activity + limits.idle_timeout, Close::Idle),
            };
            let may_time_out = self.key.is_none() || self.operations.is_empty();
            tokio::select! {
                incoming = stream.next() => {
                    let bytes = match incoming {
                        Some(Ok(Message::Text(text))) => Bytes::from(text),
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => break None,
                        Some(Err(e)) => {
                            if too_big(e) {
                                // The stream is unusable after this error: close without the
                                // handshake.
                                let _ = timeout(SEND_TIMEOUT, sink.send(close_frame(Close::TooBig))).await;
                            }
                            break None;
                        }
                    };
                    if bytes.len() > limits.max_message_bytes {
                        break Some(Close::TooBig);
                    }
                    match self.handle(&bytes, &out, &mut running).await {
                        Ok(Some(reply)) => {
                            if !sent(timeout(SEND_TIMEOUT, sink.send(Message::text(reply))).await) {
                                break None;
                            }
                        }
                        Ok(None) => {}
                        Err(close) => break Some(close),
                    }
                }
                Some(message) = outgoing.recv() => {
                    if !sent(timeout(SEND_TIMEOUT, sink.send(Message::text(message))).await) {
                        break None;
                    }
                }
                Some(ended) = running.join_next() => {
                    if let Ok((id, serial)) = ended {
                        if self.operations.get(&id).is_some_and(|(s, _)| *s == serial) {
                            self.operations.remove(&id);
                        }
                    }
                    self.last_activity = Instant::now();
                }
                _ = recheck.tick(), if self.key.is_some() => {
                    if let Err(close) = self.recheck().await {
                        break Some(close);
                    }
                }
                () = sleep_until(deadline), if may_time_out => break Some(timeout_close),
                () = stopping(&mut shutdown) => break Some(Close::GoingAway),
            }
        };
        running.abort_all();
        if self.key.is_none() {
            // A socket that never gave a valid key, whatever the reason (no key, a refused one,
            // no `connection_init` at all), is a request without a valid key.
            self.state.anonymous.spend(self.ip);
        }
        let close_handshake = close.is_some();
        if let Some(close) = close {
            tracing::info!(
                code = close.code(),
                reason = close.reason(),
                "closing WebSocket"
            );
            let _ = timeout(SEND_TIMEOUT, sink.send(close_frame(close))).await;
        }
        if close_handshake {
            // Reading on until the client's own close frame (briefly) lets it read ours:
            // closing with its data unread would reset the connection instead.
            let _ = timeout(CLOSE_HANDSHAKE, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        let _ = timeout(SEND_TIMEOUT, sink.close()).await;
    }

    /// Acts on one message; a reply to send at once, or why the socket must close.
    async fn handle(
        &mut self,
        bytes: &[u8],
        out: &mpsc::Sender<String>,
        running: &mut JoinSet<(String, u64)>,
    ) -> Result<Option<String>, Close> {
        let message = protocol::parse(bytes).map_err(Close::Invalid)?;
        if self.key.is_none() {
            // Before a valid key, only the handshake: anything else, or a stream of pings,
            // is work done for a caller nobody has vouched for.
            self.before_init += 1;
            if self.before_init > MAX_MESSAGES_BEFORE_INIT {
                return Err(Close::TooMany("too many messages before connection_init"));
            }
            if let ClientMessage::Complete { .. } = message {
                return Err(Close::Unauthorized("connection_init first"));
            }
        }
        // Only a message that asks for work keeps a socket from idling: pings, and `complete`s
        // for operations that are not running, cost nothing to repeat for ever.
        let asks_for_work = match &message {
            ClientMessage::Init(_) | ClientMessage::Subscribe { .. } => true,
            ClientMessage::Complete { id } => self.operations.contains_key(id),
            ClientMessage::Ping | ClientMessage::Pong | ClientMessage::Terminate => false,
        };
        if asks_for_work {
            self.last_activity = Instant::now();
        }
        match message {
            ClientMessage::Init(payload) => self.accept(&payload).await.map(Some),
            ClientMessage::Ping => Ok(Some(self.protocol.pong())),
            ClientMessage::Pong => Ok(None),
            ClientMessage::Terminate => Err(Close::Normal),
            ClientMessage::Complete { id } => {
                if let Some((_, operation)) = self.operations.remove(&id) {
                    operation.abort();
                }
                Ok(None)
            }
            ClientMessage::Subscribe { id, payload } => self.start(id, payload, out, running).await,
        }
    }

    /// `subscribe`: checks the key again and the request's limits, then runs it.
    async fn start(
        &mut self,
        id: String,
        payload: Option<Box<serde_json::value::RawValue>>,
        out: &mpsc::Sender<String>,
        running: &mut JoinSet<(String, u64)>,
    ) -> Result<Option<String>, Close> {
        let Some(accepted) = &self.key else {
            return Err(Close::Unauthorized("subscribe before connection_ack"));
        };
        if self.operations.contains_key(&id) {
            return Err(Close::DuplicateId);
        }
        let limits = &self.state.websockets.limits;
        if self.operations.len() >= limits.max_operations_per_socket {
            let message = format!(
                "at most {} operations may run at once on one socket",
                limits.max_operations_per_socket
            );
            let refusal = self.protocol.error(&id, ErrorCode::RateLimited, &message);
            return Ok(Some(refusal));
        }
        let principal = match self.authenticate(&accepted.credential).await {
            Ok(principal) => principal,
            Err(Close::Internal) => {
                let message = format!("internal error (request id {})", self.request_id);
                let refusal = self.protocol.error(&id, ErrorCode::Internal, &message);
                return Ok(Some(refusal));
            }
            Err(close) => return Err(close),
        };
        // Read as the HTTP body is: a JSON object whose `query` is a string, each key once.
        let payload = payload
            .as_deref()
            .map_or("null", serde_json::value::RawValue::get);
        let request = match crate::http::parse_request(payload.as_bytes()) {
            Ok(request) => request,
            Err(detail) => {
                let message =
                    format!("the payload must be a JSON object with a \"query\" string ({detail})");
                return Ok(Some(self.protocol.error(
                    &id,
                    ErrorCode::InvalidInput,
                    &message,
                )));
            }
        };
        let request = attach(request, Some(principal.clone()), self.context.clone());
        self.serial += 1;
        // Charged, parsed and checked on the operation's own task: a key over its rate, or a
        // large document, must not hold up the socket's loop (and with it the key recheck).
        let operation = Operation {
            principal,
            queries: self.state.queries.clone(),
            schema: self.state.schema.clone(),
            protocol: self.protocol,
            id: id.clone(),
            request_id: self.request_id.clone(),
            timeout: limits.operation_timeout,
            out: out.clone(),
        };
        let serial = self.serial;
        let key = id.clone();
        let handle = running.spawn(
            async move {
                operation.run(request).await;
                (id, serial)
            }
            .in_current_span(),
        );
        self.operations.insert(key, (serial, handle));
        Ok(None)
    }
}

/// Whether a send finished in time and succeeded.
fn sent<E>(result: Result<Result<(), E>, tokio::time::error::Elapsed>) -> bool {
    matches!(result, Ok(Ok(())))
}

fn close_frame(close: Close) -> Message {
    Message::Close(Some(CloseFrame {
        code: close.code(),
        reason: close.reason().into(),
    }))
}

/// Whether a read failed because the message was larger than the limit.
fn too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// Completes when the service starts stopping (never, without a shutdown signal).
async fn stopping(shutdown: &mut Option<watch::Receiver<bool>>) {
    if let Some(receiver) = shutdown {
        if receiver.wait_for(|stopping| *stopping).await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}
