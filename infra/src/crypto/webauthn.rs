//! WebAuthn ceremonies over `webauthn-rs` (kanidm's library, as Vaultwarden uses it), one
//! `Webauthn` per relying party, built from the tenant's policy and cached by its value (a
//! policy change is a different key).
//!
//! `userVerification: REQUIRED` runs the library's passkey ceremonies (user verification
//! required); `PREFERRED` its security-key ceremonies (verification preferred, attestation
//! `none`), whose options lose the library's `securityKey` hint so browsers offer passkeys and
//! security keys alike. The ceremony state crosses instances inside the sealed events, which is
//! what the `danger-allow-state-serialisation` feature permits (decision 109).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use twofold_domain::webauthn::{RelyingParty, UserVerification};
use twofold_services::webauthn_port::{
    Ceremony, CeremonyUser, EngineAssertion, EngineCredential, EngineError, WebAuthnEngine,
};
use url::Url;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration,
    Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};
use zeroize::Zeroizing;

/// Relying parties kept; past this the cache starts again (they are cheap to build).
const CACHED_RELYING_PARTIES: usize = 1024;

/// The library's state of a ceremony, tagged with its kind.
#[derive(Serialize, Deserialize)]
enum State {
    PasskeyRegistration(PasskeyRegistration),
    SecurityKeyRegistration(SecurityKeyRegistration),
    PasskeyAuthentication(PasskeyAuthentication),
    SecurityKeyAuthentication(SecurityKeyAuthentication),
}

/// [`WebAuthnEngine`] over `webauthn-rs`.
#[derive(Default)]
pub struct RsWebAuthn {
    cache: Mutex<HashMap<RelyingParty, Arc<Webauthn>>>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError(format!("{what}: {e}"))
}

impl RsWebAuthn {
    pub fn new() -> Self {
        Self::default()
    }

    fn relying_party(&self, rp: &RelyingParty) -> Result<Arc<Webauthn>, EngineError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get(rp) {
            return Ok(found.clone());
        }
        let mut origins = rp.origins.iter().map(|o| Url::parse(o));
        let first = origins
            .next()
            .ok_or_else(|| EngineError("relying party without an origin".into()))?
            .map_err(|e| failed("origin", e))?;
        let mut builder = WebauthnBuilder::new(&rp.rp_id, &first)
            .map_err(|e| failed("relying party", e))?
            .rp_name(&rp.rp_name);
        for origin in origins {
            builder = builder.append_allowed_origin(&origin.map_err(|e| failed("origin", e))?);
        }
        let built = Arc::new(builder.build().map_err(|e| failed("relying party", e))?);
        if cache.len() >= CACHED_RELYING_PARTIES {
            cache.clear();
        }
        cache.insert(rp.clone(), built.clone());
        Ok(built)
    }
}

/// The browser's options: the `publicKey` member, without the library's authenticator hint.
fn options<T: Serialize>(public_key: &T) -> Result<String, EngineError> {
    Ok(options_value(public_key)?.to_string())
}

fn options_value<T: Serialize>(public_key: &T) -> Result<Value, EngineError> {
    let mut value = serde_json::to_value(public_key).map_err(|e| failed("options", e))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("hints");
    }
    Ok(value)
}

/// A registration's options for `userVerification: preferred`, without the library's
/// opportunistic (not enforced) credProtect `userVerificationRequired`: Chromium refuses the
/// whole ceremony with `NotSupportedError` ("protection policy is inconsistent") when that
/// policy comes without required user verification. The library records the extension as not
/// requested and checks nothing else of it.
fn preferred_registration_options<T: Serialize>(public_key: &T) -> Result<String, EngineError> {
    let mut value = options_value(public_key)?;
    if let Some(extensions) = value.get_mut("extensions").and_then(Value::as_object_mut) {
        extensions.remove("credentialProtectionPolicy");
        extensions.remove("enforceCredentialProtectionPolicy");
    }
    Ok(value.to_string())
}

fn state_json(state: &State) -> Result<Zeroizing<String>, EngineError> {
    serde_json::to_string(state)
        .map(Zeroizing::new)
        .map_err(|e| failed("state", e))
}

fn parse_state(state: &str) -> Result<State, EngineError> {
    serde_json::from_str(state).map_err(|e| failed("state", e))
}

