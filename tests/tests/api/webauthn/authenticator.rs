//! A software authenticator and the browser around it: a P-256 key answering the server's
//! options the way `navigator.credentials.create`/`get` and `PublicKeyCredential.toJSON()` do
//! (W3C WebAuthn Level 3 §6.1 authenticator data, §6.5.4 `none` attestation, §5.8.1 client
//! data), with every field a test needs to get wrong on purpose: the origin, the rpId and the
//! signature counter. It is cloneable, as a cloned authenticator is.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::Value as Cbor;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Flags of authenticator data (§6.1): user present, user verified, attested credential data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn cbor(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR encodes");
    out
}

/// What the page and the authenticator put in one answer.
#[derive(Debug, Clone)]
pub struct Context {
    /// The page's origin, as the browser reports it in the client data.
    pub origin: String,
    /// The rpId whose hash the authenticator signs; `None`: the one the options name.
    pub rp_id: Option<String>,
    /// The authenticator did not verify the user (no PIN, no biometrics): UV flag clear.
    pub unverified: bool,
}

impl Context {
    pub fn at(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            rp_id: None,
            unverified: false,
        }
    }
}

/// One credential on a software authenticator.
#[derive(Clone)]
pub struct SoftKey {
    key: SigningKey,
    /// The credential id.
    pub id: Vec<u8>,
    /// The signature counter: incremented before each assertion.
    pub counter: u32,
    user_handle: Vec<u8>,
}

impl SoftKey {
    pub fn new() -> Self {
        let key = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                break key;
            }
        };
        Self {
            key,
            id: rand::random::<[u8; 32]>().to_vec(),
            counter: 0,
            user_handle: Vec::new(),
        }
    }

    /// The credential id as the API and the options carry it.
    pub fn id_b64(&self) -> String {
        b64(&self.id)
    }

    /// The COSE_Key of the public key (RFC 9052 §7: kty EC2, alg ES256, crv P-256, x, y).
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let int = |i: i64| Cbor::Integer(i.into());
        cbor(&Cbor::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Cbor::Bytes(point.x().expect("x").to_vec())),
            (int(-3), Cbor::Bytes(point.y().expect("y").to_vec())),
        ]))
    }

    fn client_data(kind: &str, options: &Value, cx: &Context) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": options["challenge"],
            "origin": cx.origin,
            "crossOrigin": false,
            // What Chrome adds, so that nobody compares client data against a template.
            "other_keys_can_be_added_here":
                "do not compare clientDataJSON against a template. See https://goo.gl/yabPex",
        }))
        .expect("JSON")
    }

    fn rp_id_hash(rp_id: &str) -> Vec<u8> {
        Sha256::digest(rp_id.as_bytes()).to_vec()
    }

    /// `navigator.credentials.create({ publicKey })` then `toJSON()`, as a JSON string.
    pub fn register(&mut self, options: &str, cx: &Context) -> String {
        let options: Value = serde_json::from_str(options).expect("options are JSON");
        let rp_id = cx
            .rp_id
            .clone()
            .unwrap_or_else(|| options["rp"]["id"].as_str().expect("rp.id").to_owned());
        self.user_handle = URL_SAFE_NO_PAD
            .decode(options["user"]["id"].as_str().expect("user.id"))
            .expect("user.id is base64url");
        let client_data = Self::client_data("webauthn.create", &options, cx);
        let mut auth_data = Self::rp_id_hash(&rp_id);
        auth_data.push(if cx.unverified { UP | AT } else { UP | UV | AT });
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID: none
        auth_data.extend(
            u16::try_from(self.id.len())
                .expect("short id")
                .to_be_bytes(),
        );
        auth_data.extend(&self.id);
        auth_data.extend(self.cose_key());
        let text = |s: &str| Cbor::Text(s.to_owned());
        let attestation = cbor(&Cbor::Map(vec![
            (text("fmt"), text("none")),
            (text("attStmt"), Cbor::Map(vec![])),
            (text("authData"), Cbor::Bytes(auth_data.clone())),
        ]));
        json!({
            "id": self.id_b64(),
            "rawId": self.id_b64(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "authenticatorData": b64(&auth_data),
                "transports": ["usb"],
                "publicKeyAlgorithm": -7,
                "publicKey": b64(
                    p256::pkcs8::EncodePublicKey::to_public_key_der(self.key.verifying_key())
                        .expect("SPKI")
                        .as_bytes()
                ),
            },
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
        })
        .to_string()
    }

    /// `navigator.credentials.get({ publicKey })` then `toJSON()`, as a JSON string. The
    /// counter goes up first, as an authenticator's does.
    pub fn sign(&mut self, options: &str, cx: &Context) -> String {
        let options: Value = serde_json::from_str(options).expect("options are JSON");
        let rp_id = cx
            .rp_id
            .clone()
            .unwrap_or_else(|| options["rpId"].as_str().expect("rpId").to_owned());
        self.counter += 1;
        let client_data = Self::client_data("webauthn.get", &options, cx);
        let mut auth_data = Self::rp_id_hash(&rp_id);
        auth_data.push(if cx.unverified { UP } else { UP | UV });
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": self.id_b64(),
            "rawId": self.id_b64(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&self.user_handle),
            },
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
        })
        .to_string()
    }
}
