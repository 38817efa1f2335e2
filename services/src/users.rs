//! End-user 2FA use-cases: TOTP enrollment, sign-in verification, recovery codes, disabling,
//! and the admin's reset and lockout clearing.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::channel::{Channel, Purpose};
use twofold_domain::contact::{EmailAddress, PhoneNumber};
use twofold_domain::secrets::{SealedSecret, TotpParams};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::user::{
    normalize_recovery_code, CodeChecker, Lockout, Proof, ServicesError, User, UserAction,
    UserCommand, UserError, UserEvent, UserRef, FAILURES_PER_LOCKOUT, RECOVERY_CODES,
};
use twofold_domain::user::{
    Challenge, DeliveryOutcome, NewChallenge, NewTrustedDevice, SignInAttempt, SignInDecision,
    SignInPolicy, TrustedDevice,
};
use twofold_domain::{DeviceLabel, Method, Reason, TenantId, UserId};

use crate::auth::KeyPrincipal;
use crate::commands::Commands;
use crate::encoding::base32_lower;
use crate::ports::{
    Clock, Entropy, Sealer, SecretHasher, SendLimiter, TenantDirectory, TenantView, TotpEngine,
    TotpError, TotpProvisioning,
};
use crate::send_limits::{issued, SendLimits};
use crate::{RequestContext, ServiceError};

const RECOVERY_HASH_PURPOSE: &str = "recovery-code";
const CHALLENGE_CODE_PURPOSE: &str = "challenge-code";
const DEVICE_TOKEN_PURPOSE: &str = "trusted-device";
/// Trusted-device tokens: a prefix secret scanners can match, then 256 random bits.
const DEVICE_TOKEN_PREFIX: &str = "tfd_";
const DEVICE_TOKEN_BYTES: usize = 32;
/// Longest device token accepted (anything longer cannot be one of ours).
const MAX_DEVICE_TOKEN_CHARS: usize = 128;
/// TOTP secrets are 160 bits (RFC 4226 §4 recommends it; what authenticator apps expect).
const TOTP_SECRET_BYTES: usize = 20;
/// Longest account label accepted.
const MAX_LABEL_CHARS: usize = 100;

/// The seal context of a user's email address or phone number.
pub fn contact_context(user: &UserRef, channel: Channel) -> String {
    format!(
        "{}/{}",
        user.aggregate_id(),
        channel.as_str().to_ascii_lowercase()
    )
}

fn challenge_view(state: &User, id: &str) -> Result<ChallengeView, ServiceError> {
    state
        .challenge(id)
        .map(ChallengeView::from)
        .ok_or_else(|| ServiceError::Internal("the new challenge is missing".into()))
}

/// The seal context of a user's TOTP secret: a sealed secret only opens for its own user.
fn totp_context(user: &UserRef) -> String {
    format!("{}/totp", user.aggregate_id())
}

/// What the user aggregate needs from the outside: sealing, TOTP and keyed hashing.
pub struct UserCrypto {
    sealer: Arc<dyn Sealer>,
    totp: Arc<dyn TotpEngine>,
    hasher: Arc<dyn SecretHasher>,
}

impl UserCrypto {
    /// Wires the aggregate's services.
    pub fn new(
        sealer: Arc<dyn Sealer>,
        totp: Arc<dyn TotpEngine>,
        hasher: Arc<dyn SecretHasher>,
    ) -> Self {
        Self {
            sealer,
            totp,
            hasher,
        }
    }
}

