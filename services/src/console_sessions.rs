//! Console sign-in: an ADMIN or AUDITOR key is exchanged at once for a server-side session, and
//! the browser keeps only the session's random token (never the key). Each request finds the
//! session by the token's keyed hash, and is refused once the session is idle or old
//! (`domain::console_session`) or its key revoked.
//!
//! Signing in and signing out are recorded in the tenant's history (`ConsoleSignedIn`,
//! `ConsoleSignedOut`) under a short reference to the session, never its token.
//!
//! Forms carry a CSRF token derived from the session's token under the server's pepper, so
//! there is nothing more to store; the sign-in form, before any session exists, carries one
//! derived from a random nonce cookie (double submit, against login CSRF).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use twofold_domain::console_session::{SessionRef, SessionTimes, IDLE};
use twofold_domain::tenant::{KeyedHash, Tenant, TenantCommand};
use zeroize::Zeroizing;

use crate::auth::{Authenticator, KeyPrincipal, Principal};
use crate::commands::Commands;
use crate::encoding::base32_lower;
use crate::ports::{Clock, ConsoleSessionStore, Entropy, SecretHasher};
use crate::roles::{require, ADMIN_AUDITOR};
use crate::{Call, RequestContext, ServiceError};

const TOKEN_PREFIX: &str = "tfs_";
const TOKEN_PURPOSE: &str = "console-session";
const CSRF_PURPOSE: &str = "console-csrf";
const SIGN_IN_CSRF_PURPOSE: &str = "console-sign-in-csrf";
/// Longest token or nonce looked at; anything longer is not one of ours.
const MAX_TOKEN_CHARS: usize = 128;
/// Sessions remembered as live (see [`ConsoleSessions::known_key`]) before the memory starts
/// afresh: a flood of sign-ins must not grow it without bound.
const MAX_KNOWN: usize = 10_000;

/// A session token or sign-in nonce: the secret a cookie carries. Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(Zeroizing<String>);

impl SessionSecret {
    /// Wraps a value read from a cookie.
    pub fn from_cookie(value: &str) -> Option<Self> {
        (value.starts_with(TOKEN_PREFIX) && value.len() <= MAX_TOKEN_CHARS)
            .then(|| Self(Zeroizing::new(value.to_owned())))
    }

    /// The value to put in the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// A live session: who is signed in, and the CSRF token its forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub key: KeyPrincipal,
    /// The token every form of this session must send back.
    pub csrf: String,
    /// When the session ends if it is not used again.
    pub ends_at: DateTime<Utc>,
}

impl ConsoleSession {
    /// The [`Call`] of the session's key, for the use-cases its pages run.
    pub fn call(&self, request: RequestContext) -> Call {
        Call::new(self.key.clone(), request)
    }
}

/// Token hash -> the session's key, and when this instance last found it live.
type KnownSessions = HashMap<String, (KeyPrincipal, DateTime<Utc>)>;

/// Console sessions over a [`ConsoleSessionStore`].
#[derive(Clone)]
pub struct ConsoleSessions {
    store: Arc<dyn ConsoleSessionStore>,
    /// Records sign-ins and sign-outs on the tenant.
    commands: Commands<Tenant>,
    auth: Arc<Authenticator>,
    hasher: Arc<dyn SecretHasher>,
    entropy: Arc<dyn Entropy>,
    clock: Arc<dyn Clock>,
    /// Token hashes this instance found live, with their key and when last: such a session is
    /// still looked up from an address that spent its budget of unknown credentials, and its
    /// key's rate is charged before the lookup (see [`Self::known_key`]).
    known: Arc<Mutex<KnownSessions>>,
}

impl ConsoleSessions {
    pub fn new(
        store: Arc<dyn ConsoleSessionStore>,
        commands: Commands<Tenant>,
        auth: Arc<Authenticator>,
        hasher: Arc<dyn SecretHasher>,
        entropy: Arc<dyn Entropy>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            commands,
            auth,
            hasher,
            entropy,
            clock,
            known: Arc::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, KnownSessions> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, hash: &KeyedHash, key: &KeyPrincipal, now: DateTime<Utc>) {
        let mut known = self.known();
        if known.len() >= MAX_KNOWN && !known.contains_key(hash.as_hex()) {
            known.retain(|_, (_, seen)| now - *seen < IDLE);
            if known.len() >= MAX_KNOWN {
                known.clear();
            }
        }
        known.insert(hash.as_hex().to_owned(), (key.clone(), now));
    }

    /// The key of `token`'s session if this instance found it live within the idle limit.
    /// An unknown token costs a database read and is what a flood sends, so it spends the
    /// address's budget of unknown credentials and is not looked up once that is spent; a
    /// known one still is (so its revocation holds), and its browser is not locked out by a
    /// flood from an address it shares. A known session's key can be charged its request rate
    /// before the lookup.
    pub fn known_key(&self, token: &SessionSecret) -> Option<KeyPrincipal> {
        let now = self.clock.now();
        self.known()
            .get(self.token_hash(token).as_hex())
            .filter(|(_, seen)| now - *seen < IDLE)
            .map(|(key, _)| key.clone())
    }

    /// A fresh random secret (session token or sign-in nonce), 256 bits.
    pub fn new_secret(&self) -> SessionSecret {
        let mut bytes = Zeroizing::new([0u8; 32]);
        self.entropy.fill(bytes.as_mut());
        SessionSecret(Zeroizing::new(format!(
            "{TOKEN_PREFIX}{}",
            base32_lower(bytes.as_ref())
        )))
    }

    fn token_hash(&self, token: &SessionSecret) -> KeyedHash {
        self.hasher
            .keyed_hash(TOKEN_PURPOSE, token.expose().as_bytes())
    }

