//! The rules a tenant's delivery settings must meet. Every refusal names the field and says what
//! it must be, never echoing the value (URLs and tokens are credentials).

use std::net::IpAddr;

use url::Url;

use super::{
    check_address, DeliverySettingsRequest, EmailRequest, ProviderRules, ProviderSettings,
    SmsProvider, SmsRequest, SmtpProvider, SmtpSecurity, TwilioRequest, WebhookRequest,
    TWILIO_API_BASE,
};
use crate::contact::EmailAddress;

/// Why settings were refused: the field (as the API names it) and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        message: message.into(),
    }
}

/// Longest sender name and From display name.
const MAX_NAME: usize = 64;

/// Validates a request under the operator's `rules`. Host names are only checked for their
/// form and against `localhost` here; what they resolve to is the application's to check.
pub fn validate(
    request: &DeliverySettingsRequest,
    rules: ProviderRules,
) -> Result<ProviderSettings, SettingsError> {
    let sender_name = request
        .sender_name
        .as_deref()
        .map(|n| display_name("senderName", n))
        .transpose()?;
    let email = request
        .email
        .as_ref()
        .map(|e| email(e, rules))
        .transpose()?;
    let sms = request.sms.as_ref().map(|s| sms(s, rules)).transpose()?;
    Ok(ProviderSettings {
        sender_name,
        email,
        sms,
    })
}

fn display_name(field: &'static str, raw: &str) -> Result<String, SettingsError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(refuse(
            field,
            format!("must be 1 to {MAX_NAME} characters without control characters"),
        ));
    }
    Ok(name.to_owned())
}

fn email(request: &EmailRequest, rules: ProviderRules) -> Result<SmtpProvider, SettingsError> {
    const FIELD: &str = "email.smtpUrl";
    const FORMS: &str = "must be smtps://user:password@host[:port] (TLS, port 465 by default) \
                         or smtp://user:password@host[:port]?tls=required (STARTTLS, port 587 \
                         by default), credentials percent-encoded";
    let url = Url::parse(request.smtp_url.trim()).map_err(|_| refuse(FIELD, FORMS))?;
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let other_query = url.query_pairs().any(|(k, _)| k != "tls");
    if other_query || url.fragment().is_some() || !matches!(url.path(), "" | "/") {
        return Err(refuse(FIELD, FORMS));
    }
    let (security, default_port) = match (url.scheme(), tls.as_deref()) {
        ("smtps", None) => (SmtpSecurity::Tls, 465),
        ("smtp", Some("required")) => (SmtpSecurity::StartTls, 587),
        ("smtp", None) if rules.allow_private => (SmtpSecurity::Plain, 25),
        ("smtp", None) => {
            return Err(refuse(
                FIELD,
                "plain SMTP is not allowed: use smtps:// or add ?tls=required (STARTTLS)",
            ))
        }
        _ => return Err(refuse(FIELD, FORMS)),
    };
    let host = checked_host(FIELD, &url, rules)?;
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| refuse(FIELD, "the credentials are not valid UTF-8"))
    };
    let username = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(decode)
        .transpose()?;
    let password = url.password().map(decode).transpose()?;
    if username.is_some() != password.is_some() {
        return Err(refuse(
            FIELD,
            "give both a user and a password (user:password@host), or neither",
        ));
    }
    let from = EmailAddress::parse(&request.from).map_err(|_| {
        refuse(
            "email.from",
            "must be an email address such as no-reply@example.com",
        )
    })?;
    let from_name = request
        .from_name
        .as_deref()
        .map(|n| display_name("email.fromName", n))
        .transpose()?;
    Ok(SmtpProvider {
        host,
        port: url.port().unwrap_or(default_port),
        security,
        username,
        password,
        from: from.as_str().to_owned(),
        from_name,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn sms(request: &SmsRequest, rules: ProviderRules) -> Result<SmsProvider, SettingsError> {
    match (&request.twilio, &request.webhook) {
        (Some(twilio), None) => self::twilio(twilio, rules),
        (None, Some(webhook)) => self::webhook(webhook, rules),
        _ => Err(refuse("sms", "give exactly one of twilio and webhook")),
    }
}

/// `prefix` then 32 letters or digits: the shape of Twilio's SIDs.
fn is_sid(raw: &str, prefix: &str) -> bool {
    raw.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn twilio(request: &TwilioRequest, rules: ProviderRules) -> Result<SmsProvider, SettingsError> {
    let account_sid = request.account_sid.trim();
    if !is_sid(account_sid, "AC") {
        return Err(refuse(
            "sms.twilio.accountSid",
            "must be AC followed by 32 letters or digits",
        ));
    }
    let token = request.auth_token.trim();
    if !(16..=128).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse(
            "sms.twilio.authToken",
            "must be 16 to 128 printable ASCII characters",
        ));
    }
    let from = request
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| {
            sender_id(f).then(|| f.to_owned()).ok_or_else(|| {
                refuse(
                    "sms.twilio.from",
                    "must be a phone number in E.164 (+ and 8 to 15 digits) or an \
                     alphanumeric sender id of 1 to 11 letters, digits and spaces",
                )
            })
        })
        .transpose()?;
    let messaging_service_sid = request
        .messaging_service_sid
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            is_sid(s, "MG").then(|| s.to_owned()).ok_or_else(|| {
                refuse(
                    "sms.twilio.messagingServiceSid",
                    "must be MG followed by 32 letters or digits",
                )
            })
        })
        .transpose()?;
    if from.is_none() && messaging_service_sid.is_none() {
        return Err(refuse(
            "sms.twilio",
            "give a from number or sender id, or a messagingServiceSid",
        ));
    }
    let field = "sms.twilio.apiBase";
    let raw = request
        .api_base
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(TWILIO_API_BASE);
    let url = http_url(field, raw, rules)?;
    if url.query().is_some() {
        return Err(refuse(field, "must be a base URL without a query"));
    }
    Ok(SmsProvider::Twilio {
        account_sid: account_sid.to_owned(),
        auth_token: token.to_owned(),
        from,
        messaging_service_sid,
        api_base: url.as_str().trim_end_matches('/').to_owned(),
    })
}

