use std::net::IpAddr;

use super::*;

const STRICT: ProviderRules = ProviderRules {
    allow_private: false,
};
const DEV: ProviderRules = ProviderRules {
    allow_private: true,
};
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3cret-auth-token-value";

fn email(url: &str) -> DeliverySettingsRequest {
    DeliverySettingsRequest {
        sender_name: Some("Acme Bank".into()),
        email: Some(EmailRequest {
            smtp_url: url.into(),
            from: "no-reply@acme.example".into(),
            from_name: Some("Acme".into()),
        }),
        sms: None,
    }
}

fn twilio(api_base: Option<&str>) -> TwilioRequest {
    TwilioRequest {
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        api_base: api_base.map(Into::into),
    }
}

fn sms(twilio: Option<TwilioRequest>, webhook: Option<WebhookRequest>) -> DeliverySettingsRequest {
    DeliverySettingsRequest {
        sms: Some(SmsRequest { twilio, webhook }),
        ..Default::default()
    }
}

fn hook(url: &str) -> WebhookRequest {
    WebhookRequest {
        url: url.into(),
        secret: "0123456789abcdef0123".into(),
    }
}

fn refused(request: &DeliverySettingsRequest, rules: ProviderRules) -> SettingsError {
    let e = validate(request, rules).expect_err("should be refused");
    for secret in ["hunter2pw", TOKEN, "0123456789abcdef0123", SID] {
        assert!(!e.to_string().contains(secret), "echoed a secret: {e}");
    }
    e
}

#[test]
fn smtp_url_forms() {
    let s = validate(&email("smtps://mailer:hunter2pw@smtp.acme.example"), STRICT).unwrap();
    let e = s.email.unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.security),
        ("smtp.acme.example", 465, SmtpSecurity::Tls)
    );
    assert_eq!(e.username.as_deref(), Some("mailer"));
    assert_eq!(e.password.as_deref(), Some("hunter2pw"));
    let s = validate(
        &email("smtp://u%40x:p%3Aw@SMTP.Acme.example:2587?tls=required"),
        STRICT,
    )
    .unwrap();
    let e = s.email.unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.security),
        ("smtp.acme.example", 2587, SmtpSecurity::StartTls)
    );
    assert_eq!(e.username.as_deref(), Some("u@x"));
    assert_eq!(e.password.as_deref(), Some("p:w"));

    for (url, field) in [
        ("smtp://mailer:hunter2pw@smtp.acme.example", "email.smtpUrl"),
        (
            "smtp://mailer:hunter2pw@smtp.acme.example?tls=opportunistic",
            "email.smtpUrl",
        ),
        (
            "smtps://mailer:hunter2pw@smtp.acme.example?debug=1",
            "email.smtpUrl",
        ),
        (
            "smtps://mailer:hunter2pw@smtp.acme.example/path",
            "email.smtpUrl",
        ),
        (
            "https://mailer:hunter2pw@smtp.acme.example",
            "email.smtpUrl",
        ),
        ("smtps://mailer@smtp.acme.example", "email.smtpUrl"),
        ("hunter2pw", "email.smtpUrl"),
        ("smtps://mailer:hunter2pw@127.0.0.1", "email.smtpUrl"),
        ("smtps://mailer:hunter2pw@localhost", "email.smtpUrl"),
        ("smtps://mailer:hunter2pw@0x7f.1", "email.smtpUrl"),
        ("smtps://mailer:hunter2pw@[::1]", "email.smtpUrl"),
    ] {
        assert_eq!(refused(&email(url), STRICT).field, field, "{url}");
    }
    // Plain SMTP to a local test server only with the development allowance.
    let s = validate(&email("smtp://127.0.0.1:2525"), DEV).unwrap();
    assert_eq!(s.email.unwrap().security, SmtpSecurity::Plain);
}

#[test]
fn from_and_names_are_checked() {
    let mut r = email("smtps://u:hunter2pw@smtp.acme.example");
    r.email.as_mut().unwrap().from = "not an address".into();
    assert_eq!(refused(&r, STRICT).field, "email.from");
    let mut r = email("smtps://u:hunter2pw@smtp.acme.example");
    r.email.as_mut().unwrap().from_name = Some("Evil\r\nBcc: x@y.z".into());
    assert_eq!(refused(&r, STRICT).field, "email.fromName");
    let mut r = email("smtps://u:hunter2pw@smtp.acme.example");
    r.sender_name = Some("x".repeat(65));
    assert_eq!(refused(&r, STRICT).field, "senderName");
    r.sender_name = Some("  ".into());
    assert_eq!(refused(&r, STRICT).field, "senderName");
}