/// A stored credential with its counter zeroed: the library would refuse a counter at or below
/// the one it is given, but the aggregate judges counters against the one it holds now (and
/// records a regression), so the library only checks the signature.
fn credential_without_counter(json: &str) -> Result<Value, EngineError> {
    let mut value: Value = serde_json::from_str(json).map_err(|e| failed("credential", e))?;
    let counter = value
        .get_mut("cred")
        .and_then(|c| c.get_mut("counter"))
        .ok_or_else(|| EngineError("credential without a counter".into()))?;
    *counter = Value::from(0);
    Ok(value)
}

/// The registered credential as stored: the library's JSON, its id and counter.
fn stored<T: Serialize>(credential: &T, id: &[u8]) -> Result<EngineCredential, EngineError> {
    let value = serde_json::to_value(credential).map_err(|e| failed("credential", e))?;
    let counter = value
        .get("cred")
        .and_then(|c| c.get("counter"))
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0);
    Ok(EngineCredential {
        credential_ref: URL_SAFE_NO_PAD.encode(id),
        credential: Zeroizing::new(value.to_string()),
        counter,
    })
}

/// A refused answer: logged by kind (never its content), reported as `None`.
fn refused<T>(what: &str, e: impl std::fmt::Display) -> Option<T> {
    tracing::debug!(reason = %e, "webauthn {what} refused");
    None
}