fn sender_id(from: &str) -> bool {
    if let Some(digits) = from.strip_prefix('+') {
        return (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    }
    (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic())
}

fn webhook(request: &WebhookRequest, rules: ProviderRules) -> Result<SmsProvider, SettingsError> {
    let url = http_url("sms.webhook.url", request.url.trim(), rules)?;
    let secret = request.secret.trim();
    if !(16..=256).contains(&secret.len()) || secret.chars().any(char::is_control) {
        return Err(refuse(
            "sms.webhook.secret",
            "must be 16 to 256 characters (e.g. `openssl rand -hex 32`)",
        ));
    }
    Ok(SmsProvider::Webhook {
        url: url.to_string(),
        secret: secret.to_owned(),
    })
}

/// An `https://` URL (`http://` with the development allowance) without credentials or a
/// fragment, on an allowed host.
fn http_url(field: &'static str, raw: &str, rules: ProviderRules) -> Result<Url, SettingsError> {
    let url = Url::parse(raw).map_err(|_| refuse(field, "must be an https:// URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if rules.allow_private => {}
        "http" => return Err(refuse(field, "must be https://: plain HTTP is not allowed")),
        _ => return Err(refuse(field, "must be an https:// URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(field, "must not hold a user or password"));
    }
    if url.fragment().is_some() {
        return Err(refuse(field, "must not have a #fragment"));
    }
    checked_host(field, &url, rules)?;
    Ok(url)
}

/// The URL's host, refused when it is an IP literal of a forbidden class or a `localhost`
/// name. Names are lowercased by the URL parser.
fn checked_host(
    field: &'static str,
    url: &Url,
    rules: ProviderRules,
) -> Result<String, SettingsError> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| refuse(field, "must name a host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        check_address(ip, rules.allow_private).map_err(|why| {
            refuse(
                field,
                format!("names an address providers may not use: {why}"),
            )
        })?;
        return Ok(bare.to_owned());
    }
    let bare = bare.trim_end_matches('.').to_ascii_lowercase();
    // Resolvers read some all-digit or hex names as IPv4 (`0x7f.1`): a name must be letters,
    // digits, `-` and dots, its last label starting with a letter.
    let name_ok = bare
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && bare
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()));
    if !name_ok {
        return Err(refuse(
            field,
            "must name a host by its DNS name or IP address",
        ));
    }
    let local = bare == "localhost" || bare.ends_with(".localhost") || !bare.contains('.');
    if local && !rules.allow_private {
        return Err(refuse(
            field,
            "must name a public host (a fully qualified name, not localhost)",
        ));
    }
    Ok(bare)
}