#[test]
fn twilio_rules() {
    let s = validate(&sms(Some(twilio(None)), None), STRICT).unwrap();
    let Some(SmsProvider::Twilio { api_base, .. }) = &s.sms else {
        panic!("twilio expected")
    };
    assert_eq!(api_base, "https://api.twilio.com");
    let facts = s.facts();
    assert_eq!(
        facts.sms,
        Some(SmsFacts::Twilio {
            account_sid: "AC…cdef".into(),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            api_base_host: "api.twilio.com".into(),
        })
    );
    let shown = serde_json::to_string(&facts).unwrap();
    assert!(!shown.contains(TOKEN) && !shown.contains(SID), "{shown}");

    let mut t = twilio(None);
    t.account_sid = "AC/../x".into();
    assert_eq!(
        refused(&sms(Some(t), None), STRICT).field,
        "sms.twilio.accountSid"
    );
    let mut t = twilio(None);
    t.auth_token = "short".into();
    assert_eq!(
        refused(&sms(Some(t), None), STRICT).field,
        "sms.twilio.authToken"
    );
    let mut t = twilio(None);
    t.from = None;
    assert_eq!(
        refused(&sms(Some(t.clone()), None), STRICT).field,
        "sms.twilio"
    );
    t.messaging_service_sid = Some(format!("MG{}", "a".repeat(32)));
    validate(&sms(Some(t), None), STRICT).unwrap();
    let mut t = twilio(None);
    t.from = Some("+1 (500) 555".into());
    assert_eq!(
        refused(&sms(Some(t), None), STRICT).field,
        "sms.twilio.from"
    );
    for base in [
        "http://api.twilio.example",
        "https://u:hunter2pw@api.twilio.example",
        "https://api.twilio.example?x=1",
        "https://169.254.169.254",
        "https://[::ffff:127.0.0.1]",
        "ftp://api.twilio.example",
    ] {
        let e = refused(&sms(Some(twilio(Some(base))), None), STRICT);
        assert_eq!(e.field, "sms.twilio.apiBase", "{base}: {e}");
    }
    validate(&sms(Some(twilio(Some("http://127.0.0.1:9999"))), None), DEV).unwrap();
}

#[test]
fn exactly_one_sms_provider() {
    assert_eq!(refused(&sms(None, None), STRICT).field, "sms");
    assert_eq!(
        refused(
            &sms(Some(twilio(None)), Some(hook("https://sms.acme.example/h"))),
            STRICT
        )
        .field,
        "sms"
    );
}

#[test]
fn webhook_rules() {
    let s = validate(
        &sms(None, Some(hook("https://sms.acme.example/h?token=abc"))),
        STRICT,
    )
    .unwrap();
    assert_eq!(
        s.facts().sms,
        Some(SmsFacts::Webhook {
            host: "sms.acme.example".into()
        })
    );
    for url in [
        "http://sms.acme.example/h",
        "https://10.0.0.8/h",
        "https://192.168.1.1/h",
        "https://100.64.0.1/h",
        "https://[fd00:ec2::254]/h",
        "https://[fe80::1]/h",
        "https://localhost/h",
        "https://intranet/h",
        "https://0x7f.1/h",
    ] {
        assert_eq!(
            refused(&sms(None, Some(hook(url))), STRICT).field,
            "sms.webhook.url",
            "{url}"
        );
    }
    let mut h = hook("https://sms.acme.example/h");
    h.secret = "short".into();
    assert_eq!(
        refused(&sms(None, Some(h)), STRICT).field,
        "sms.webhook.secret"
    );
    // The metadata endpoint stays refused even with the development allowance.
    assert_eq!(
        refused(&sms(None, Some(hook("http://169.254.169.254/latest"))), DEV).field,
        "sms.webhook.url"
    );
}

#[test]
fn address_classes() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for public in [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
    ] {
        check_address(ip(public), false).unwrap_or_else(|e| panic!("{public}: {e}"));
    }
    for private in [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "100.64.0.1",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:c0a8:0101::1",
    ] {
        assert!(check_address(ip(private), false).is_err(), "{private}");
        check_address(ip(private), true).unwrap_or_else(|e| panic!("{private}: {e}"));
    }
    for never in [
        "0.0.0.0",
        "0.1.2.3",
        "169.254.169.254",
        "169.254.1.1",
        "100.100.100.200",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "192.0.0.192",
        "::",
        "fd00:ec2::254",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:169.254.169.254",
        "2001::1",
        // Teredo and NAT64 local-use stay refused even when they carry a public address
        // (8.8.8.8): the SSRF rule never reads the address inside them.
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        "64:ff9b:1::808:808",
    ] {
        assert!(check_address(ip(never), true).is_err(), "{never}");
    }
    assert_eq!(
        check_address(ip("169.254.169.254"), true)
            .unwrap_err()
            .to_string(),
        "it is a cloud metadata address"
    );
    assert!(check_address(ip("172.32.0.1"), false).is_ok());
}

#[test]
fn hosts_and_debug_hide_nothing_secret() {
    let mut r = email("smtps://u:hunter2pw@smtp.acme.example");
    r.sms = Some(SmsRequest {
        twilio: Some(twilio(Some("https://api.twilio.example"))),
        webhook: None,
    });
    let s = validate(&r, STRICT).unwrap();
    assert_eq!(
        s.hosts(),
        vec![
            ("email.smtpUrl", "smtp.acme.example".to_owned()),
            ("sms.twilio.apiBase", "api.twilio.example".to_owned())
        ]
    );
    let debug = format!("{s:?}{r:?}");
    assert!(
        !debug.contains("hunter2pw") && !debug.contains(TOKEN),
        "{debug}"
    );
    assert_eq!(mask_sid(SID), "AC…cdef");
}

#[test]
fn ipv6_addresses_that_stand_for_an_ipv4_address_give_it() {
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
    let v4 = |s: &str| Some(s.parse::<std::net::Ipv4Addr>().unwrap());
    assert_eq!(
        address::carried_ipv4(v6("::ffff:192.0.2.1")),
        v4("192.0.2.1")
    );
    assert_eq!(
        address::carried_ipv4(v6("64:ff9b::c000:202")),
        v4("192.0.2.2")
    );
    assert_eq!(
        address::carried_ipv4(v6("2002:c000:203:7::1")),
        v4("192.0.2.3")
    );
    assert_eq!(address::carried_ipv4(v6("2001:db8::1")), None);
    // RFC 4380's example: the client 192.0.2.45 behind the Teredo server 65.54.227.120.
    assert_eq!(
        address::teredo_client(v6("2001:0:4136:e378:8000:63bf:3fff:fdd2")),
        v4("192.0.2.45")
    );
    assert_eq!(address::teredo_client(v6("2001:db8::1")), None);
}