impl WebAuthnEngine for RsWebAuthn {
    fn start_registration(
        &self,
        rp: &RelyingParty,
        user: &CeremonyUser,
        exclude: &[String],
    ) -> Result<Ceremony, EngineError> {
        let webauthn = self.relying_party(rp)?;
        let handle = Uuid::from_bytes(user.handle);
        let exclude = exclude
            .iter()
            .map(|id| URL_SAFE_NO_PAD.decode(id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed("credential id", e))?;
        let (options, state) = match rp.user_verification {
            UserVerification::Required => {
                let (ccr, s) = webauthn
                    .start_passkey_registration(
                        handle,
                        &user.name,
                        &user.display_name,
                        Some(exclude),
                    )
                    .map_err(|e| failed("registration", e))?;
                (options(&ccr.public_key)?, State::PasskeyRegistration(s))
            }
            UserVerification::Preferred => {
                let (ccr, s) = webauthn
                    .start_securitykey_registration(
                        handle,
                        &user.name,
                        &user.display_name,
                        Some(exclude),
                        None,
                        None,
                    )
                    .map_err(|e| failed("registration", e))?;
                (
                    preferred_registration_options(&ccr.public_key)?,
                    State::SecurityKeyRegistration(s),
                )
            }
        };
        Ok(Ceremony {
            options,
            state: state_json(&state)?,
        })
    }

    fn finish_registration(
        &self,
        rp: &RelyingParty,
        state: &str,
        credential: &str,
    ) -> Result<Option<EngineCredential>, EngineError> {
        let webauthn = self.relying_party(rp)?;
        let answer: RegisterPublicKeyCredential = match serde_json::from_str(credential) {
            Ok(answer) => answer,
            Err(e) => return Ok(refused("registration", e)),
        };
        match parse_state(state)? {
            State::PasskeyRegistration(s) => {
                match webauthn.finish_passkey_registration(&answer, &s) {
                    Ok(key) => stored(&key, key.cred_id()).map(Some),
                    Err(e) => Ok(refused("registration", e)),
                }
            }
            State::SecurityKeyRegistration(s) => {
                match webauthn.finish_securitykey_registration(&answer, &s) {
                    Ok(key) => stored(&key, key.cred_id()).map(Some),
                    Err(e) => Ok(refused("registration", e)),
                }
            }
            _ => Err(EngineError("not a registration ceremony".into())),
        }
    }

    fn start_authentication(
        &self,
        rp: &RelyingParty,
        credentials: &[Zeroizing<String>],
    ) -> Result<Ceremony, EngineError> {
        let webauthn = self.relying_party(rp)?;
        let values = credentials
            .iter()
            .map(|c| credential_without_counter(c))
            .collect::<Result<Vec<_>, _>>()?;
        let (rcr, state) = match rp.user_verification {
            UserVerification::Required => {
                let keys = values
                    .into_iter()
                    .map(serde_json::from_value::<Passkey>)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| failed("credential", e))?;
                let (rcr, s) = webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(|e| failed("authentication", e))?;
                (rcr, State::PasskeyAuthentication(s))
            }
            UserVerification::Preferred => {
                let keys = values
                    .into_iter()
                    .map(serde_json::from_value::<SecurityKey>)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| failed("credential", e))?;
                let (rcr, s) = webauthn
                    .start_securitykey_authentication(&keys)
                    .map_err(|e| failed("authentication", e))?;
                (rcr, State::SecurityKeyAuthentication(s))
            }
        };
        Ok(Ceremony {
            options: options(&rcr.public_key)?,
            state: state_json(&state)?,
        })
    }

    fn finish_authentication(
        &self,
        rp: &RelyingParty,
        state: &str,
        assertion: &str,
    ) -> Result<Option<EngineAssertion>, EngineError> {
        let webauthn = self.relying_party(rp)?;
        let answer: PublicKeyCredential = match serde_json::from_str(assertion) {
            Ok(answer) => answer,
            Err(e) => return Ok(refused("assertion", e)),
        };
        let result = match parse_state(state)? {
            State::PasskeyAuthentication(s) => webauthn.finish_passkey_authentication(&answer, &s),
            State::SecurityKeyAuthentication(s) => {
                webauthn.finish_securitykey_authentication(&answer, &s)
            }
            _ => return Err(EngineError("not an authentication ceremony".into())),
        };
        Ok(match result {
            Ok(result) => Some(EngineAssertion {
                credential_ref: URL_SAFE_NO_PAD.encode(result.cred_id()),
                counter: result.counter(),
            }),
            Err(e) => refused("assertion", e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(user_verification: UserVerification) -> RelyingParty {
        RelyingParty {
            rp_id: "example.com".into(),
            rp_name: "Acme".into(),
            origins: vec!["https://login.example.com".into()],
            user_verification,
        }
    }

    fn user() -> CeremonyUser {
        CeremonyUser {
            handle: [7; 16],
            name: "alice".into(),
            display_name: "Alice".into(),
        }
    }

    #[test]
    fn one_webauthn_per_relying_party_value() {
        let engine = RsWebAuthn::new();
        let a = engine
            .relying_party(&rp(UserVerification::Preferred))
            .unwrap();
        let b = engine
            .relying_party(&rp(UserVerification::Preferred))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut moved = rp(UserVerification::Preferred);
        moved.origins.push("https://www.example.com".into());
        let c = engine.relying_party(&moved).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.get_allowed_origins().len(), 2);
    }

    #[test]
    fn options_name_the_relying_party_and_user_without_an_authenticator_hint() {
        let engine = RsWebAuthn::new();
        for (uv, expected) in [
            (UserVerification::Preferred, "preferred"),
            (UserVerification::Required, "required"),
        ] {
            let ceremony = engine
                .start_registration(&rp(uv), &user(), &["AAEC".into()])
                .unwrap();
            let o: Value = serde_json::from_str(&ceremony.options).unwrap();
            assert_eq!(o["rp"]["id"], "example.com");
            assert_eq!(o["user"]["id"], URL_SAFE_NO_PAD.encode([7u8; 16]));
            assert_eq!(o["excludeCredentials"][0]["id"], "AAEC");
            assert_eq!(o["authenticatorSelection"]["userVerification"], expected);
            assert_eq!(o["attestation"], "none");
            assert!(o.get("hints").is_none(), "{o}");
            // Chromium refuses a required credProtect policy without required verification.
            let protection = &o["extensions"]["credentialProtectionPolicy"];
            match uv {
                UserVerification::Preferred => assert!(protection.is_null(), "{o}"),
                UserVerification::Required => {
                    assert_eq!(protection, "userVerificationRequired", "{o}")
                }
            }
            // The challenge is in the state, which is never shown: it parses back.
            assert!(matches!(
                parse_state(&ceremony.state).unwrap(),
                State::PasskeyRegistration(_) | State::SecurityKeyRegistration(_)
            ));
        }
    }

    #[test]
    fn a_malformed_answer_is_a_refusal_and_a_wrong_state_an_error() {
        let engine = RsWebAuthn::new();
        let rp = rp(UserVerification::Preferred);
        let ceremony = engine.start_registration(&rp, &user(), &[]).unwrap();
        assert!(engine
            .finish_registration(&rp, &ceremony.state, "{\"not\": \"a credential\"}")
            .unwrap()
            .is_none());
        assert!(engine
            .finish_authentication(&rp, &ceremony.state, "{}")
            .unwrap()
            .is_none());
        let assertion = r#"{"id":"AA","rawId":"AA","type":"public-key","response":{"authenticatorData":"AA","clientDataJSON":"AA","signature":"AA"}}"#;
        assert!(engine
            .finish_authentication(&rp, &ceremony.state, assertion)
            .is_err());
        assert!(engine
            .finish_registration(&rp, "not json", "{}")
            .unwrap()
            .is_none());
    }
}
