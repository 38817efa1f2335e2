//! Test doubles of the ports: a clock that moves only when told, predictable randomness, and
//! deterministic stand-ins for the sealer, hasher, TOTP engine, tenant directory and send
//! limiter. Each keeps the contract its port promises (a seal opens only for its tenant and
//! context, a hash differs by purpose and message, a TOTP code matches within ±1 step), so the
//! use-cases behave as they do over the real adapters, whose own tests cover the cryptography.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use twofold_domain::secrets::{SealedSecret, TotpParams};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::TenantId;

use crate::encoding::{base32_lower, from_hex, hex_lower};
use crate::ports::{
    ApiKeyView, Clock, Entropy, ReadModelSync, Reservation, Sealer, SecretHasher, SendCap,
    SendLimiter, TenantDirectory, TenantView, TotpEngine, TotpError, TotpProvisioning,
};
use crate::StoreError;

/// A clock that stands still until a test moves it.
pub(crate) struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
        ))
    }

    pub(crate) fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Bytes that differ on every draw and from run to run do not.
#[derive(Default)]
pub(crate) struct FakeEntropy(AtomicU64);

impl Entropy for FakeEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            // splitmix64 of a counter.
            let mut z = self
                .0
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

fn digest(parts: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// Keyed hashing without a key: different purposes or messages give different hashes.
pub(crate) struct FakeHasher;

impl SecretHasher for FakeHasher {
    fn keyed_hash(&self, purpose: &str, secret: &[u8]) -> KeyedHash {
        let hex: String = (0..4u8)
            .map(|round| format!("{:016x}", digest((round, purpose, secret))))
            .collect();
        KeyedHash::from_hex(hex)
    }
}

/// "Seals" in clear, but a seal opens only for the tenant (or user) and context it was made
/// for, and a user's seals stop opening once the user is erased.
#[derive(Default)]
pub(crate) struct FakeSealer {
    erased: Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl Sealer for FakeSealer {
    async fn seal(
        &self,
        tenant: &TenantId,
        context: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret, StoreError> {
        Ok(SealedSecret::from_encoded(format!(
            "{tenant}|{context}|{}",
            hex_lower(plaintext)
        )))
    }

    async fn open(
        &self,
        tenant: &TenantId,
        context: &str,
        sealed: &SealedSecret,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let prefix = format!("{tenant}|{context}|");
        sealed
            .as_encoded()
            .strip_prefix(&prefix)
            .and_then(from_hex)
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| StoreError::new(std::io::Error::other("the seal does not open here")))
    }

    async fn seal_for_user(
        &self,
        user: &twofold_domain::user::UserRef,
        context: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret, StoreError> {
        let owner = format!("user:{}|{context}", user.aggregate_id());
        self.seal(&user.tenant, &owner, plaintext).await
    }

    async fn open_for_user(
        &self,
        user: &twofold_domain::user::UserRef,
        context: &str,
        sealed: &SealedSecret,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        if self.erased.lock().unwrap().contains(&user.aggregate_id()) {
            return Err(StoreError::new(std::io::Error::other(
                "the user was erased",
            )));
        }
        let owner = format!("user:{}|{context}", user.aggregate_id());
        self.open(&user.tenant, &owner, sealed).await
    }

    async fn erase_user(&self, user: &twofold_domain::user::UserRef) -> Result<u64, StoreError> {
        Ok(u64::from(
            self.erased.lock().unwrap().insert(user.aggregate_id()),
        ))
    }

    async fn erase_tenant(&self, _tenant: &TenantId) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn has_first_format_key(&self, _tenant: &TenantId) -> Result<bool, StoreError> {
        Ok(false)
    }

    fn keys_apart(&self) -> bool {
        false
    }

    fn needs_reseal(&self, _sealed: &SealedSecret) -> bool {
        false
    }

    async fn retire_first_format_key(&self, _tenant: &TenantId) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// TOTP with a stand-in for HMAC: a code is a function of the secret and the time step only.
/// Remembers the secrets it provisioned, so a test can compute the app's code, and counts the
/// QR codes it drew.
#[derive(Default)]
pub(crate) struct FakeTotp(
    Mutex<HashMap<String, Vec<u8>>>,
    pub(crate) std::sync::atomic::AtomicUsize,
);

impl FakeTotp {
    fn code(secret: &[u8], step: u64, digits: u8) -> String {
        let value = digest((secret, step)) % 10u64.pow(u32::from(digits));
        format!("{value:0width$}", width = usize::from(digits))
    }

    /// The code an authenticator app shows at `at` for the enrollment with this secret.
    pub(crate) fn code_at(&self, secret_base32: &str, at: DateTime<Utc>) -> String {
        let secrets = self.0.lock().unwrap();
        let secret = secrets.get(secret_base32).expect("a provisioned secret");
        let step = u64::try_from(at.timestamp()).unwrap() / u64::from(TotpParams::PERIOD);
        Self::code(secret, step, 6)
    }
}

impl TotpEngine for FakeTotp {
    fn provision(
        &self,
        secret: &[u8],
        _params: &TotpParams,
        issuer: &str,
        account: &str,
    ) -> Result<TotpProvisioning, TotpError> {
        let secret_base32 = base32_lower(secret);
        self.0
            .lock()
            .unwrap()
            .insert(secret_base32.clone(), secret.to_vec());
        Ok(TotpProvisioning {
            uri: format!("otpauth://totp/{issuer}:{account}?secret={secret_base32}"),
            secret_base32,
        })
    }

    fn qr_png(&self, uri: &str) -> Result<String, TotpError> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(format!("png of {uri}"))
    }

    fn qr_svg(&self, uri: &str) -> Result<String, TotpError> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(format!("svg of {uri}"))
    }

    fn matching_step(
        &self,
        secret: &[u8],
        params: &TotpParams,
        code: &str,
        unix_time: u64,
    ) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let now = unix_time / u64::from(params.period);
        (now.saturating_sub(1)..=now + 1)
            .find(|step| Self::code(secret, *step, params.digits) == code)
    }
}

/// Tenants as a test sets them up.
#[derive(Default)]
pub(crate) struct FakeDirectory(Mutex<HashMap<TenantId, TenantView>>);

impl FakeDirectory {
    pub(crate) fn put(&self, tenant: TenantView) {
        self.0.lock().unwrap().insert(tenant.id.clone(), tenant);
    }
}

#[async_trait]
impl TenantDirectory for FakeDirectory {
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantView>, StoreError> {
        Ok(self.0.lock().unwrap().get(id).cloned())
    }

    async fn api_keys(&self, _id: &TenantId) -> Result<Vec<ApiKeyView>, StoreError> {
        Ok(Vec::new())
    }

    async fn key_by_hash(&self, _hash: &KeyedHash) -> Result<Option<ApiKeyView>, StoreError> {
        Ok(None)
    }
}

/// Counts sends in sliding windows, as `PgSendLimiter` does, in one process; its give-backs
/// can be made to wait for ever, as behind a stalled database.
#[derive(Default)]
pub(crate) struct FakeLimiter(
    Mutex<Vec<(String, String, DateTime<Utc>)>>,
    std::sync::atomic::AtomicBool,
);

impl FakeLimiter {
    /// Give-backs from now on never finish.
    pub(crate) fn stall_releases(&self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The sends holding slots.
    pub(crate) fn sends(&self) -> usize {
        let taken = self.0.lock().unwrap();
        let ids: std::collections::HashSet<&str> =
            taken.iter().map(|(id, _, _)| id.as_str()).collect();
        ids.len()
    }
}

#[async_trait]
impl SendLimiter for FakeLimiter {
    async fn reserve(
        &self,
        id: &str,
        caps: &[SendCap],
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        let mut taken = self.0.lock().unwrap();
        for (index, cap) in caps.iter().enumerate() {
            let mut within = taken
                .iter()
                .filter(|(_, bucket, at)| *bucket == cap.bucket && *at > now - cap.window)
                .map(|(_, _, at)| *at)
                .collect::<Vec<_>>();
            if within.len() >= cap.limit as usize {
                within.sort();
                return Ok(Reservation::Refused {
                    cap: index,
                    retry_after_seconds: (within[0] + cap.window - now).num_seconds(),
                });
            }
        }
        for cap in caps {
            taken.push((id.to_owned(), cap.bucket.clone(), now));
        }
        Ok(Reservation::Granted)
    }

    async fn release(
        &self,
        id: &str,
        caps: &[SendCap],
        _reserved_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut taken = self.0.lock().unwrap();
        let before = taken.len();
        taken.retain(|(taken, bucket, _)| taken != id || !caps.iter().any(|c| c.bucket == *bucket));
        // `PgSendLimiter` takes a give-back off the counts whatever it gives back: a second
        // one, or one of slots never taken, would take another send's slots.
        assert_eq!(
            before - taken.len(),
            caps.len(),
            "{id} given back twice, or without its slots"
        );
        Ok(())
    }
}

/// No read model to wait for.
pub(crate) struct NoReadModel;

#[async_trait]
impl ReadModelSync for NoReadModel {
    async fn settle(&self, _: &str, _: &str, _: usize) -> Result<(), StoreError> {
        Ok(())
    }

    async fn catch_up_all(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
