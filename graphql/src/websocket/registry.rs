//! The limits of the WebSocket path and the count of open sockets per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::http::{MAX_BODY_BYTES, REQUEST_TIMEOUT};

/// What one socket may do. The defaults match the HTTP path where there is one.
#[derive(Debug, Clone)]
pub struct WsLimits {
    /// Largest message, in bytes: the HTTP body limit, since a message carries the same request.
    pub max_message_bytes: usize,
    /// Longest a query or mutation may run: the HTTP bound. (A subscription lives until it
    /// ends, the client completes it, the key is revoked or the socket closes.)
    pub operation_timeout: Duration,
    /// Most sockets open at once per key (or for the operator token), per instance.
    pub max_sockets_per_key: usize,
    /// Most operations in flight (subscriptions included) at once on one socket.
    pub max_operations_per_socket: usize,
    /// Longest wait for `connection_init` after the upgrade.
    pub init_timeout: Duration,
    /// Longest a socket stays open with no operation in flight and no message from the client.
    pub idle_timeout: Duration,
    /// How often a socket's key is checked again, so a revoked key's sockets close.
    pub recheck_interval: Duration,
}

impl Default for WsLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: MAX_BODY_BYTES,
            operation_timeout: REQUEST_TIMEOUT,
            max_sockets_per_key: 8,
            max_operations_per_socket: 16,
            init_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            recheck_interval: Duration::from_millis(500),
        }
    }
}

/// The WebSocket limits and the sockets open on this instance, by key.
#[derive(Debug, Default)]
pub struct Websockets {
    pub(crate) limits: WsLimits,
    open: Mutex<HashMap<String, usize>>,
}

impl Websockets {
    /// Sockets bounded by `limits`.
    pub fn new(limits: WsLimits) -> Self {
        Self {
            limits,
            open: Mutex::default(),
        }
    }

    /// A place for one more socket of `key`, or `None` when it already has the most allowed.
    pub(crate) fn open(self: &Arc<Self>, key: String) -> Option<SocketSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_default();
        if *count >= self.limits.max_sockets_per_key {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            sockets: self.clone(),
            key,
        })
    }
}

/// One open socket of a key; gives its place back when dropped.
pub(crate) struct SocketSlot {
    sockets: Arc<Websockets>,
    key: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self
            .sockets
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_at_most_its_sockets_and_a_closed_one_frees_its_place() {
        let sockets = Arc::new(Websockets::new(WsLimits {
            max_sockets_per_key: 2,
            ..WsLimits::default()
        }));
        let a = sockets.open("a".into()).unwrap();
        let _b = sockets.open("a".into()).unwrap();
        assert!(sockets.open("a".into()).is_none());
        assert!(sockets.open("other".into()).is_some());
        drop(a);
        assert!(sockets.open("a".into()).is_some());
    }
}