    /// Whether this instance found `key` valid lately (see [`Authenticator::is_known`]): such a
    /// key may sign in even from an address that spent its budget of unknown keys.
    pub fn is_known_key(&self, key: &str) -> bool {
        self.auth.is_known(key.trim())
    }

    /// The key a sign-in form gave, if it may sign in: only ADMIN and AUDITOR keys may; a
    /// wrong, revoked or malformed key is `UNAUTHENTICATED` with the API's message. Asked before
    /// [`Self::sign_in`], so the page can charge the key's request rate first: each sign-in
    /// records an event.
    pub async fn key_for_sign_in(&self, key: &str) -> Result<KeyPrincipal, ServiceError> {
        let principal =
            match self.auth.authenticate(key.trim()).await? {
                Principal::Key(k) => k,
                Principal::Operator => return Err(ServiceError::Forbidden(
                    "the operator token cannot sign in to the console; use an ADMIN or AUDITOR key"
                        .into(),
                )),
            };
        require(&principal, ADMIN_AUDITOR)?;
        Ok(principal)
    }

    /// Exchanges a key found by [`Self::key_for_sign_in`] for a session. The sign-in is recorded
    /// before the session exists (the tenant refuses a key revoked meanwhile): if it cannot be,
    /// there is no session.
    pub async fn sign_in(
        &self,
        principal: &KeyPrincipal,
        request: &RequestContext,
    ) -> Result<(SessionSecret, ConsoleSession), ServiceError> {
        require(principal, ADMIN_AUDITOR)?;
        let principal = principal.clone();
        let now = self.clock.now();
        let token = self.new_secret();
        let hash = self.token_hash(&token);
        self.record(
            &principal,
            request,
            TenantCommand::SignInToConsole {
                key_id: principal.key_id.clone(),
                session: SessionRef::of(&hash),
                at: now,
            },
        )
        .await?;
        // Ended sessions go when someone signs in, so the table holds live sessions only.
        self.store.prune(now).await?;
        self.store.create(&hash, &principal, now).await?;
        // Known at once: the browser's next request must not wait out its address's budget.
        self.remember(&hash, &principal, now);
        let times = SessionTimes {
            created_at: now,
            last_seen_at: now,
        };
        let session = ConsoleSession {
            csrf: self.csrf_of(&token),
            key: principal,
            ends_at: times.ends_at(),
        };
        Ok((token, session))
    }

    async fn record(
        &self,
        key: &KeyPrincipal,
        request: &RequestContext,
        command: TenantCommand,
    ) -> Result<(), ServiceError> {
        let call = Call::new(key.clone(), request.clone());
        self.commands
            .execute(
                &key.tenant_id.tenant_aggregate_id(),
                command,
                call.metadata(),
            )
            .await?;
        Ok(())
    }

    /// The live session of `token`, or `None` when it is unknown, ended or its key revoked.
    pub async fn resume(
        &self,
        token: &SessionSecret,
    ) -> Result<Option<ConsoleSession>, ServiceError> {
        let hash = self.token_hash(token);
        let Some(stored) = self.store.find(&hash).await? else {
            self.known().remove(hash.as_hex());
            return Ok(None);
        };
        let now = self.clock.now();
        if !stored.times.alive_at(now) {
            self.known().remove(hash.as_hex());
            self.store.delete(&hash).await?;
            return Ok(None);
        }
        self.remember(&hash, &stored.key, now);
        let mut times = stored.times;
        if times.needs_touch(now) {
            self.store.touch(&hash, now).await?;
            times.last_seen_at = now;
        }
        Ok(Some(ConsoleSession {
            csrf: self.csrf_of(token),
            key: stored.key,
            ends_at: times.ends_at(),
        }))
    }

    /// Whether the session of `token` is still live (not ended, not timed out, its key not
    /// revoked), without counting the check as activity: a long answer (the live audit
    /// stream) asks this periodically, and an open tab must not keep an idle session alive.
    pub async fn is_live(&self, token: &SessionSecret) -> Result<bool, ServiceError> {
        let Some(stored) = self.store.find(&self.token_hash(token)).await? else {
            return Ok(false);
        };
        Ok(stored.times.alive_at(self.clock.now()))
    }

    /// Ends the session of `token` and records that its user signed out (nothing happens for an
    /// unknown or already ended one). The session ends first, whether or not the record then
    /// succeeds: a sign-out must never leave the session usable.
    pub async fn sign_out(
        &self,
        token: &SessionSecret,
        request: &RequestContext,
    ) -> Result<(), ServiceError> {
        let hash = self.token_hash(token);
        self.known().remove(hash.as_hex());
        let Some(ended) = self.store.delete(&hash).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        if !ended.times.alive_at(now) {
            // It had timed out: that is not a sign-out, and timeouts are not recorded.
            return Ok(());
        }
        self.record(
            &ended.key,
            request,
            TenantCommand::SignOutOfConsole {
                key_id: ended.key.key_id.clone(),
                session: SessionRef::of(&hash),
                at: now,
            },
        )
        .await
    }

    fn csrf_of(&self, token: &SessionSecret) -> String {
        self.hasher
            .keyed_hash(CSRF_PURPOSE, token.expose().as_bytes())
            .as_hex()
            .to_owned()
    }

    /// The CSRF token of the sign-in form for the nonce in the browser's cookie.
    pub fn sign_in_csrf(&self, nonce: &SessionSecret) -> String {
        self.hasher
            .keyed_hash(SIGN_IN_CSRF_PURPOSE, nonce.expose().as_bytes())
            .as_hex()
            .to_owned()
    }

    /// Whether a form's `given` token is `expected` (in constant time).
    pub fn csrf_matches(expected: &str, given: &str) -> bool {
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }
}
