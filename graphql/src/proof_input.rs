//! `ProofInput`: a current factor presented in the same call that adds, replaces or removes one.

use async_graphql::{InputObject, ID};
use twofold_services::users::ProofInput;

use crate::types::MethodGql;

/// A current factor: a TOTP code, a recovery code, or an EMAIL/SMS sign-in code with the
/// `challengeId` of the `sendCode` that sent it. Checked like a sign-in: a wrong one counts
/// toward the lockout, and a TOTP code cannot be used twice.
#[derive(InputObject)]
#[graphql(name = "ProofInput")]
pub struct ProofInputGql {
    /// The method.
    pub method: MethodGql,
    /// The code as the user typed it.
    pub code: String,
    /// For EMAIL and SMS: the sign-in challenge the code was sent with.
    pub challenge_id: Option<ID>,
}

impl From<ProofInputGql> for ProofInput {
    fn from(p: ProofInputGql) -> Self {
        ProofInput {
            method: p.method.into(),
            code: p.code,
            challenge_id: p.challenge_id.map(|id| id.0),
        }
    }
}
