//! The two GraphQL-over-WebSocket protocols: what a client may send, what the server answers,
//! and the close codes (those `graphql-transport-ws` defines, used for both).

use async_graphql::Response as GqlResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use twofold_services::ErrorCode;

/// Longest operation id accepted (clients use counters or UUIDs).
const MAX_ID_CHARS: usize = 128;

/// The subprotocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `graphql-transport-ws`, of the `graphql-ws` library.
    TransportWs,
    /// `graphql-ws`, the older subscriptions-transport-ws (Apollo) protocol.
    LegacyWs,
}

impl Protocol {
    /// The protocol to speak, from the client's `Sec-WebSocket-Protocol` offers (the current
    /// one when both are offered).
    pub(crate) fn choose(offered: &str) -> Option<Self> {
        let offers: Vec<&str> = offered.split(',').map(str::trim).collect();
        let has = |name: &str| offers.iter().any(|o| o.eq_ignore_ascii_case(name));
        if has("graphql-transport-ws") {
            Some(Self::TransportWs)
        } else if has("graphql-ws") {
            Some(Self::LegacyWs)
        } else {
            None
        }
    }

    /// Its `Sec-WebSocket-Protocol` name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::TransportWs => "graphql-transport-ws",
            Self::LegacyWs => "graphql-ws",
        }
    }

    pub(crate) fn ack(self) -> String {
        json!({ "type": "connection_ack" }).to_string()
    }

    pub(crate) fn pong(self) -> String {
        json!({ "type": "pong" }).to_string()
    }

    /// One result of operation `id`.
    pub(crate) fn next(self, id: &str, response: &GqlResponse) -> String {
        let kind = match self {
            Self::TransportWs => "next",
            Self::LegacyWs => "data",
        };
        json!({ "id": id, "type": kind, "payload": response }).to_string()
    }

    /// Operation `id` has ended.
    pub(crate) fn complete(self, id: &str) -> String {
        json!({ "id": id, "type": "complete" }).to_string()
    }

    /// Operation `id` was refused before it ran; it is over (no `complete` follows).
    pub(crate) fn error(self, id: &str, code: ErrorCode, message: &str) -> String {
        let error = json!({ "message": message, "extensions": { "code": code.as_str() } });
        let payload = match self {
            Self::TransportWs => json!([error]),
            Self::LegacyWs => error,
        };
        json!({ "id": id, "type": "error", "payload": payload }).to_string()
    }
}

/// What a client sent.
#[derive(Debug)]
pub(crate) enum ClientMessage {
    /// `connection_init` with its payload (`null` when absent).
    Init(Value),
    /// `subscribe` (`start`): an operation to run, its payload as sent (read as the HTTP
    /// body is, by `http::parse_request`).
    Subscribe {
        id: String,
        payload: Option<Box<RawValue>>,
    },
    /// `complete` (`stop`): the client no longer wants operation `id`.
    Complete {
        id: String,
    },
    Ping,
    Pong,
    /// `connection_terminate` (older protocol).
    Terminate,
}

/// A message's envelope, read with serde's derived map, which refuses a key given twice:
/// serde_json's own map kept the last of a repeated key, where a proxy or filter in front may
/// read the first (the HTTP body is read the same way). Other keys are ignored, as before.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
}

/// A JSON object whose keys are each given once (exact names: `apiKey` and `Authorization` in
/// two cases are two keys, and [`init_credential`] takes `apiKey` first).
struct UniqueKeys(serde_json::Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object with each key once")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<UniqueKeys, M::Error> {
                let mut object = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    if object.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("a key given twice"));
                    }
                }
                Ok(UniqueKeys(object))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Reads one message; the error is the close reason. Only the envelope is read here: the
/// operation's payload is left as sent.
pub(crate) fn parse(bytes: &[u8]) -> Result<ClientMessage, &'static str> {
    // serde's derived structs also take a JSON array, field by field in order.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("invalid message received: not a JSON object");
    }
    let Ok(message) = serde_json::from_slice::<Envelope>(bytes) else {
        return Err("invalid message received: not a JSON object with each key once");
    };
    let id = |id: Option<Value>| match id {
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ID_CHARS => Ok(id),
        _ => Err("invalid message received: `id` must be a string of 1 to 128 characters"),
    };
    match message.kind.as_ref().and_then(Value::as_str) {
        Some("connection_init") => {
            let payload = match message.payload {
                None => Value::Null,
                // It carries the key: read as a header would be, each name once.
                Some(raw) if raw.get().starts_with('{') => {
                    serde_json::from_str::<UniqueKeys>(raw.get())
                        .map(|UniqueKeys(object)| Value::Object(object))
                        .map_err(|_| {
                            "invalid message received: the payload must give each key once"
                        })?
                }
                Some(raw) => serde_json::from_str(raw.get())
                    .map_err(|_| "invalid message received: not a JSON object")?,
            };
            Ok(ClientMessage::Init(payload))
        }
        Some("subscribe" | "start") => Ok(ClientMessage::Subscribe {
            id: id(message.id)?,
            payload: message.payload,
        }),
        Some("complete" | "stop") => Ok(ClientMessage::Complete {
            id: id(message.id)?,
        }),
        Some("ping") => Ok(ClientMessage::Ping),
        Some("pong") => Ok(ClientMessage::Pong),
        Some("connection_terminate") => Ok(ClientMessage::Terminate),
        _ => Err("invalid message received: unknown `type`"),
    }
}

