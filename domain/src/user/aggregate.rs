//! The user aggregate as cqrs-es runs it: `decide` sends each action to the flow that rules on
//! it (one file per flow), `apply` folds the events it recorded (`apply.rs`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use super::channels::NewContact;
use super::webauthn::FinishRegistration;
use super::{CodeChecker, User, UserAction, UserCommand, UserError, UserEvent, UserRef};
use crate::channel::Channel;

/// What every decision reads besides the state and the action: whose account, when (the
/// command's time: the domain reads no clock), and what checks codes.
pub(super) struct Context<'a> {
    pub(super) checker: &'a dyn CodeChecker,
    pub(super) user: &'a UserRef,
    pub(super) at: DateTime<Utc>,
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = Arc<dyn CodeChecker>;

    async fn handle(
        &mut self,
        command: Self::Command,
        checker: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, checker.as_ref()).await? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.evolve(event);
    }
}

impl User {
    async fn decide(
        &self,
        command: UserCommand,
        checker: &dyn CodeChecker,
    ) -> Result<Vec<UserEvent>, UserError> {
        let UserCommand {
            user,
            at,
            action,
            notifications,
        } = command;
        let cx = Context {
            checker,
            user: &user,
            at,
        };
        let mut events = self.decide_action(&cx, action).await?;
        let notices = self.notices(&events, &notifications, at);
        events.extend(notices);
        Ok(events)
    }

    async fn decide_action(
        &self,
        cx: &Context<'_>,
        action: UserAction,
    ) -> Result<Vec<UserEvent>, UserError> {
        let at = cx.at;
        match action {
            UserAction::StartTotpEnrollment { secret, params } => {
                Ok(self.decide_start_totp(cx, secret, params))
            }
            UserAction::ConfirmTotp {
                code,
                proof,
                recovery_codes,
            } => {
                self.decide_confirm_totp(cx, &code, proof.as_ref(), recovery_codes)
                    .await
            }
            UserAction::Verify { proof, trust } => self.decide_verify(cx, &proof, trust).await,
            UserAction::CheckProof { proof } => self.decide_check_proof(cx, &proof).await,
            UserAction::EvaluateSignIn { attempt } => {
                Ok(self.decide_evaluate_sign_in(&attempt, at))
            }
            UserAction::RevokeTrustedDevice {
                device_id,
                explanation,
            } => self.decide_revoke_device(device_id, explanation, at),
            UserAction::RegenerateRecoveryCodes {
                proof,
                recovery_codes,
            } => {
                self.decide_regenerate_recovery_codes(cx, &proof, recovery_codes)
                    .await
            }
            UserAction::Disable {
                proof,
                policy_enforced,
            } => self.decide_disable(cx, &proof, policy_enforced).await,
            UserAction::RemoveFactor {
                method,
                proof,
                policy_enforced,
            } => {
                self.decide_remove_factor(cx, method, &proof, policy_enforced)
                    .await
            }
            UserAction::AddEmail {
                proof,
                email,
                masked,
                challenge,
                locale,
            } => {
                let contact = NewContact {
                    channel: Channel::Email,
                    masked: masked.clone(),
                    challenge,
                    locale,
                };
                self.decide_add_contact(cx, proof.as_ref(), contact, |replacing| {
                    UserEvent::EmailFactorAdded {
                        email,
                        masked,
                        replacing,
                        at,
                    }
                })
                .await
            }
            UserAction::AddPhone {
                proof,
                phone,
                calling_code,
                region,
                masked,
                challenge,
                locale,
            } => {
                let contact = NewContact {
                    channel: Channel::Sms,
                    masked: masked.clone(),
                    challenge,
                    locale,
                };
                self.decide_add_contact(cx, proof.as_ref(), contact, |replacing| {
                    UserEvent::PhoneFactorAdded {
                        phone,
                        calling_code,
                        region,
                        masked,
                        replacing,
                        at,
                    }
                })
                .await
            }
            UserAction::ConfirmChannel {
                challenge_id,
                code,
                recovery_codes,
                proof,
            } => {
                self.decide_confirm_channel(cx, challenge_id, &code, proof.as_ref(), recovery_codes)
                    .await
            }
            UserAction::ChoosePreferredChannel { channel } => {
                self.decide_choose_preferred(channel, at)
            }
            UserAction::SendCode {
                channel,
                challenge,
                locale,
            } => self.decide_send_code(channel, challenge, locale, at),
            UserAction::RecordDelivery {
                challenge_id,
                outcome,
            } => Ok(self.decide_record_delivery(challenge_id, outcome, at)),
            UserAction::RecordNotification {
                notification_id,
                outcome,
            } => Ok(self.decide_record_notification(notification_id, outcome, at)),
            UserAction::StartWebAuthnRegistration { proof, challenge } => {
                self.decide_start_webauthn_registration(cx, proof.as_ref(), challenge)
                    .await
            }
            UserAction::FinishWebAuthnRegistration {
                challenge_id,
                credential,
                credential_id,
                label,
                recovery_codes,
            } => {
                let finish = FinishRegistration {
                    challenge_id,
                    credential,
                    credential_id,
                    label,
                    recovery_codes,
                };
                self.decide_finish_webauthn_registration(cx, finish).await
            }
            UserAction::StartWebAuthnAuthentication { challenge } => {
                self.decide_start_webauthn_authentication(cx, challenge)
            }
            UserAction::RemoveWebAuthnCredential {
                credential_id,
                proof,
                policy_enforced,
            } => {
                self.decide_remove_webauthn_credential(cx, &credential_id, &proof, policy_enforced)
                    .await
            }
            UserAction::ClearLockout { by, reason } => self.decide_clear_lockout(by, reason, at),
            UserAction::Reset { by, reason } => self.decide_reset(by, reason, at),
            UserAction::Erase { by, reason } => self.decide_erase(by, reason, at),
            UserAction::Reseal { seals } => Ok(self.decide_reseal(seals, at)),
        }
    }
}
