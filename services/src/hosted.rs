//! Hosted pages: the tenant's backend (an APP key) asks for a single-use link for one of its
//! users; the browser opening it gets a session of its own (the link is spent at once); the flow
//! ends by sending the browser back to the tenant's return URL with a one-time result code, which
//! the backend redeems for what happened.
//!
//! Three secrets, each 256 random bits, each stored only as a keyed hash: the link (`tfl_`, in a
//! URL for at most [`LINK_TTL`]), the browser session (`tfh_`, in an `HttpOnly` cookie for at most
//! [`SESSION_TTL`] after the link was made) and the result code (`tfr_`, in the return URL,
//! redeemable once within [`RESULT_TTL`], by the same tenant only). The pages act as the APP key
//! that made the link, so revoking it ends them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use twofold_domain::hosted::{Purpose, ReturnUrl, LINK_TTL, RESULT_TTL, SESSION_TTL};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::{Locale, Method, UserId};
use zeroize::Zeroizing;

use crate::encoding::base32_lower;
use crate::ports::{
    Clock, Entropy, HostedLink, HostedOutcome, HostedStore, Sealer, SecretHasher, TenantDirectory,
};
use crate::roles::{require, APP};
use crate::{Call, RequestContext, ServiceError};

const LINK_PREFIX: &str = "tfl_";
const SESSION_PREFIX: &str = "tfh_";
const RESULT_PREFIX: &str = "tfr_";
const LINK_ID_PREFIX: &str = "hs_";
/// Base32 characters of 32 random bytes: every secret has exactly this many after its prefix,
/// so anything else is refused before any hash or look-up.
const SECRET_CHARS: usize = 52;
/// Unopened links a tenant may have at once (each is a row kept about 90 minutes): far above
/// what sign-ins need (a link is opened within seconds, and a new link for a user ends that
/// user's unopened ones), and what bounds the rows a leaked APP key can make.
pub const MAX_UNOPENED_LINKS: u64 = 10_000;

/// One of the three secrets. Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct HostedSecret(Zeroizing<String>);

impl HostedSecret {
    fn read(value: &str, prefix: &str) -> Option<Self> {
        let body = value.strip_prefix(prefix)?;
        let ours = body.len() == SECRET_CHARS
            && body.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
        ours.then(|| Self(Zeroizing::new(value.to_owned())))
    }

    /// A browser session's secret read from its cookie.
    pub fn session_from_cookie(value: &str) -> Option<Self> {
        Self::read(value, SESSION_PREFIX)
    }

    /// The value to hand out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HostedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostedSecret(<redacted>)")
    }
}

/// What `createUserSession` asks for, as the caller gave it.
#[derive(Debug, Clone, Default)]
pub struct CreateLink {
    pub user_id: String,
    pub purpose: Option<Purpose>,
    pub return_url: String,
    pub locale: Option<String>,
}

/// The link to send the user to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkToPages {
    /// Kept by the tenant's backend with its own user session, and given back to redeem the
    /// result: a result reaches only the sign-in that asked for it.
    pub id: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// How the flow ended, as `redeemUserSession` answers it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub outcome: HostedOutcome,
    /// The trusted-device token of a sign-in that trusted the browser, opened: shown this once.
    pub device_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Redeemed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redeemed")
            .field("outcome", &self.outcome)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How a visit ends.
#[derive(Clone, Default)]
pub struct Ending {
    /// The user did what the link was for (false: cancelled).
    pub completed: bool,
    /// The method the user proved or enrolled.
    pub method: Option<Method>,
    /// The token of the browser the user chose to trust at sign-in.
    pub device_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ending")
            .field("completed", &self.completed)
            .field("method", &self.method)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The context a device token is sealed under: bound to the link, so a sealed token copied
/// onto another result does not open.
fn token_context(link_id: &str) -> String {
    format!("hosted-device-token:{link_id}")
}

/// A live browser session of the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedSession {
    pub link: HostedLink,
    /// The organisation's name, shown on every page.
    pub tenant_name: String,
    /// The name the organisation's messages go out under (its codes come from it).
    pub sender_name: String,
    /// The organisation's policy as the session was resumed.
    pub policy: twofold_domain::Policy,
    /// When the session ends, whatever happens.
    pub ends_at: DateTime<Utc>,
}

