//! What the user queries and use-cases return.

use chrono::{DateTime, Utc};
use twofold_domain::channel::{Channel, Purpose};
use twofold_domain::secrets::TotpParams;
use twofold_domain::user::{Challenge, TrustedDevice, User, WebAuthnCredential};
use twofold_domain::{Method, UserId};

use crate::ports::TotpProvisioning;
use crate::ServiceError;

/// A user's 2FA status as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserStatus {
    /// The tenant's id for the user.
    pub user_id: UserId,
    /// A second factor is active.
    pub enabled: bool,
    /// Methods usable now.
    pub methods: Vec<Method>,
    /// A TOTP enrollment awaits confirmation.
    pub totp_pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_remaining: u32,
    /// End of the lockout in force.
    pub locked_until: Option<DateTime<Utc>>,
    /// Wrong codes in a row since the last success, lockout or clear (the console shows it).
    pub failed_attempts: u32,
    /// Last successful verification.
    pub last_verified_at: Option<DateTime<Utc>>,
    /// Registered email, masked, and whether it is verified.
    pub email: Option<(String, bool)>,
    /// Registered phone, masked, and whether it is verified.
    pub phone: Option<(String, bool)>,
    /// Default channel for sign-in codes.
    pub preferred_channel: Option<Channel>,
    /// The most recent challenges, newest first, with their delivery state.
    pub recent_challenges: Vec<ChallengeView>,
    /// Devices still trusted, oldest first.
    pub trusted_devices: Vec<TrustedDeviceView>,
    /// Passkeys and security keys, oldest first.
    pub webauthn_credentials: Vec<WebAuthnCredentialView>,
    /// The language the user chose (BCP 47), if any.
    pub locale: Option<String>,
}

/// A passkey or security key as the API shows it (never its key or the authenticator's id).
#[derive(Debug, Clone, PartialEq)]
pub struct WebAuthnCredentialView {
    /// Id, to remove it.
    pub id: String,
    /// What the user calls it.
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&WebAuthnCredential> for WebAuthnCredentialView {
    fn from(c: &WebAuthnCredential) -> Self {
        Self {
            id: c.id.clone(),
            label: c.label.as_ref().map(ToString::to_string),
            created_at: c.created_at,
            last_used_at: c.last_used_at,
        }
    }
}

/// A trusted device as the API shows it (never its token).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedDeviceView {
    /// Id, to revoke it.
    pub id: String,
    /// What the user calls it.
    pub label: Option<String>,
    /// When trusted.
    pub created_at: DateTime<Utc>,
    /// End of trust.
    pub expires_at: DateTime<Utc>,
}

impl From<&TrustedDevice> for TrustedDeviceView {
    fn from(d: &TrustedDevice) -> Self {
        Self {
            id: d.id.clone(),
            label: d.label.as_ref().map(ToString::to_string),
            created_at: d.created_at,
            expires_at: d.expires_at,
        }
    }
}

impl UserStatus {
    pub(super) fn of(user_id: &UserId, user: &User, now: DateTime<Utc>) -> Self {
        Self {
            user_id: user_id.clone(),
            enabled: user.enabled(),
            methods: user.methods(),
            totp_pending: user.totp_pending(),
            recovery_codes_remaining: user.recovery_codes_remaining(),
            locked_until: user.locked_until(now),
            failed_attempts: user.consecutive_failures(),
            last_verified_at: user.last_verified_at(),
            email: user
                .contact(Channel::Email)
                .map(|f| (f.masked.clone(), f.verified)),
            phone: user
                .contact(Channel::Sms)
                .map(|f| (f.masked.clone(), f.verified)),
            preferred_channel: user.preferred_channel(),
            recent_challenges: user
                .challenges()
                .iter()
                .rev()
                .take(RECENT_CHALLENGES)
                .map(ChallengeView::from)
                .collect(),
            trusted_devices: user
                .trusted_devices(now)
                .map(TrustedDeviceView::from)
                .collect(),
            webauthn_credentials: user
                .webauthn_credentials()
                .iter()
                .map(WebAuthnCredentialView::from)
                .collect(),
            locale: user.locale().map(|l| l.as_str().to_owned()),
        }
    }
}

/// A started TOTP enrollment: what the app needs, shown once.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    /// Secret and URI.
    pub provisioning: TotpProvisioning,
    /// The parameters the codes use.
    pub params: TotpParams,
    /// The URI as QR codes, drawn when asked for.
    pub pictures: QrPictures,
}

/// Draws an enrollment URI as a QR code only when a caller shows it, once per format however
/// often it is asked for: drawing took half of an enrollment's CPU, many callers show the URI
/// or the secret instead, and a document may select the same picture under many aliases.
#[derive(Clone)]
pub struct QrPictures {
    pub(super) engine: std::sync::Arc<dyn crate::ports::TotpEngine>,
    pub(super) uri: String,
    pub(super) drawn: std::sync::Arc<Drawn>,
}

/// The pictures drawn so far.
#[derive(Default)]
pub(super) struct Drawn {
    png: std::sync::OnceLock<String>,
    svg: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for QrPictures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QrPictures(<redacted>)")
    }
}

impl QrPictures {
    /// `data:image/png;base64,...`.
    pub fn png(&self) -> Result<String, ServiceError> {
        once(&self.drawn.png, || self.engine.qr_png(&self.uri))
    }

    /// An SVG document.
    pub fn svg(&self) -> Result<String, ServiceError> {
        once(&self.drawn.svg, || self.engine.qr_svg(&self.uri))
    }
}

/// The picture `draw` makes, drawn on the first call only (a failed drawing is not kept).
fn once(
    cell: &std::sync::OnceLock<String>,
    draw: impl FnOnce() -> Result<String, crate::ports::TotpError>,
) -> Result<String, ServiceError> {
    if let Some(drawn) = cell.get() {
        return Ok(drawn.clone());
    }
    let drawn = draw().map_err(|e| ServiceError::Internal(Box::new(e)))?;
    Ok(cell.get_or_init(|| drawn).clone())
}

/// New recovery codes, shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodes(pub Vec<String>);

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes(<{} redacted>)", self.0.len())
    }
}

/// The result of a successful verification. The device token never appears in `Debug`.
#[derive(Clone, PartialEq)]
pub struct Verified {
    /// The method that succeeded.
    pub method: Method,
    /// Recovery codes left.
    pub recovery_codes_remaining: u32,
    /// The token of the device trusted with this verification (shown once).
    pub device_token: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("method", &self.method)
            .field("recovery_codes_remaining", &self.recovery_codes_remaining)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A challenge as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeView {
    /// Id, to pass back with the code.
    pub id: String,
    /// Email or SMS.
    pub channel: Channel,
    /// Why it was sent.
    pub purpose: Purpose,
    /// Masked destination.
    pub sent_to: String,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Where the message is.
    pub delivery: twofold_domain::user::DeliveryState,
}

impl From<&Challenge> for ChallengeView {
    fn from(c: &Challenge) -> Self {
        Self {
            id: c.id.clone(),
            channel: c.channel,
            purpose: c.purpose,
            sent_to: c.sent_to.clone(),
            expires_at: c.expires_at,
            delivery: c.delivery,
        }
    }
}

/// Challenges shown in a user's status.
const RECENT_CHALLENGES: usize = 10;

pub(super) fn challenge_view(state: &User, id: &str) -> Result<ChallengeView, ServiceError> {
    state
        .challenge(id)
        .map(ChallengeView::from)
        .ok_or_else(|| ServiceError::Internal("the new challenge is missing".into()))
}