#[async_trait]
impl CodeChecker for UserCrypto {
    async fn totp_step(
        &self,
        user: &UserRef,
        secret: &SealedSecret,
        params: &TotpParams,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError> {
        let secret = self
            .sealer
            .open(&user.tenant, &totp_context(user), secret)
            .await
            .map_err(|e| ServicesError(e.to_string()))?;
        let now = u64::try_from(at.timestamp()).unwrap_or(0);
        Ok(self.totp.matching_step(&secret, params, code, now))
    }

    fn recovery_code_hash(&self, user: &UserRef, normalized_code: &str) -> KeyedHash {
        let message = format!("{}\0{normalized_code}", user.aggregate_id());
        self.hasher
            .keyed_hash(RECOVERY_HASH_PURPOSE, message.as_bytes())
    }

    fn challenge_code_matches(
        &self,
        user: &UserRef,
        challenge_id: &str,
        digits: u8,
        code: &str,
    ) -> bool {
        let expected = self.challenge_code(user, challenge_id, digits);
        let given: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into()
    }
}

impl UserCrypto {
    /// The one-time code of a challenge: HMAC(pepper, purpose, user, challenge id) reduced to
    /// `digits` decimal digits. Deriving it means no code is ever stored, in clear or sealed:
    /// the delivery worker and the verifier compute the same value from the challenge id.
    pub fn challenge_code(
        &self,
        user: &UserRef,
        challenge_id: &str,
        digits: u8,
    ) -> zeroize::Zeroizing<String> {
        let message = format!("{}\0{challenge_id}", user.aggregate_id());
        let hash = self
            .hasher
            .keyed_hash(CHALLENGE_CODE_PURPOSE, message.as_bytes());
        // 64 bits of the MAC modulo 10^digits: bias below 10^-10.
        let value = u64::from_str_radix(&hash.as_hex()[..16], 16).unwrap_or(0);
        let digits = u32::from(digits.clamp(6, 8));
        zeroize::Zeroizing::new(format!(
            "{:0width$}",
            value % 10u64.pow(digits),
            width = digits as usize
        ))
    }
}

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
    fn of(user_id: &UserId, user: &User, now: DateTime<Utc>) -> Self {
        Self {
            user_id: user_id.clone(),
            enabled: user.enabled(),
            methods: user.methods(),
            totp_pending: user.totp_pending(),
            recovery_codes_remaining: user.recovery_codes_remaining(),
            locked_until: user.locked_until(now),
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
        }
    }
}

/// A started TOTP enrollment: what the app needs, shown once.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    /// Secret, URI and QR codes.
    pub provisioning: TotpProvisioning,
    /// The parameters the codes use.
    pub params: TotpParams,
}

/// New recovery codes, shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodes(pub Vec<String>);

/// A current factor presented to authorise adding, replacing or removing one (`ProofInput`
/// in the API). The code never appears in `Debug`.
#[derive(Clone)]
pub struct ProofInput {
    /// The method.
    pub method: Method,
    /// The code as typed.
    pub code: String,
    /// For EMAIL and SMS: the sign-in challenge the code was sent with.
    pub challenge_id: Option<String>,
}

impl std::fmt::Debug for ProofInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofInput")
            .field("method", &self.method)
            .field("code", &"<redacted>")
            .field("challenge_id", &self.challenge_id)
            .finish()
    }
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes(<{} redacted>)", self.0.len())
    }
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The method that succeeded.
    pub method: Method,
    /// Recovery codes left.
    pub recovery_codes_remaining: u32,
    /// The token of the device trusted with this verification (shown once).
    pub device_token: Option<zeroize::Zeroizing<String>>,
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

/// User 2FA use-cases.
#[derive(Clone)]
pub struct UserService {
    commands: Commands<User>,
    tenants: Arc<dyn TenantDirectory>,
    sealer: Arc<dyn Sealer>,
    totp: Arc<dyn TotpEngine>,
    hasher: Arc<dyn SecretHasher>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    limits: SendLimits,
}

/// Maps the aggregate's refusals to API errors.
impl From<UserError> for ServiceError {
    fn from(e: UserError) -> Self {
        let message = e.to_string();
        match e {
            UserError::LockedOut(lockout) => lockout.into(),
            UserError::NotEnrolled | UserError::MethodNotEnrolled(_) | UserError::UnknownUser => {
                ServiceError::NotFound(message)
            }
            UserError::NoPendingEnrollment => ServiceError::Conflict(message),
            UserError::PolicyEnforced | UserError::ProofRequired => {
                ServiceError::PolicyViolation(message)
            }
            UserError::UnsupportedProof(_)
            | UserError::ChallengeRequired
            | UserError::RecoveryCodesNotAFactor => ServiceError::InvalidInput(message),
            UserError::ChallengeNotFound
            | UserError::NoPreferredChannel
            | UserError::DeviceNotFound => ServiceError::NotFound(message),
            UserError::CodeExpired(_) => ServiceError::CodeExpired(message),
            UserError::RateLimited {
                retry_after_seconds,
            } => ServiceError::RateLimited {
                message,
                retry_after_seconds,
            },
            UserError::BadRecoverySet | UserError::Services(_) => {
                ServiceError::Internal(Box::new(e))
            }
        }
    }
}

