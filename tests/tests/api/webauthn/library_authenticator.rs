//! A second, independent authenticator: `webauthn-authenticator-rs`'s soft passkey behind its
//! browser-side checks (origin against rpId, https), so the options the service returns and the
//! answers it accepts are not only those our own test authenticator agrees with.

use serde_json::{json, Value};
use url::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

use super::*;

#[tokio::test]
async fn the_webauthn_rs_soft_passkey_registers_and_signs_in() {
    let (app, t) = app_and_tenant().await;
    let origin = Url::parse(ORIGIN).unwrap();
    let mut passkey = SoftPasskey::new(true);

    let (id, options) = challenge(
        &start_registration(&app, &t.key, "alice", Value::Null).await,
        "startWebAuthnRegistration",
    );
    let options: CreationChallengeResponse = serde_json::from_value(
        json!({ "publicKey": serde_json::from_str::<Value>(&options).unwrap() }),
    )
    .expect("the options are PublicKeyCredentialCreationOptions");
    let credential = passkey
        .do_registration(origin.clone(), options)
        .expect("the soft passkey accepts the options");
    let credential = serde_json::to_string(&credential).unwrap();
    let done = finish_registration(&app, &t.key, "alice", &id, &credential).await;
    assert_eq!(
        done.data()["finishWebAuthnRegistration"]["codes"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    let (id, options) = start_sign_in(&app, &t.key, "alice").await;
    let options: RequestChallengeResponse = serde_json::from_value(
        json!({ "publicKey": serde_json::from_str::<Value>(&options).unwrap() }),
    )
    .expect("the options are PublicKeyCredentialRequestOptions");
    let assertion = passkey
        .do_authentication(origin, options)
        .expect("the soft passkey signs");
    let assertion = serde_json::to_string(&assertion).unwrap();
    let ok = verify(&app, &t.key, "alice", &id, &assertion).await;
    assert_eq!(ok.data()["verify"]["method"], "WEBAUTHN");
    let replay = verify(&app, &t.key, "alice", &id, &assertion).await;
    assert_eq!(replay.error_code(), "INVALID_CODE");
}
