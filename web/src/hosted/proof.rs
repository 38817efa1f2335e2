//! Proof of a current factor, which the settings ask for before any change (the API's rule):
//! a code from the app, a recovery code, or a code sent by email or SMS from the settings page
//! (its challenge then rides along in the forms that use it).

use axum::extract::State;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_domain::channel::Channel;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;
use twofold_services::users::{ProofInput, UserStatus};

use super::manage::{self, Said};
use super::texts::HostedTexts;
use super::visit::Visit;
use super::{not_this_flow, problem};
use crate::WebState;

/// A code sent by email or SMS to prove a factor with.
#[derive(Clone)]
pub(crate) struct Sent {
    pub(crate) method: Method,
    pub(crate) challenge: String,
    pub(crate) sent_to: String,
}

/// What a form may prove with: `(method, label)` choices and, after a code was sent, its
/// challenge.
#[derive(Default)]
pub(crate) struct Proofs {
    pub(crate) choices: Vec<(&'static str, String)>,
    pub(crate) challenge: String,
}

impl Proofs {
    /// The user's ways to prove a factor now: the code just sent if there is one (only it), else
    /// the app and the recovery codes they have.
    pub(crate) fn of(texts: HostedTexts, status: &UserStatus, sent: Option<&Sent>) -> Self {
        let label = |m: Method| texts.t(&format!("hosted-method-{}", m.as_str()));
        if let Some(sent) = sent {
            return Self {
                choices: vec![(
                    sent.method.as_str(),
                    texts.with("hosted-proof-sent", &[("to", &sent.sent_to)]),
                )],
                challenge: sent.challenge.clone(),
            };
        }
        let mut choices = Vec::new();
        if status.methods.contains(&Method::Totp) {
            choices.push((Method::Totp.as_str(), label(Method::Totp)));
        }
        if status.recovery_codes_remaining > 0 {
            choices.push((Method::RecoveryCode.as_str(), label(Method::RecoveryCode)));
        }
        Self {
            choices,
            challenge: String::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.choices.is_empty()
    }
}

/// `(channel, label)` of each confirmed address or number a proof code can be sent to.
pub(crate) fn senders(texts: HostedTexts, status: &UserStatus) -> Vec<(&'static str, String)> {
    [
        (Channel::Email, &status.email),
        (Channel::Sms, &status.phone),
    ]
    .into_iter()
    .filter_map(|(channel, contact)| match contact {
        Some((masked, true)) if status.methods.contains(&channel.method()) => Some((
            channel.method().as_str(),
            texts.with(
                &format!("hosted-verify-send-{}", channel.method().as_str()),
                &[("to", masked)],
            ),
        )),
        _ => None,
    })
    .collect()
}

/// The proof a form brings: `None` when its method is not one a form may name.
pub(crate) fn input(method: &str, code: &str, challenge: &str) -> Option<ProofInput> {
    let method = Method::parse(method)?;
    let challenge_id = match method {
        Method::Totp | Method::RecoveryCode => None,
        Method::Email | Method::Sms => Some(challenge.trim().to_owned()),
        Method::WebAuthn => return None,
    };
    Some(ProofInput {
        method,
        code: code.trim().to_owned(),
        challenge_id,
    })
}

#[derive(Deserialize)]
pub(crate) struct SendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
}

/// Sends a code to prove a factor with: the settings again, asking for it.
pub(crate) async fn send(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<SendForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    if visit.session.link.purpose != Purpose::Manage {
        return not_this_flow(visit.texts);
    }
    let channel = match form.channel.as_str() {
        "EMAIL" => Channel::Email,
        "SMS" => Channel::Sms,
        _ => return not_this_flow(visit.texts),
    };
    if let Err(message) = visit.may_send(&state) {
        let said = Said {
            error: Some(message),
            ..Said::default()
        };
        let page = manage::show(&state, &visit, said).await;
        return visit.allow_return(page);
    }
    let said = match state
        .users
        .send_code(
            &visit.call,
            visit.user(),
            Some(channel),
            None,
            Some(visit.texts.lang()),
        )
        .await
    {
        Ok(challenge) => Said {
            sent: Some(Sent {
                method: channel.method(),
                challenge: challenge.id,
                sent_to: challenge.sent_to,
            }),
            ..Said::default()
        },
        Err(e) => match problem(visit.texts, &e) {
            Ok(message) => Said {
                error: Some(message),
                ..Said::default()
            },
            Err(page) => return *page,
        },
    };
    let page = manage::show(&state, &visit, said).await;
    visit.allow_return(page)
}
