//! The user use-cases over the in-memory gateway and fake ports (`crate::testing`): each test
//! runs in milliseconds and checks something a user or a tenant relies on.

mod admin;
mod channels;
mod enrollment;
mod factors;
mod sign_in;

use twofold_domain::Method;

use super::{ProofInput, Verified, VerifyInput};
use crate::testing::{app, Harness};
use crate::ServiceError;

/// A factor presented without a challenge (TOTP, a recovery code).
fn factor(method: Method, code: &str) -> ProofInput {
    ProofInput {
        method,
        code: code.to_owned(),
        challenge_id: None,
    }
}

/// A sign-in check that trusts no device.
fn check(factor: ProofInput) -> VerifyInput {
    VerifyInput {
        factor,
        trust_device: false,
        device_label: None,
    }
}

/// Signs `user_id` in with an authenticator app code.
async fn verify_totp(h: &Harness, user_id: &str, code: &str) -> Result<Verified, ServiceError> {
    h.users
        .verify(&app(), user_id, check(factor(Method::Totp, code)))
        .await
}

/// What a wrong code answers: how many attempts are left before a lockout.
fn remaining_attempts(result: Result<impl std::fmt::Debug, ServiceError>) -> u32 {
    match result {
        Err(ServiceError::InvalidCode { remaining_attempts }) => remaining_attempts,
        other => panic!("expected INVALID_CODE, got {other:?}"),
    }
}