impl HostedSession {
    /// The [`Call`] the pages' use-cases run as: the APP key that made the link.
    pub fn call(&self, request: RequestContext) -> Call {
        Call::new(self.link.key.clone(), request)
    }
}

/// The hosted pages' links, sessions and results.
#[derive(Clone)]
pub struct HostedPages {
    store: Arc<dyn HostedStore>,
    directory: Arc<dyn TenantDirectory>,
    hasher: Arc<dyn SecretHasher>,
    sealer: Arc<dyn Sealer>,
    entropy: Arc<dyn Entropy>,
    clock: Arc<dyn Clock>,
    /// Where the service is reached by browsers, such as `https://2fa.example.com`.
    public_url: String,
}

/// Until [`HostedPages::with_public_url`] is called.
const UNSET_PUBLIC_URL: &str = "http://127.0.0.1";

impl HostedPages {
    pub fn new(
        store: Arc<dyn HostedStore>,
        directory: Arc<dyn TenantDirectory>,
        hasher: Arc<dyn SecretHasher>,
        sealer: Arc<dyn Sealer>,
        entropy: Arc<dyn Entropy>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            directory,
            hasher,
            sealer,
            entropy,
            clock,
            public_url: UNSET_PUBLIC_URL.to_owned(),
        }
    }

    /// Whether browsers reach the service over https (`TWOFOLD_PUBLIC_URL`): its cookies are
    /// then `Secure` whatever a request's headers say.
    pub fn served_over_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Where browsers reach the service: links are made under it. Known once the server has
    /// bound its address, after the use-cases are wired.
    pub fn with_public_url(mut self, public_url: &str) -> Self {
        self.public_url = public_url.trim_end_matches('/').to_owned();
        self
    }

    /// Whether the pages may offer passkeys under `policy`: browsers bind a credential to the
    /// tenant's `rpId` and check the page's origin against it, so the pages' own origin (this
    /// service's public one) must be among the tenant's WebAuthn origins (decision 153).
    pub fn offers_passkeys(&self, policy: &twofold_domain::Policy) -> bool {
        policy.allows(Method::WebAuthn)
            && policy
                .web_authn
                .as_ref()
                .is_some_and(|rp| rp.admits_page_at(&self.public_url))
    }

    fn new_secret(&self, prefix: &str) -> HostedSecret {
        let mut bytes = Zeroizing::new([0u8; 32]);
        self.entropy.fill(bytes.as_mut());
        HostedSecret(Zeroizing::new(format!(
            "{prefix}{}",
            base32_lower(bytes.as_ref())
        )))
    }

    fn hash(&self, purpose: &str, secret: &HostedSecret) -> KeyedHash {
        self.hasher.keyed_hash(purpose, secret.expose().as_bytes())
    }

    /// `createUserSession`: a link for `input.user_id`, by an APP key. The return URL must be
    /// on one of the tenant's `returnOrigins`.
    pub async fn create(
        &self,
        call: &Call,
        input: CreateLink,
    ) -> Result<LinkToPages, ServiceError> {
        require(&call.key, APP)?;
        let user_id = UserId::parse(&input.user_id).map_err(ServiceError::invalid)?;
        let purpose = input
            .purpose
            .ok_or_else(|| ServiceError::InvalidInput("purpose is required".into()))?;
        let locale = input
            .locale
            .as_deref()
            .map(|raw| Locale::parse_field("locale", raw))
            .transpose()
            .map_err(ServiceError::invalid)?;
        let tenant = self
            .directory
            .tenant(call.tenant())
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))?;
        let return_url = ReturnUrl::parse(&input.return_url, &tenant.policy.return_origins)
            .map_err(ServiceError::invalid)?;
        let now = self.clock.now();
        if self
            .store
            .unopened_links(call.tenant(), now - LINK_TTL)
            .await?
            >= MAX_UNOPENED_LINKS
        {
            return Err(ServiceError::RateLimited {
                message: format!(
                    "the organisation has {MAX_UNOPENED_LINKS} links not opened yet: a link \
                     is for one user about to open it, and each lapses 10 minutes after it \
                     was made"
                ),
                retry_after_seconds: 60,
            });
        }
        let secret = self.new_secret(LINK_PREFIX);
        let mut id = [0u8; 16];
        self.entropy.fill(&mut id);
        let link = HostedLink {
            id: format!("{LINK_ID_PREFIX}{}", base32_lower(&id)),
            key: call.key.clone(),
            user_id,
            purpose,
            return_url,
            locale,
            created_at: now,
        };
        self.store
            .prune(now - SESSION_TTL.max(RESULT_TTL) - chrono::Duration::hours(1))
            .await?;
        self.store
            .create_link(&self.hash("hosted-link", &secret), &link)
            .await?;
        Ok(LinkToPages {
            id: link.id,
            url: format!("{}/hosted/start?link={}", self.public_url, secret.expose()),
            expires_at: now + LINK_TTL,
        })
    }

    /// Opens a link (once): the browser session's secret, for its cookie, and the session.
    /// `None` for a link that is unknown, spent, expired or whose key was revoked: the page
    /// says so without telling which.
    pub async fn open(
        &self,
        link: &str,
    ) -> Result<Option<(HostedSecret, HostedSession)>, ServiceError> {
        let Some(link) = HostedSecret::read(link.trim(), LINK_PREFIX) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let session = self.new_secret(SESSION_PREFIX);
        let opened = self
            .store
            .open(
                &self.hash("hosted-link", &link),
                &self.hash("hosted-session", &session),
                now,
                now - LINK_TTL,
            )
            .await?;
        match opened {
            Some(link) => Ok(Some((session, self.session_of(link).await?))),
            None => Ok(None),
        }
    }

    async fn session_of(&self, link: HostedLink) -> Result<HostedSession, ServiceError> {
        let tenant = self
            .directory
            .tenant(&link.key.tenant_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))?;
        Ok(HostedSession {
            ends_at: link.created_at + SESSION_TTL,
            sender_name: tenant.sender_name().to_owned(),
            tenant_name: tenant.name,
            policy: tenant.policy,
            link,
        })
    }

    /// The token every form of the session `session` must send back: derived from its secret
    /// under the server's pepper, so there is nothing more to store.
    pub fn csrf_of(&self, session: &HostedSecret) -> String {
        self.hash("hosted-csrf", session).as_hex().to_owned()
    }

    /// A mark the pages hand the browser for what happened in `session` (`what`, such as the
    /// method just enrolled), to be given back and checked with [`HostedPages::marked`]: keyed
    /// under the server's pepper and the session's secret, so no one can make it and it means
    /// nothing in another session.
    pub fn mark(&self, session: &HostedSecret, what: &str) -> String {
        let text = Zeroizing::new(format!("{}\n{what}", session.expose()));
        let mac = self.hasher.keyed_hash("hosted-mark", text.as_bytes());
        format!("{what}.{}", mac.as_hex())
    }

    /// What a mark of [`HostedPages::mark`] says, if it is genuine for `session`.
    pub fn marked<'a>(&self, session: &HostedSecret, mark: &'a str) -> Option<&'a str> {
        let (what, _) = mark.split_once('.')?;
        let expected = self.mark(session, what);
        crate::console_sessions::ConsoleSessions::csrf_matches(&expected, mark).then_some(what)
    }

    /// The token of the question "leave the visit in progress for this link?": keyed under the
    /// server's pepper, so another site cannot post the answer for the user even where the
    /// browser sends no `Sec-Fetch-Site`.
    pub fn replace_token(&self, link: &str) -> String {
        self.hasher
            .keyed_hash("hosted-replace", link.trim().as_bytes())
            .as_hex()
            .to_owned()
    }

    /// The live session of a cookie's secret.
    pub async fn resume(
        &self,
        session: &HostedSecret,
    ) -> Result<Option<HostedSession>, ServiceError> {
        let now = self.clock.now();
        let found = self
            .store
            .find(&self.hash("hosted-session", session), now - SESSION_TTL)
            .await?;
        match found {
            Some(link) => Ok(Some(self.session_of(link).await?)),
            None => Ok(None),
        }
    }

    /// Refused when the return URL's origin is no longer one of the tenant's (an admin removed
    /// it after the link was made): checked before a code is spent, so a user whose flow cannot
    /// end does not lose a recovery code to it, and again as the flow ends.
    pub async fn still_returns(&self, live: &HostedSession) -> Result<(), ServiceError> {
        let tenant = self
            .directory
            .tenant(&live.link.key.tenant_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))?;
        if live
            .link
            .return_url
            .allowed_by(&tenant.policy.return_origins)
        {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(
                "the organisation no longer sends users back to this site".into(),
            ))
        }
    }

    /// Ends the session with its outcome: the URL to send the browser back to, carrying the
    /// result code. `None` when the session had already ended. Refused when the return URL's
    /// origin is no longer one of the tenant's (an admin removed it after the link was made).
    pub async fn finish(
        &self,
        session: &HostedSecret,
        live: &HostedSession,
        ending: Ending,
    ) -> Result<Option<String>, ServiceError> {
        self.still_returns(live).await?;
        let code = self.new_secret(RESULT_PREFIX);
        let device_token = match &ending.device_token {
            Some(token) => Some(
                self.sealer
                    .seal(
                        &live.link.key.tenant_id,
                        &token_context(&live.link.id),
                        token.as_bytes(),
                    )
                    .await?,
            ),
            None => None,
        };
        let outcome = HostedOutcome {
            link_id: live.link.id.clone(),
            tenant_id: live.link.key.tenant_id.clone(),
            user_id: live.link.user_id.clone(),
            purpose: live.link.purpose,
            completed: ending.completed,
            method: ending.method,
            device_token,
            created_at: self.clock.now(),
        };
        let finished = self
            .store
            .finish(
                &self.hash("hosted-session", session),
                &self.hash("hosted-result", &code),
                &outcome,
            )
            .await?;
        Ok(finished.then(|| live.link.return_url.with_result(code.expose())))
    }

    /// `redeemUserSession`: what happened, once, for the tenant and link it was for.
    pub async fn redeem(
        &self,
        call: &Call,
        code: &str,
        link_id: &str,
    ) -> Result<Redeemed, ServiceError> {
        require(&call.key, APP)?;
        let refused = || {
            ServiceError::InvalidInput(
                "code is not a result of this organisation's session sessionId, or it was \
                 already redeemed or has expired (a result is redeemable once, within 5 \
                 minutes, with the id createUserSession gave)"
                    .into(),
            )
        };
        let code = HostedSecret::read(code.trim(), RESULT_PREFIX).ok_or_else(refused)?;
        let now = self.clock.now();
        let mut outcome = self
            .store
            .redeem(
                &self.hash("hosted-result", &code),
                call.tenant(),
                link_id.trim(),
                now,
                now - RESULT_TTL,
            )
            .await?
            .ok_or_else(refused)?;
        let device_token = match outcome.device_token.take() {
            Some(sealed) => {
                let opened = self
                    .sealer
                    .open(call.tenant(), &token_context(&outcome.link_id), &sealed)
                    .await?;
                let text = String::from_utf8(opened.to_vec())
                    .map_err(|e| ServiceError::Internal(Box::new(e)))?;
                Some(Zeroizing::new(text))
            }
            None => None,
        };
        Ok(Redeemed {
            outcome,
            device_token,
        })
    }
}
