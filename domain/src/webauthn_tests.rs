use super::*;

fn change(rp_id: &str, origins: &[&str]) -> RelyingPartyChange {
    RelyingPartyChange {
        rp_id: rp_id.into(),
        rp_name: "Acme".into(),
        origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        user_verification: None,
    }
}

fn refused(rp_id: &str, origins: &[&str]) -> bool {
    matches!(
        RelyingParty::parse(&change(rp_id, origins)),
        Err(PolicyError::WebAuthn(_))
    )
}

#[test]
fn an_origin_under_the_rp_id_is_accepted_and_normalised() {
    let rp = RelyingParty::parse(&change(
        "Example.com",
        &[
            "https://login.example.com/",
            "https://example.com:8443",
            "https://login.example.com",
        ],
    ))
    .unwrap();
    assert_eq!(rp.rp_id, "example.com");
    assert_eq!(
        rp.origins,
        vec!["https://login.example.com", "https://example.com:8443"]
    );
    assert_eq!(rp.user_verification, UserVerification::Preferred);
}

#[test]
fn localhost_may_use_http_and_nothing_else_may() {
    assert!(RelyingParty::parse(&change("localhost", &["http://localhost:3000"])).is_ok());
    assert!(refused("example.com", &["http://example.com"]));
    assert!(refused("example.com", &["ftp://example.com"]));
}

#[test]
fn the_rp_id_must_cover_every_origin() {
    assert!(refused("example.com", &["https://example.org"]));
    assert!(refused("login.example.com", &["https://example.com"]));
    // A suffix of the text that is not a parent domain.
    assert!(refused("ample.com", &["https://example.com"]));
    assert!(refused(
        "example.com",
        &["https://example.com", "https://evil.net"]
    ));
}

#[test]
fn public_suffixes_are_not_relying_parties() {
    assert!(refused("com", &["https://example.com"]));
    assert!(refused("co.uk", &["https://shop.example.co.uk"]));
    assert!(refused("github.io", &["https://acme.github.io"]));
    assert!(RelyingParty::parse(&change("example.co.uk", &["https://shop.example.co.uk"])).is_ok());
}

