//! The limits of the WebSocket path and the count of open sockets per key, per tenant, and
//! (before their key is accepted) per client address.

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
    /// Most sockets open at once per tenant, whatever its keys, per instance: sockets need no
    /// reconnecting, so without it one tenant's keys (up to 100 of them) could hold every
    /// connection of the instance.
    pub max_sockets_per_tenant: usize,
    /// Most sockets per client address (an IPv4 address or IPv6 /64) still waiting for their
    /// key to be accepted.
    pub max_pending_per_address: usize,
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
            max_sockets_per_tenant: 32,
            max_pending_per_address: 16,
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

    /// A place under each of `counters` (a name and its most), or `None` when one of them is
    /// full. All or nothing: a refused socket takes no place anywhere.
    pub(crate) fn open(self: &Arc<Self>, counters: &[(String, usize)]) -> Option<SocketSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let full = counters
            .iter()
            .any(|(name, most)| open.get(name).copied().unwrap_or(0) >= *most);
        if full {
            return None;
        }
        for (name, _) in counters {
            *open.entry(name.clone()).or_default() += 1;
        }
        Some(SocketSlot {
            sockets: self.clone(),
            counters: counters.iter().map(|(name, _)| name.clone()).collect(),
        })
    }
}

/// One open socket's places; given back when dropped.
pub(crate) struct SocketSlot {
    sockets: Arc<Websockets>,
    counters: Vec<String>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self
            .sockets
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for name in &self.counters {
            if let Some(count) = open.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    open.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_takes_a_place_under_every_counter_or_none() {
        let sockets = Arc::new(Websockets::default());
        let places = |key: &str| vec![(format!("key:{key}"), 2), ("tenant:t".to_owned(), 3)];
        let a = sockets.open(&places("a")).unwrap();
        let _b = sockets.open(&places("a")).unwrap();
        assert!(sockets.open(&places("a")).is_none(), "the key is full");
        let _c = sockets.open(&places("c")).unwrap();
        assert!(sockets.open(&places("d")).is_none(), "the tenant is full");
        // The refused attempts took nothing: freeing one place lets exactly one more in.
        drop(a);
        assert!(sockets.open(&places("d")).is_some());
        assert!(sockets.open(&[("tenant:other".to_owned(), 3)]).is_some());
    }
}