/// A verification's outcome, read from the events it recorded.
fn outcome(events: &[UserEvent], now: DateTime<Utc>) -> Result<(), ServiceError> {
    for event in events.iter().rev() {
        match event {
            UserEvent::UserLockedOut {
                until,
                admin_required,
                ..
            } => return Err(Lockout::new(*until, *admin_required, now).into()),
            UserEvent::VerificationFailed {
                consecutive_failures,
                ..
            } => {
                return Err(ServiceError::InvalidCode {
                    remaining_attempts: FAILURES_PER_LOCKOUT
                        - consecutive_failures % FAILURES_PER_LOCKOUT,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_user(tenant: &TenantId, user_id: &str) -> Result<UserRef, ServiceError> {
    Ok(UserRef {
        tenant: tenant.clone(),
        user: UserId::parse(user_id).map_err(ServiceError::invalid)?,
    })
}

fn proof(method: Method, code: &str, challenge_id: Option<&str>) -> Result<Proof, ServiceError> {
    if code.chars().count() > 64 {
        return Err(ServiceError::InvalidInput("code is too long".into()));
    }
    Ok(Proof {
        method,
        code: code.to_owned(),
        challenge_id: challenge_id.map(str::to_owned),
    })
}

/// Challenges shown in a user's status.
const RECENT_CHALLENGES: usize = 10;

/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 128;

impl UserService {
    /// Wires the use-cases to their ports.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        commands: Commands<User>,
        tenants: Arc<dyn TenantDirectory>,
        sealer: Arc<dyn Sealer>,
        totp: Arc<dyn TotpEngine>,
        hasher: Arc<dyn SecretHasher>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        limiter: Arc<dyn SendLimiter>,
    ) -> Self {
        Self {
            commands,
            tenants,
            sealer,
            totp,
            limits: SendLimits::new(limiter, hasher.clone()),
            hasher,
            clock,
            entropy,
        }
    }

    /// Runs `action`, which issues the code `challenge_id` to `destination`, under the send
    /// caps: the slot is taken first (a full cap refuses with nothing recorded or sent) and
    /// given back unless the code was issued.
    #[allow(clippy::too_many_arguments)]
    async fn run_send(
        &self,
        caller: &KeyPrincipal,
        user: &UserRef,
        tenant: &TenantView,
        channel: Channel,
        destination: &str,
        challenge_id: &str,
        action: UserAction,
        ctx: &RequestContext,
    ) -> Result<(User, Vec<UserEvent>, DateTime<Utc>), ServiceError> {
        // A change that will be refused for want of proof takes no slot: a full cap must not
        // answer first, telling a caller without any factor that someone else (in this tenant
        // or another) had codes sent to this destination.
        let unproven = matches!(
            &action,
            UserAction::AddEmail { proof: None, .. } | UserAction::AddPhone { proof: None, .. }
        );
        if unproven {
            let state = self
                .commands
                .load(&user.aggregate_id())
                .await
                .map_err(crate::error::from_aggregate_error)?;
            if state.enabled() {
                return Err(UserError::ProofRequired.into());
            }
        }
        let purpose = match &action {
            UserAction::SendCode { .. } => Purpose::SignIn,
            _ => Purpose::VerifyChannel,
        };
        let proof = match &action {
            UserAction::AddEmail { proof, .. } | UserAction::AddPhone { proof, .. } => {
                proof.clone()
            }
            _ => None,
        };
        let slot = match self
            .limits
            .reserve(
                tenant,
                channel,
                purpose,
                destination,
                challenge_id,
                self.clock.now(),
            )
            .await
        {
            Ok(slot) => slot,
            // A full cap answers only after the proof: a caller with a wrong proof, or locked
            // out, must learn that and nothing about who else had codes sent here.
            Err(full @ ServiceError::RateLimited { .. }) => {
                if let Some(proof) = proof {
                    let (_, events, at) = self
                        .run(caller, user, UserAction::CheckProof { proof }, ctx)
                        .await?;
                    outcome(&events, at)?;
                }
                return Err(full);
            }
            Err(e) => return Err(e),
        };
        let result = self.run(caller, user, action, ctx).await;
        // Kept when the code was issued, and when nobody can say whether it was (an internal
        // error may come after the commit): a send too many is the safe side.
        let keep = match &result {
            Ok((_, events, _)) => issued(events, challenge_id),
            Err(ServiceError::Internal(_)) => true,
            Err(_) => false,
        };
        self.limits.settle(slot, keep).await;
        result
    }

    async fn tenant(&self, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.tenants
            .tenant(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))
    }

    async fn run(
        &self,
        caller: &KeyPrincipal,
        user: &UserRef,
        action: UserAction,
        ctx: &RequestContext,
    ) -> Result<(User, Vec<UserEvent>, DateTime<Utc>), ServiceError> {
        let at = self.clock.now();
        let executed = self
            .commands
            .execute(
                &user.aggregate_id(),
                UserCommand {
                    user: user.clone(),
                    at,
                    action,
                },
                ctx.metadata(&user.tenant, &caller.actor()),
            )
            .await?;
        Ok((executed.state, executed.events, at))
    }

    /// Ten fresh recovery codes (80 bits each, `xxxx-xxxx-xxxx-xxxx`) and their keyed hashes.
    fn new_recovery_codes(&self, user: &UserRef) -> (RecoveryCodes, Vec<KeyedHash>) {
        let crypto = UserCrypto::new(self.sealer.clone(), self.totp.clone(), self.hasher.clone());
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut bytes = zeroize::Zeroizing::new([0u8; 10]);
            self.entropy.fill(bytes.as_mut());
            let raw = base32_lower(bytes.as_ref());
            let grouped = raw
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-");
            hashes.push(crypto.recovery_code_hash(user, &normalize_recovery_code(&grouped)));
            codes.push(grouped);
        }
        (RecoveryCodes(codes), hashes)
    }

    /// Starts (or restarts) TOTP enrollment with a fresh 160-bit secret.
    pub async fn start_totp_enrollment(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        account_label: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<TotpEnrollment, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        // Without a label the app shows the user id, shortened to what a label may hold.
        let label = match account_label {
            Some(l) => l.trim().to_owned(),
            None => user.user.as_str().chars().take(MAX_LABEL_CHARS).collect(),
        };
        if label.is_empty()
            || label.chars().count() > MAX_LABEL_CHARS
            || label.chars().any(char::is_control)
        {
            return Err(ServiceError::InvalidInput(format!(
                "accountLabel must be 1 to {MAX_LABEL_CHARS} printable characters"
            )));
        }
        let tenant = self.tenant(&caller.tenant_id).await?;
        if !tenant.policy.allows(Method::Totp) {
            return Err(ServiceError::PolicyViolation(
                "the organisation's policy does not allow authenticator apps (TOTP)".into(),
            ));
        }
        let params = TotpParams {
            algorithm: tenant.policy.totp_algorithm,
            digits: tenant.policy.totp_digits,
            period: TotpParams::PERIOD,
        };
        let mut secret = zeroize::Zeroizing::new([0u8; TOTP_SECRET_BYTES]);
        self.entropy.fill(secret.as_mut());
        let provisioning = self
            .totp
            .provision(secret.as_ref(), &params, &tenant.name, &label)
            .map_err(|e| match e {
                TotpError::TooLongForQr(_) => ServiceError::InvalidInput(
                    "accountLabel is too long for a QR code together with the organisation's \
                     name: use a shorter label (plain letters and digits take the least room)"
                        .into(),
                ),
                e @ TotpError::Failed(_) => ServiceError::Internal(Box::new(e)),
            })?;
        let sealed = self
            .sealer
            .seal(&user.tenant, &totp_context(&user), secret.as_ref())
            .await?;
        self.run(
            caller,
            &user,
            UserAction::StartTotpEnrollment {
                secret: sealed,
                params,
            },
            ctx,
        )
        .await?;
        Ok(TotpEnrollment {
            provisioning,
            params,
        })
    }

    /// Confirms the pending TOTP with a code from the app; returns ten new recovery codes.
    ///
    /// New recovery codes come with the user's first factor only: adding TOTP beside another
    /// factor, or replacing it, keeps the codes the user saved (and returns none). On an account
    /// that has a factor, `change` must prove one.
    pub async fn confirm_totp_enrollment(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        code: &str,
        change: Option<&ProofInput>,
        ctx: &RequestContext,
    ) -> Result<RecoveryCodes, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let tenant = self.allowed(&caller.tenant_id, Method::Totp).await?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                caller,
                &user,
                UserAction::ConfirmTotp {
                    code: proof(Method::Totp, code, None)?.code,
                    proof: change,
                    recovery_codes: hashes,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        let issued = events
            .iter()
            .any(|e| matches!(e, UserEvent::RecoveryCodesGenerated { .. }));
        Ok(if issued {
            codes
        } else {
            RecoveryCodes(Vec::new())
        })
    }

    /// The proof of a factor change, checked against the policy like any use of a method.
    fn change_proof(
        policy: &twofold_domain::Policy,
        change: Option<&ProofInput>,
    ) -> Result<Option<Proof>, ServiceError> {
        change
            .map(|p| {
                Self::require_method(policy, p.method)?;
                proof(p.method, &p.code, p.challenge_id.as_deref())
            })
            .transpose()
    }

    /// Removes one factor (TOTP, the email address or the phone number) after checking a
    /// current one; the last one only while the policy does not enforce 2FA.
    pub async fn remove_factor(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        method: Method,
        change: &ProofInput,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let tenant = self.tenant(&caller.tenant_id).await?;
        let change = Self::change_proof(&tenant.policy, Some(change))?
            .ok_or_else(|| ServiceError::InvalidInput("proof is required".into()))?;
        let (state, events, at) = self
            .run(
                caller,
                &user,
                UserAction::RemoveFactor {
                    method,
                    proof: change,
                    policy_enforced: tenant.policy.enforce_two_factor,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Checks a second factor at sign-in; with `trust_device`, also remembers the device and
    /// returns its token (shown this once).
    #[allow(clippy::too_many_arguments)]
    pub async fn verify(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        method: Method,
        code: &str,
        challenge_id: Option<&str>,
        trust_device: bool,
        device_label: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Verified, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let tenant = self.allowed(&caller.tenant_id, method).await?;
        let label = device_label
            .map(DeviceLabel::parse)
            .transpose()
            .map_err(ServiceError::invalid)?;
        let (token, trust) = if trust_device {
            let days = tenant.policy.trusted_device_days;
            if days == 0 {
                return Err(ServiceError::PolicyViolation(
                    "the organisation's policy does not allow trusted devices".into(),
                ));
            }
            let (token, device) = self.new_trusted_device(&user, label, days);
            (Some(token), Some(device))
        } else {
            if label.is_some() {
                return Err(ServiceError::InvalidInput(
                    "deviceLabel is only used with trustDevice: true".into(),
                ));
            }
            (None, None)
        };
        let (state, events, at) = self
            .run(
                caller,
                &user,
                UserAction::Verify {
                    proof: proof(method, code, challenge_id)?,
                    trust,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(Verified {
            method,
            recovery_codes_remaining: state.recovery_codes_remaining(),
            device_token: token,
        })
    }

    /// The keyed hash of a trusted-device token, bound to its user: a token only ever works
    /// for the user it was issued to.
    fn device_token_hash(&self, user: &UserRef, token: &str) -> KeyedHash {
        let message = format!("{}\0{token}", user.aggregate_id());
        self.hasher
            .keyed_hash(DEVICE_TOKEN_PURPOSE, message.as_bytes())
    }

    /// A fresh device id and token (256 random bits); only the token's keyed hash is kept.
    fn new_trusted_device(
        &self,
        user: &UserRef,
        label: Option<DeviceLabel>,
        lifetime_days: u16,
    ) -> (zeroize::Zeroizing<String>, NewTrustedDevice) {
        let mut id = [0u8; 10];
        self.entropy.fill(&mut id);
        let mut secret = zeroize::Zeroizing::new([0u8; DEVICE_TOKEN_BYTES]);
        self.entropy.fill(secret.as_mut());
        let token = zeroize::Zeroizing::new(format!(
            "{DEVICE_TOKEN_PREFIX}{}",
            base32_lower(secret.as_ref())
        ));
        let device = NewTrustedDevice {
            id: base32_lower(&id),
            token_hash: self.device_token_hash(user, &token),
            label,
            lifetime_days,
        };
        (token, device)
    }

    /// Whether this sign-in needs a second factor, which methods may satisfy it, and why; the
    /// decision is recorded (`SignInEvaluated`), and a user asked about for the first time is
    /// first seen now (their grace period starts, if 2FA is enforced).
    pub async fn sign_in_requirement(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        device_token: Option<&str>,
        sso_login: bool,
        ctx: &RequestContext,
    ) -> Result<SignInDecision, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let device_token = device_token.filter(|t| !t.is_empty());
        if device_token.is_some_and(|t| t.chars().count() > MAX_DEVICE_TOKEN_CHARS) {
            return Err(ServiceError::InvalidInput(
                "deviceToken is not a device token".into(),
            ));
        }
        let tenant = self.tenant(&caller.tenant_id).await?;
        let policy = &tenant.policy;
        let attempt = SignInAttempt {
            device_token_hash: device_token.map(|t| self.device_token_hash(&user, t)),
            sso_login,
            policy: SignInPolicy {
                enforced_since: tenant.enforced_since.filter(|_| policy.enforce_two_factor),
                grace_days: policy.enrollment_grace_period_days,
                sso_bypass: policy.sso_bypasses_two_factor,
                trusted_device_days: policy.trusted_device_days,
                allowed_methods: policy.allowed_methods.clone(),
            },
        };
        let (_, events, _) = self
            .run(caller, &user, UserAction::EvaluateSignIn { attempt }, ctx)
            .await?;
        // The answer is the decision as recorded.
        events
            .into_iter()
            .find_map(|e| match e {
                UserEvent::SignInEvaluated {
                    required,
                    reason,
                    methods,
                    trusted_device,
                    device_token_rejected,
                    locked_until,
                    grace_ends_at,
                    ..
                } => Some(SignInDecision {
                    required,
                    reason,
                    methods,
                    trusted_device,
                    device_token_rejected,
                    locked_until,
                    grace_ends_at,
                }),
                _ => None,
            })
            .ok_or_else(|| ServiceError::Internal("the sign-in decision was not recorded".into()))
    }

    /// Stops trusting one of the user's devices.
    pub async fn revoke_trusted_device(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        device_id: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        if device_id.is_empty() || device_id.len() > 64 {
            return Err(ServiceError::NotFound(
                "no such trusted device for this user".into(),
            ));
        }
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::RevokeTrustedDevice {
                    device_id: device_id.to_owned(),
                },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Replaces the recovery codes after checking a current factor.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        method: Method,
        code: &str,
        challenge_id: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<RecoveryCodes, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        self.allowed(&caller.tenant_id, method).await?;
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                caller,
                &user,
                UserAction::RegenerateRecoveryCodes {
                    proof: proof(method, code, challenge_id)?,
                    recovery_codes: hashes,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(codes)
    }

    /// Turns 2FA off after checking a current factor, unless the tenant enforces it.
    pub async fn disable(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        method: Method,
        code: &str,
        challenge_id: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let tenant = self.allowed(&caller.tenant_id, method).await?;
        let (state, events, at) = self
            .run(
                caller,
                &user,
                UserAction::Disable {
                    proof: proof(method, code, challenge_id)?,
                    policy_enforced: tenant.policy.enforce_two_factor,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Removes every factor, recovery code and trusted device of the user (admin).
    pub async fn reset(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::Reset {
                    by: caller.key_id.clone(),
                    reason,
                },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Ends a lockout early (admin).
    pub async fn clear_lockout(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::ClearLockout {
                    by: caller.key_id.clone(),
                    reason,
                },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    fn new_challenge(
        &self,
        policy: &twofold_domain::Policy,
        idempotency_key: Option<&str>,
    ) -> Result<NewChallenge, ServiceError> {
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY {
                return Err(ServiceError::InvalidInput(format!(
                    "idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
                )));
            }
        }
        let mut id = [0u8; 16];
        self.entropy.fill(&mut id);
        Ok(NewChallenge {
            id: base32_lower(&id),
            digits: policy.code_digits,
            expires_at: self.clock.now()
                + chrono::Duration::seconds(i64::from(policy.code_ttl_seconds)),
            idempotency_key: idempotency_key.map(str::to_owned),
        })
    }

    /// Refuses a method the tenant's policy does not allow (enrolling, sending or verifying).
    async fn allowed(&self, tenant: &TenantId, method: Method) -> Result<TenantView, ServiceError> {
        let tenant = self.tenant(tenant).await?;
        Self::require_method(&tenant.policy, method)?;
        Ok(tenant)
    }

    fn require_method(policy: &twofold_domain::Policy, method: Method) -> Result<(), ServiceError> {
        if policy.allows(method) {
            Ok(())
        } else {
            Err(ServiceError::PolicyViolation(format!(
                "the organisation's policy does not allow {method}"
            )))
        }
    }

    /// Registers an email address (sealed) and sends it a verification code.
    pub async fn add_email(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        email: &str,
        change: Option<&ProofInput>,
        ctx: &RequestContext,
    ) -> Result<ChallengeView, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let email = EmailAddress::parse(email).map_err(ServiceError::invalid)?;
        let tenant = self.tenant(&caller.tenant_id).await?;
        Self::require_method(&tenant.policy, Method::Email)?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let challenge = self.new_challenge(&tenant.policy, None)?;
        let id = challenge.id.clone();
        let sealed = self
            .sealer
            .seal(
                &user.tenant,
                &contact_context(&user, Channel::Email),
                email.as_str().as_bytes(),
            )
            .await?;
        let (state, events, at) = self
            .run_send(
                caller,
                &user,
                &tenant,
                Channel::Email,
                email.as_str(),
                &id,
                UserAction::AddEmail {
                    proof: change,
                    email: sealed,
                    masked: email.masked(),
                    challenge,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        challenge_view(&state, &id)
    }

    /// Registers a phone number (E.164, sealed) and sends it a verification code by SMS.
    pub async fn add_phone(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        phone: &str,
        change: Option<&ProofInput>,
        ctx: &RequestContext,
    ) -> Result<ChallengeView, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let phone = PhoneNumber::parse(phone).map_err(ServiceError::invalid)?;
        let tenant = self.tenant(&caller.tenant_id).await?;
        Self::require_method(&tenant.policy, Method::Sms)?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let allowed = &tenant.policy.allowed_calling_codes;
        if !allowed.is_empty() && !allowed.contains(&phone.calling_code()) {
            let list: Vec<String> = allowed.iter().map(|c| format!("+{c}")).collect();
            return Err(ServiceError::InvalidInput(format!(
                "phone numbers with country code +{} are not accepted here; allowed: {}",
                phone.calling_code(),
                list.join(", ")
            )));
        }
        let challenge = self.new_challenge(&tenant.policy, None)?;
        let id = challenge.id.clone();
        let sealed = self
            .sealer
            .seal(
                &user.tenant,
                &contact_context(&user, Channel::Sms),
                phone.e164().as_bytes(),
            )
            .await?;
        let (state, events, at) = self
            .run_send(
                caller,
                &user,
                &tenant,
                Channel::Sms,
                phone.e164(),
                &id,
                UserAction::AddPhone {
                    proof: change,
                    phone: sealed,
                    calling_code: phone.calling_code().to_string(),
                    region: phone.region().map(str::to_owned),
                    masked: phone.masked(),
                    challenge,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        challenge_view(&state, &id)
    }

    /// Confirms a channel with its code; returns recovery codes if this enabled 2FA.
    pub async fn confirm_channel(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        challenge_id: &str,
        code: &str,
        change: Option<&ProofInput>,
        ctx: &RequestContext,
    ) -> Result<Option<RecoveryCodes>, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let tenant = self.tenant(&caller.tenant_id).await?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let state = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        if let Some(challenge) = state.challenge(challenge_id) {
            self.allowed(&caller.tenant_id, challenge.channel.method())
                .await?;
        }
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                caller,
                &user,
                UserAction::ConfirmChannel {
                    challenge_id: challenge_id.to_owned(),
                    code: proof(Method::Email, code, None)?.code,
                    recovery_codes: hashes,
                    proof: change,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        let issued = events
            .iter()
            .any(|e| matches!(e, UserEvent::RecoveryCodesGenerated { .. }));
        Ok(issued.then_some(codes))
    }

    /// Chooses the default channel for sign-in codes.
    pub async fn set_preferred_channel(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        channel: Channel,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        self.allowed(&caller.tenant_id, channel.method()).await?;
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::ChoosePreferredChannel { channel },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Sends a sign-in code by `channel` (or the preferred one); a retry with the same
    /// idempotency key, or a resend within 30 s, returns the open challenge without sending.
    pub async fn send_code(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        channel: Option<Channel>,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<ChallengeView, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let tenant = self.tenant(&caller.tenant_id).await?;
        if let Some(c) = channel {
            Self::require_method(&tenant.policy, c.method())?;
        }
        let current = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        let effective = channel.or(current.preferred_channel());
        if let Some(c) = effective {
            // A retry or a resend gets the open challenge, whatever the budget says.
            let now = self.clock.now();
            if let Some(open) = current.reusable_challenge(c, Purpose::SignIn, idempotency_key, now)
            {
                return Ok(open.into());
            }
        }
        if let Some(c) = effective {
            Self::require_method(&tenant.policy, c.method())?;
        }
        let challenge = self.new_challenge(&tenant.policy, idempotency_key)?;
        let id = challenge.id.clone();
        let action = UserAction::SendCode { channel, challenge };
        // Without an address for the channel the aggregate refuses the send: nothing to count.
        let destination = match effective {
            Some(c) => self.destination(&user, &current, c).await?.map(|d| (c, d)),
            None => None,
        };
        let (state, events, at) = match &destination {
            Some((c, d)) => {
                self.run_send(caller, &user, &tenant, *c, d, &id, action, ctx)
                    .await?
            }
            None => self.run(caller, &user, action, ctx).await?,
        };
        if events.is_empty() {
            let channel = channel
                .or(state.preferred_channel())
                .unwrap_or(Channel::Email);
            let reused = state
                .reusable_challenge(channel, Purpose::SignIn, idempotency_key, at)
                .ok_or_else(|| ServiceError::Internal("no challenge to return".into()))?;
            return Ok(reused.into());
        }
        challenge_view(&state, &id)
    }

    /// The address or number registered for `channel`, opened from its seal.
    async fn destination(
        &self,
        user: &UserRef,
        state: &User,
        channel: Channel,
    ) -> Result<Option<zeroize::Zeroizing<String>>, ServiceError> {
        let Some(contact) = state.contact(channel) else {
            return Ok(None);
        };
        let opened = self
            .sealer
            .open(
                &user.tenant,
                &contact_context(user, channel),
                &contact.sealed,
            )
            .await?;
        let text = std::str::from_utf8(&opened)
            .map_err(|_| ServiceError::Internal("sealed destination is not text".into()))?;
        Ok(Some(zeroize::Zeroizing::new(text.to_owned())))
    }

    /// Records how the delivery of a challenge ended (the delivery worker).
    pub async fn record_delivery(
        &self,
        user: &UserRef,
        challenge_id: &str,
        outcome: DeliveryOutcome,
    ) -> Result<(), ServiceError> {
        let at = self.clock.now();
        let ctx = RequestContext::system(format!("delivery-{challenge_id}"));
        self.commands
            .execute(
                &user.aggregate_id(),
                UserCommand {
                    user: user.clone(),
                    at,
                    action: UserAction::RecordDelivery {
                        challenge_id: challenge_id.to_owned(),
                        outcome,
                    },
                },
                ctx.metadata(&user.tenant, &crate::Actor::System),
            )
            .await?;
        Ok(())
    }

    /// What the delivery worker needs to send a challenge's code: the message, or `None` when
    /// there is nothing to send any more (the challenge is gone, spent, expired or already
    /// recorded as delivered).
    pub(crate) async fn outgoing(
        &self,
        user: &UserRef,
        challenge_id: &str,
    ) -> Result<Option<crate::ports::OutgoingCode>, ServiceError> {
        let state = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        let now = self.clock.now();
        let Some(challenge) = state.challenge(challenge_id) else {
            return Ok(None);
        };
        let done = challenge.used
            || now >= challenge.expires_at
            || challenge.delivery != twofold_domain::user::DeliveryState::Pending;
        // A code goes where it was meant to: never to an address that replaced it since.
        let Some(contact) = state.destination_of(challenge).filter(|_| !done) else {
            return Ok(None);
        };
        let destination = self
            .sealer
            .open(
                &user.tenant,
                &contact_context(user, challenge.channel),
                &contact.sealed,
            )
            .await?;
        let destination = String::from_utf8(destination.to_vec())
            .map_err(|_| ServiceError::Internal("sealed destination is not text".into()))?;
        let tenant = self.tenant(&user.tenant).await?;
        let crypto = UserCrypto::new(self.sealer.clone(), self.totp.clone(), self.hasher.clone());
        let remaining = (challenge.expires_at - now).num_seconds().max(1);
        Ok(Some(crate::ports::OutgoingCode {
            challenge_id: challenge.id.clone(),
            tenant_name: tenant.name,
            channel: challenge.channel,
            purpose: challenge.purpose,
            destination: zeroize::Zeroizing::new(destination),
            code: crypto.challenge_code(user, &challenge.id, challenge.digits),
            valid_seconds: u32::try_from(remaining).unwrap_or(u32::MAX),
        }))
    }

    /// The user's status; `None` when the tenant has never enrolled anything for them.
    pub async fn status(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<UserStatus>, ServiceError> {
        let user = parse_user(tenant, user_id)?;
        let state = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        Ok(state
            .exists()
            .then(|| UserStatus::of(&user.user, &state, self.clock.now())))
    }
}