#[test]
fn malformed_values_are_refused() {
    assert!(refused("https://example.com", &["https://example.com"]));
    assert!(refused("example.com:443", &["https://example.com"]));
    assert!(refused("127.0.0.1", &["https://127.0.0.1"]));
    assert!(refused("example.com", &["https://example.com/login"]));
    assert!(refused("example.com", &["https://user@example.com"]));
    assert!(refused("example.com", &["https://example.com/?a=b"]));
    assert!(refused("example.com", &[]));
    let many: Vec<String> = (0..11)
        .map(|i| format!("https://a{i}.example.com"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(refused("example.com", &many));
    let mut blank = change("example.com", &["https://example.com"]);
    blank.rp_name = "  ".into();
    assert!(RelyingParty::parse(&blank).is_err());
}

#[test]
fn the_policy_allows_webauthn_only_with_a_relying_party() {
    use crate::{Method, Policy, PolicyChange};
    let allow = PolicyChange {
        allowed_methods: Some(vec![Method::WebAuthn]),
        ..PolicyChange::default()
    };
    assert_eq!(
        Policy::default().apply(&allow),
        Err(PolicyError::WebAuthnNotConfigured)
    );
    let with_rp = PolicyChange {
        web_authn: Some(change("example.com", &["https://example.com"])),
        ..allow
    };
    let policy = Policy::default().apply(&with_rp).unwrap();
    assert!(policy.allows(Method::WebAuthn));
    assert_eq!(policy.web_authn.unwrap().rp_id, "example.com");
    let bad = PolicyChange {
        web_authn: Some(change("com", &["https://example.com"])),
        ..PolicyChange::default()
    };
    assert!(matches!(
        Policy::default().apply(&bad),
        Err(PolicyError::WebAuthn(_))
    ));
}

/// What browsers serialise as an origin is what the policy keeps: upper case folded, the
/// default port dropped, IDNs in their xn-- form; a trailing dot is another host, and only
/// `localhost` itself may use http.
#[test]
fn origins_are_compared_as_browsers_serialise_them() {
    let rp = RelyingParty::parse(&change(
        "xn--bcher-kva.de",
        &["HTTPS://Login.BÜCHER.de:443", "https://bücher.de"],
    ))
    .unwrap();
    assert_eq!(
        rp.origins,
        vec!["https://login.xn--bcher-kva.de", "https://xn--bcher-kva.de"]
    );
    assert!(refused("bücher.de", &["https://xn--bcher-kva.de"]));
    assert!(refused("example.com", &["https://login.example.com."]));
    assert!(refused("example.com.", &["https://login.example.com"]));
    assert!(refused("localhost", &["http://sub.localhost"]));
    assert!(refused("localhost", &["http://localhost.evil.net"]));
    assert!(refused(
        "example.com",
        &["https://[::1]", "https://example.com"]
    ));
    // A numeric last label makes browsers read the host as an IPv4 address.
    assert!(refused("0177.0.0.1", &["https://0177.0.0.1"]));
    assert!(refused("blogspot.com", &["https://acme.blogspot.com"]));
}

#[test]
fn the_rp_name_is_one_to_64_printable_characters() {
    let named = |name: &str| {
        let mut c = change("example.com", &["https://example.com"]);
        c.rp_name = name.into();
        RelyingParty::parse(&c)
    };
    assert!(named(&"n".repeat(MAX_RP_NAME_CHARS)).is_ok());
    assert!(named(&"n".repeat(MAX_RP_NAME_CHARS + 1)).is_err());
    assert!(named("  ").is_err());
    assert!(named("Acme\u{7}").is_err());
}

#[test]
fn one_to_ten_origins() {
    let hosts: Vec<String> = (0..=MAX_ORIGINS)
        .map(|i| format!("https://h{i}.example.com"))
        .collect();
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    assert!(!refused("example.com", &refs[..MAX_ORIGINS]));
    assert!(refused("example.com", &refs));
    assert!(refused("example.com", &[]));
}

#[test]
fn the_rp_id_is_a_domain_name_of_at_most_253_bytes() {
    // Labels of 60 characters under example.com, cut to the exact length.
    let name = |len: usize| {
        let mut n = String::from("example.com");
        while n.len() < len {
            n = format!("{}.{n}", "a".repeat(60.min(len - n.len() - 1).max(1)));
        }
        n
    };
    assert_eq!(name(253).len(), 253);
    let origin = |host: &str| format!("https://{host}");
    let longest = name(253);
    assert!(!refused(&longest, &[&origin(&longest)]));
    let too_long = name(254);
    assert_eq!(too_long.len(), 254);
    assert!(refused(&too_long, &[&origin(&too_long)]));
    assert!(refused("exa_mple.com", &["https://exa_mple.com"]));
    assert!(refused("example..com", &["https://example.com"]));
    assert!(refused("", &["https://example.com"]));
}

#[test]
fn an_origin_is_at_most_269_bytes() {
    // "https://" and a host under example.com: the bound is a DNS name plus a scheme and port.
    let origin = |len: usize| {
        let mut host = String::from("example.com");
        while host.len() + 8 < len {
            let room = len - host.len() - 8 - 1;
            host = format!("{}.{host}", "a".repeat(60.min(room).max(1)));
        }
        format!("https://{host}")
    };
    let longest = origin(MAX_NAME_BYTES + 16);
    assert_eq!(longest.len(), 269);
    assert!(!refused("example.com", &[&longest]));
    let too_long = origin(MAX_NAME_BYTES + 17);
    assert_eq!(too_long.len(), 270);
    assert!(refused("example.com", &[&too_long]));
}

#[test]
fn a_page_runs_ceremonies_only_on_a_listed_origin() {
    let rp = RelyingParty::parse(&change(
        "example.com",
        &["https://2fa.example.com", "https://example.com:8443"],
    ))
    .unwrap();
    // The service's public URL, as TWOFOLD_PUBLIC_URL may be written.
    assert!(rp.admits_page_at("https://2fa.example.com"));
    assert!(rp.admits_page_at("https://2FA.example.com:443/"));
    assert!(rp.admits_page_at("https://example.com:8443/base"));
    assert!(!rp.admits_page_at("https://example.com"));
    assert!(!rp.admits_page_at("http://2fa.example.com"));
    assert!(!rp.admits_page_at("https://2fa.example.com.evil.net"));
    assert!(!rp.admits_page_at("not a url"));
}