/// The key in a `connection_init` payload: `{ "Authorization": "Bearer <key>" }` (any case),
/// or `{ "apiKey": "<key>" }`.
pub(crate) fn init_credential(payload: &Value) -> Option<String> {
    let object = payload.as_object()?;
    if let Some(key) = object.get("apiKey").and_then(Value::as_str) {
        return Some(key.trim().to_owned()).filter(|k| !k.is_empty());
    }
    let (_, value) = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?;
    let (scheme, credential) = value.as_str()?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim().to_owned())
        .filter(|c| !c.is_empty())
}

/// Why the server closes a socket: a close code and a reason for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// The client ended the conversation.
    Normal,
    /// No message and no operation for the idle timeout.
    Idle,
    /// The service is stopping.
    GoingAway,
    /// A message larger than the limit (1009, "message too big").
    TooBig,
    /// The server could not check the key.
    Internal,
    /// A message that is not one of the protocol's.
    Invalid(&'static str),
    /// An operation before `connection_init` was accepted, or an init without a key.
    Unauthorized(&'static str),
    /// The key is unknown, malformed or revoked (also when revoked while the socket is open).
    Forbidden,
    /// No `connection_init` within the init timeout.
    InitTimeout,
    /// An operation id already in use on this socket.
    DuplicateId,
    /// A second `connection_init`, or more sockets than the key may hold.
    TooMany(&'static str),
}

impl Close {
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::Normal | Self::Idle => 1000,
            Self::GoingAway => 1001,
            Self::TooBig => 1009,
            Self::Internal => 1011,
            Self::Invalid(_) => 4400,
            Self::Unauthorized(_) => 4401,
            Self::Forbidden => 4403,
            Self::InitTimeout => 4408,
            Self::DuplicateId => 4409,
            Self::TooMany(_) => 4429,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Normal => "bye",
            Self::Idle => "idle for too long",
            Self::GoingAway => "the service is stopping",
            Self::TooBig => "message too big",
            Self::Internal => "internal error",
            Self::Invalid(why) | Self::Unauthorized(why) | Self::TooMany(why) => why,
            Self::Forbidden => "invalid or revoked credentials",
            Self::InitTimeout => "connection initialisation timeout",
            Self::DuplicateId => "an operation with this id is already running",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_protocol_is_chosen_when_both_are_offered() {
        assert_eq!(
            Protocol::choose("graphql-ws, graphql-transport-ws"),
            Some(Protocol::TransportWs)
        );
        assert_eq!(Protocol::choose("graphql-ws"), Some(Protocol::LegacyWs));
        assert_eq!(Protocol::choose("mqtt"), None);
    }

    #[test]
    fn messages_outside_the_protocol_are_refused() {
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"{"type": "subscribe", "payload": {}}"#).is_err());
        assert!(parse(br#"{"type": "subscribe", "id": 1, "payload": {}}"#).is_err());
        assert!(parse(br#"{"type": "launch"}"#).is_err());
        // A key given twice, in the envelope: a reader keeping the first would see another
        // message.
        assert!(parse(br#"{"type": "ping", "type": "connection_terminate"}"#).is_err());
        assert!(parse(br#"{"type": "complete", "id": "1", "id": "2"}"#).is_err());
        assert!(parse(br#"[{"type": "ping"}]"#).is_err());
        // In the payload that carries the key: a gateway reading the first would see another.
        assert!(parse(
            br#"{"type": "connection_init", "payload": {"apiKey": "a", "apiKey": "b"}}"#
        )
        .is_err());
        assert!(matches!(
            parse(br#"{"type": "connection_init", "payload": {"apiKey": "a", "x": {"y": 1}}}"#),
            Ok(ClientMessage::Init(_))
        ));
        let long = format!(r#"{{"type": "complete", "id": "{}"}}"#, "x".repeat(129));
        assert!(parse(long.as_bytes()).is_err());
        assert!(matches!(
            parse(br#"{"type": "start", "id": "1", "payload": {"query": "{ a }"}}"#),
            Ok(ClientMessage::Subscribe { .. })
        ));
    }

    #[test]
    fn the_key_is_read_from_either_form_of_payload() {
        assert_eq!(
            init_credential(&json!({ "authorization": "Bearer  k1 " })).as_deref(),
            Some("k1")
        );
        assert_eq!(
            init_credential(&json!({ "apiKey": "k2" })).as_deref(),
            Some("k2")
        );
        assert_eq!(init_credential(&json!({ "apiKey": " " })), None);
        assert_eq!(
            init_credential(&json!({ "Authorization": "Basic x" })),
            None
        );
        assert_eq!(init_credential(&json!({})), None);
    }
}
