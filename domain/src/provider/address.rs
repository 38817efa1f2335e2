//! Which network addresses a tenant's provider may be reached at (SSRF). A tenant names its own
//! SMTP server, Twilio API base or webhook; without this rule it could make the service connect
//! to the machine's loopback, the private network or a cloud metadata endpoint. The rule is
//! applied to IP literals when settings are set and, by the adapters, to every address a name
//! resolves to when set and again at each connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused: a class name safe to show to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRefusal(pub &'static str);

impl std::fmt::Display for AddressRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it is a {} address", self.0)
    }
}

/// How an address is classed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Reachable on the internet.
    Public,
    /// Loopback or private: allowed only with the operator's development allowance.
    Private(&'static str),
    /// Never a provider: metadata, link-local, multicast, unspecified, documentation, reserved.
    Never(&'static str),
}

/// Cloud metadata endpoints, refused even with the development allowance.
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
/// AWS's IPv6 metadata endpoint `fd00:ec2::254`.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Whether a provider may be reached at `ip`. `allow_private` is the operator's development
/// allowance (`TWOFOLD_ALLOW_PRIVATE_PROVIDER_URLS=true`): loopback and private addresses
/// pass, metadata, link-local, multicast and the like never do.
pub fn check_address(ip: IpAddr, allow_private: bool) -> Result<(), AddressRefusal> {
    match classify(ip) {
        Class::Public => Ok(()),
        Class::Private(_) if allow_private => Ok(()),
        Class::Private(kind) | Class::Never(kind) => Err(AddressRefusal(kind)),
    }
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    if METADATA_V4.contains(&ip) {
        return Class::Never("cloud metadata");
    }
    let never: [([u8; 4], u32, &'static str); 12] = [
        ([0, 0, 0, 0], 8, "unspecified (\"this network\")"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([192, 0, 0, 0], 24, "reserved (IETF protocol assignments)"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([192, 88, 99, 0], 24, "reserved (6to4 relay)"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([0, 0, 0, 0], 32, "unspecified"),
    ];
    for (net, prefix, kind) in never {
        if in_v4(ip, net, prefix) {
            return Class::Never(kind);
        }
    }
    let private: [([u8; 4], u32, &'static str); 5] = [
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 168, 0, 0], 16, "private"),
        ([100, 64, 0, 0], 10, "shared (CGNAT)"),
    ];
    for (net, prefix, kind) in private {
        if in_v4(ip, net, prefix) {
            return Class::Private(kind);
        }
    }
    Class::Public
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

fn v6(segments: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

/// The IPv4 address in the low 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32)
}

/// The IPv4 address an IPv6 address stands for, where it carries one: `::ffff:a.b.c.d`
/// (mapped), `::a.b.c.d` (compatible), `64:ff9b::a.b.c.d` (NAT64), `2002:AABB:CCDD::/48`
/// (6to4). Such an address is judged, and counted, as that IPv4 address.
pub fn carried_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if in_v6(ip, v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96)
        || in_v6(ip, Ipv6Addr::UNSPECIFIED, 96)
        || in_v6(ip, v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96)
    {
        return Some(low_v4(ip));
    }
    if in_v6(ip, v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16) {
        return Some(Ipv4Addr::from(
            ((u128::from(ip) >> 80) & 0xffff_ffff) as u32,
        ));
    }
    None
}

/// A Teredo client's public IPv4 address (`2001:0::/32`, RFC 4380: the low 32 bits, each
/// inverted). Every client of one Teredo server shares the address's first 64 bits.
pub fn teredo_client(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    in_v6(ip, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32).then(|| Ipv4Addr::from(!low_v4(ip).to_bits()))
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if ip == METADATA_V6 {
        return Class::Never("cloud metadata");
    }
    if ip.is_unspecified() {
        return Class::Never("unspecified");
    }
    if ip.is_loopback() {
        return Class::Private("loopback");
    }
    if let Some(v4) = carried_ipv4(ip) {
        return classify_v4(v4);
    }
    let never: [(Ipv6Addr, u32, &'static str); 10] = [
        (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48, "NAT64 local-use"),
        (v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64, "discard-only"),
        (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32, "Teredo"),
        (v6([0x2001, 0x2, 0, 0, 0, 0, 0, 0]), 48, "benchmarking"),
        (
            v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0]),
            28,
            "reserved (ORCHID)",
        ),
        (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32, "documentation"),
        (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20, "documentation"),
        (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10, "link-local"),
        (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10, "site-local"),
        (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, "multicast"),
    ];
    for (net, prefix, kind) in never {
        if in_v6(ip, net, prefix) {
            return Class::Never(kind);
        }
    }
    if in_v6(ip, v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7) {
        return Class::Private("unique-local");
    }
    // Only the global unicast block is the internet; anything else is not assigned.
    if in_v6(ip, v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3) {
        Class::Public
    } else {
        Class::Never("reserved")
    }
}
