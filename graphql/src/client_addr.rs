//! The client's address: the peer of the connection, or, when that peer is a proxy the operator
//! trusts (`TWOFOLD_TRUSTED_PROXIES`), the address that proxy saw, from `X-Forwarded-For`.
//!
//! The address keys the budget of requests without a valid key (`anonymous.rs`) and is recorded
//! with every event. Behind a load balancer the peer is always the balancer, so without this
//! one flooding client spent every client's budget. `X-Forwarded-For` is read only from a trusted
//! peer, and from the right: each trusted proxy appends the address it saw, so the first entry
//! from the right that is not a trusted proxy is the client. Entries further left were written
//! by the client itself and are never believed.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use twofold_domain::provider::address::{carried_ipv4, teredo_client};

use crate::http::ApiState;

/// The address a request is attributed to, set once per request by [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed; empty (the default) believes none.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Trusts `networks`.
    pub fn new(networks: Vec<IpNet>) -> Self {
        // Addresses are compared in their canonical form, so a network written as
        // IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) is its IPv4 network.
        let networks = networks
            .into_iter()
            .map(|n| match n {
                IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
                    Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(n),
                    None => n,
                },
                other => other,
            })
            .collect::<Vec<_>>();
        Self(networks.into())
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        // Read as bytes: the client writes the left part of the header, and one byte that is
        // not text must not make the whole chain unreadable (every request would then count as
        // the proxy's).
        let mut hops: Vec<&[u8]> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            hops.extend(value.as_bytes().split(|b| *b == b','));
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A malformed entry (or an obfuscated one, `unknown`) ends the chain: what lies
            // beyond it cannot be attributed, so the last address known is the client.
            let Some(ip) = std::str::from_utf8(hop).ok().and_then(parse_hop) else {
                return client;
            };
            client = canonical(ip);
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// IPv4 addresses mapped into IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports) are
/// the IPv4 address: one client must not count as two.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address a client stands for when its IPv6 address carries one: mapped, NAT64 and
/// 6to4 addresses, and a Teredo client's public address. Counted as IPv6, every IPv4 client
/// reaching the service through one NAT64 translator or one Teredo server would share a single
/// /64, and so one budget, while a 6to4 client would have a /48 of budgets for its one address.
fn as_counted(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => carried_ipv4(v6)
            .or_else(|| teredo_client(v6))
            .map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn prefix(ip: Ipv6Addr, bits: u32) -> IpAddr {
    let host_bits = u128::MAX.checked_shr(bits).unwrap_or(0);
    IpAddr::V6(Ipv6Addr::from(u128::from(ip) & !host_bits))
}

/// The unit a budget is kept per: an IPv4 address, or an IPv6 /64. One IPv6 subscriber is
/// routinely given a whole /64, so counting per address gave a single client 2^64 budgets.
pub fn budget_unit(ip: IpAddr) -> IpAddr {
    match as_counted(ip) {
        IpAddr::V6(v6) => prefix(v6, 64),
        v4 => v4,
    }
}

/// The wider unit a second budget is kept per for IPv6: the /48. A site (and anyone with a
/// tunnel broker's free /48) has 65,536 /64s, each a budget of its own.
pub fn budget_site(ip: IpAddr) -> Option<IpAddr> {
    match as_counted(ip) {
        IpAddr::V6(v6) => Some(prefix(v6, 48)),
        IpAddr::V4(_) => None,
    }
}

/// Middleware: records the request's [`ClientAddr`] for the handlers.
pub(crate) async fn resolve(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = state.trusted_proxies.client(peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusting(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("203.0.113.9"), &headers(&["198.51.100.1"])),
            ip("203.0.113.9")
        );
        let some = trusting(&["10.0.0.0/8"]);
        assert_eq!(
            some.client(ip("203.0.113.9"), &headers(&["198.51.100.1"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let proxies = trusting(&["10.0.0.0/8", "192.168.1.1/32"]);
        // The client forged a first entry; the proxies appended what they saw.
        let h = headers(&["6.6.6.6, 198.51.100.7", "192.168.1.1"]);
        assert_eq!(proxies.client(ip("10.1.2.3"), &h), ip("198.51.100.7"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client(ip("10.1.2.3"), &HeaderMap::new()),
            ip("10.1.2.3")
        );
        // A port, IPv6 in brackets, a mapped IPv4 address.
        assert_eq!(
            proxies.client(ip("10.1.2.3"), &headers(&["[2001:db8::5]:443"])),
            ip("2001:db8::5")
        );
        assert_eq!(
            proxies.client(ip("::ffff:10.1.2.3"), &headers(&["198.51.100.8:1234"])),
            ip("198.51.100.8")
        );
    }

    #[test]
    fn a_malformed_hop_ends_the_chain_at_the_last_known_address() {
        let proxies = trusting(&["10.0.0.0/8"]);
        let h = headers(&["198.51.100.7, unknown, 10.0.0.2"]);
        assert_eq!(proxies.client(ip("10.1.2.3"), &h), ip("10.0.0.2"));
        // Bytes that are not text, written by the client on the left, spoil only their entry.
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 198.51.100.7").unwrap(),
        );
        assert_eq!(proxies.client(ip("10.1.2.3"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_network_written_as_mapped_ipv6_matches_ipv4_peers() {
        let proxies = trusting(&["::ffff:10.0.0.0/104"]);
        assert_eq!(
            proxies.client(ip("10.1.2.3"), &headers(&["198.51.100.7"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ipv6_budgets_are_kept_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            budget_unit(ip("2001:db8:1:2:aaaa::1")),
            budget_unit(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            budget_unit(ip("2001:db8:1:2::1")),
            budget_unit(ip("2001:db8:1:3::1"))
        );
        assert_eq!(budget_unit(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_ne!(budget_unit(ip("192.0.2.1")), budget_unit(ip("192.0.2.2")));
        assert_eq!(budget_site(ip("192.0.2.1")), None);
        assert_eq!(
            budget_site(ip("2001:db8:1:2::1")),
            budget_site(ip("2001:db8:1:ffff::1"))
        );
        assert_ne!(
            budget_site(ip("2001:db8:1::1")),
            budget_site(ip("2001:db8:2::1"))
        );
    }

    #[test]
    fn ipv4_clients_behind_nat64_teredo_or_6to4_are_counted_as_their_ipv4_address() {
        // Two IPv4 clients through one NAT64 translator: one /64, but two budgets.
        assert_eq!(budget_unit(ip("64:ff9b::c000:201")), ip("192.0.2.1"));
        assert_ne!(
            budget_unit(ip("64:ff9b::c000:201")),
            budget_unit(ip("64:ff9b::c000:202"))
        );
        // Two clients of one Teredo server (RFC 4380's example, and another).
        assert_eq!(
            budget_unit(ip("2001:0:4136:e378:8000:63bf:3fff:fdd2")),
            ip("192.0.2.45")
        );
        assert_ne!(
            budget_unit(ip("2001:0:4136:e378:8000:63bf:3fff:fdd2")),
            budget_unit(ip("2001:0:4136:e378:8000:63bf:3fff:fdd1"))
        );
        // A 6to4 client's /48 is its one IPv4 address: every /64 of it shares its budget.
        assert_eq!(budget_unit(ip("2002:c000:203:1::1")), ip("192.0.2.3"));
        assert_eq!(
            budget_unit(ip("2002:c000:203:1::1")),
            budget_unit(ip("2002:c000:203:ffff::1"))
        );
        assert_eq!(budget_site(ip("2002:c000:203:1::1")), None);
    }
}
