//! Running a user command: at the clock's time, with the request's metadata, and (for a command
//! that issues a code) under the send caps.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::Instrument;
use twofold_domain::channel::{Channel, Purpose};
use twofold_domain::user::{
    Notifications, User, UserAction, UserCommand, UserError, UserEvent, UserRef,
};
use twofold_domain::TenantId;

use super::errors::outcome;
use super::UserService;
use crate::encoding::base32_lower;
use crate::ports::TenantView;
use crate::send_limits::{issued, Slot};
use crate::{Call, ServiceError};

/// How long a code's command may run once its slot is taken. It runs on when its caller hangs
/// up, holding the request's place in its tenant's share, so a stalled database must not pin
/// that place for good; the slot stays counted (the code may have been issued).
pub const COMMAND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// A code about to be issued: where it goes, under which tenant's caps.
pub(super) struct CodeSend<'a> {
    pub tenant: &'a TenantView,
    pub channel: Channel,
    pub destination: &'a str,
    pub challenge_id: &'a str,
}

/// [`CodeSend`] for the task that outlives its request.
struct OwnedSend {
    tenant: TenantView,
    channel: Channel,
    destination: String,
    challenge_id: String,
}

impl UserService {
    /// Runs `action`, which issues the code `send.challenge_id` to `send.destination`, under
    /// the send caps: the slot is taken first (a full cap refuses with nothing recorded or sent)
    /// and given back unless the code was issued.
    pub(super) async fn run_send(
        &self,
        call: &Call,
        user: &UserRef,
        send: CodeSend<'_>,
        action: UserAction,
    ) -> Result<(Arc<User>, Vec<UserEvent>, DateTime<Utc>), ServiceError> {
        let CodeSend {
            tenant,
            channel,
            destination,
            challenge_id,
        } = send;
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
        // From the reservation to its settling in a task of its own, in the request's place in
        // its tenant's share: a request dropped in between (its caller hung up) would give back
        // a grant it had not read yet, or leave a slot taken with no code issued, and in both
        // cases give up its place while its work went on or was undone. The task runs to its end
        // instead; its command for at most `COMMAND_DEADLINE`.
        let send = OwnedSend {
            tenant: tenant.clone(),
            channel,
            destination: destination.to_owned(),
            challenge_id: challenge_id.to_owned(),
        };
        let (service, call, user) = (self.clone(), call.keeping_place(), user.clone());
        tokio::spawn(
            async move { service.reserve_and_run(&call, &user, send, action).await }
                .in_current_span(),
        )
        .await
        .map_err(|e| ServiceError::Internal(Box::new(e)))?
    }

    /// The slot, then the command, then the slot settled: kept when the code was issued. Each
    /// part has a deadline (the settling its own, in `SendLimits::settle`): the task holds the
    /// request's place, which a stalled database must not pin for good.
    async fn reserve_and_run(
        &self,
        call: &Call,
        user: &UserRef,
        send: OwnedSend,
        action: UserAction,
    ) -> Result<(Arc<User>, Vec<UserEvent>, DateTime<Utc>), ServiceError> {
        // A reservation given up here is abandoned, and a grant it came too late for is given
        // back by the limiter.
        let slot =
            tokio::time::timeout(COMMAND_DEADLINE, self.take_slot(call, user, &send, &action))
                .await
                .map_err(|_| {
                    ServiceError::Internal("a code's slot was not taken within its deadline".into())
                })??;
        let result =
            match tokio::time::timeout(COMMAND_DEADLINE, self.run(call, user, action)).await {
                Ok(result) => result,
                Err(_) => Err(ServiceError::Internal(
                    "a code's command did not finish within its deadline".into(),
                )),
            };
        // Kept when the code was issued, and when nobody can say whether it was (an internal
        // error may come after the commit): a send too many is the safe side. Not when the
        // database refused the command's statement (a lock not taken in time): its callers are
        // told to retry, and each retry would otherwise take a slot for no code.
        let keep = match &result {
            Ok((_, events, _)) => issued(events, &send.challenge_id),
            Err(e @ ServiceError::Internal(_)) => !e.wrote_nothing(),
            Err(_) => false,
        };
        self.limits.settle(slot, keep).await;
        result
    }

    /// A slot under the send caps; on a full cap, the change's proof is checked first, so a
    /// caller with a wrong proof, or locked out, learns that and nothing about who else had
    /// codes sent here.
    async fn take_slot(
        &self,
        call: &Call,
        user: &UserRef,
        send: &OwnedSend,
        action: &UserAction,
    ) -> Result<Slot, ServiceError> {
        let purpose = match action {
            UserAction::SendCode { .. } => Purpose::SignIn,
            _ => Purpose::VerifyChannel,
        };
        let reserved = self
            .limits
            .reserve(
                &send.tenant,
                send.channel,
                purpose,
                &send.destination,
                &send.challenge_id,
                self.clock.now(),
            )
            .await;
        match (reserved, action) {
            (
                Err(full @ ServiceError::RateLimited { .. }),
                UserAction::AddEmail {
                    proof: Some(proof), ..
                }
                | UserAction::AddPhone {
                    proof: Some(proof), ..
                },
            ) => {
                let (_, events, at) = self
                    .run(
                        call,
                        user,
                        UserAction::CheckProof {
                            proof: proof.clone(),
                        },
                    )
                    .await?;
                outcome(&events, at)?;
                Err(full)
            }
            (reserved, _) => reserved,
        }
    }

    /// Runs `action` on `user` at the clock's time, recorded with the call's metadata.
    pub(super) async fn run(
        &self,
        call: &Call,
        user: &UserRef,
        action: UserAction,
    ) -> Result<(Arc<User>, Vec<UserEvent>, DateTime<Utc>), ServiceError> {
        let notifications = self.notifications(&user.tenant).await?;
        let at = self.clock.now();
        let executed = self
            .commands
            .execute(
                &user.aggregate_id(),
                UserCommand {
                    user: user.clone(),
                    at,
                    action,
                    notifications,
                },
                call.metadata(),
            )
            .await?;
        Ok((executed.state, executed.events, at))
    }
}

impl UserService {
    /// Whether a command of `tenant` may queue security notices (its policy), with a fresh id
    /// for the first: the aggregate decides which change calls for one.
    async fn notifications(&self, tenant: &TenantId) -> Result<Notifications, ServiceError> {
        if !self.tenant(tenant).await?.policy.security_notifications {
            return Ok(Notifications::default());
        }
        let mut id = [0u8; 16];
        self.entropy.fill(&mut id);
        // `n-`: never a challenge id (plain base32), so a notice is told apart in the queue and
        // at the provider (idempotency key, Message-ID).
        Ok(Notifications::on(format!("n-{}", base32_lower(&id))))
    }
}
