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
