//! The ADMIN actions on a user: reset 2FA, clear a lockout, revoke a trusted device. Each is a
//! POST with a required reason; a refused reason is shown beside the field and changes nothing,
//! a done action answers 303 back to the user's page with a confirmation.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use twofold_domain::Reason;
use twofold_graphql::input_check::text::{check, Kind};
use twofold_services::roles::{require, ADMIN};
use twofold_services::ServiceError;

use super::address::{user_url, Target};
use super::{load, show};
use crate::console::SignedIn;
use crate::page;
use crate::WebState;

/// Which action, as the form and the confirmation name it.
#[derive(Clone, Copy)]
enum Action {
    Reset,
    ClearLockout,
    RevokeDevice,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Reset => "reset",
            Action::ClearLockout => "lockout",
            Action::RevokeDevice => "device",
        }
    }
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

pub(crate) async fn reset(
    State(state): State<WebState>,
    s: SignedIn,
    target: Target,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    act(state, s, target.user_id, None, Action::Reset, pairs).await
}

pub(crate) async fn clear_lockout(
    State(state): State<WebState>,
    s: SignedIn,
    target: Target,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    act(state, s, target.user_id, None, Action::ClearLockout, pairs).await
}

pub(crate) async fn revoke_device(
    State(state): State<WebState>,
    s: SignedIn,
    target: Target,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    act(
        state,
        s,
        target.user_id,
        target.device_id,
        Action::RevokeDevice,
        pairs,
    )
    .await
}

async fn act(
    state: WebState,
    s: SignedIn,
    user_id: String,
    device_id: Option<String>,
    action: Action,
    pairs: Vec<(String, String)>,
) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    if let Some(refused) = s.refuse_csrf(one(&pairs, "csrf")) {
        return refused;
    }
    // The user must exist already: an action must not create one.
    if let Err(e) = load(&state, &s, &user_id).await {
        return page::error(s.chrome, &e, &s.request_id);
    }
    let reason = one(&pairs, "reason").to_owned();
    // The API's checks and messages: the text validator, then the domain's `Reason`.
    let checked = check("reason", &reason, Kind::Text)
        .map_err(ServiceError::InvalidInput)
        .and_then(|()| Reason::parse(&reason).map_err(ServiceError::invalid));
    let done = match checked {
        Err(e) => Err(e),
        Ok(_) => match (action, device_id.as_deref()) {
            (Action::Reset, _) => state.users.reset(&s.call, &user_id, &reason).await,
            (Action::ClearLockout, _) => {
                state.users.clear_lockout(&s.call, &user_id, &reason).await
            }
            (Action::RevokeDevice, Some(device)) => match check("deviceId", device, Kind::Id) {
                Err(m) => Err(ServiceError::InvalidInput(m)),
                Ok(()) => {
                    state
                        .users
                        .revoke_trusted_device(&s.call, &user_id, device, Some(&reason))
                        .await
                }
            },
            (Action::RevokeDevice, None) => Err(ServiceError::NotFound(
                "no such trusted device for this user".into(),
            )),
        },
    };
    match done {
        Ok(_) => Redirect::to(&user_url(&user_id, "", &[("done", action.name())])).into_response(),
        Err(ServiceError::InvalidInput(message)) => {
            let form = match (action, &device_id) {
                (Action::RevokeDevice, Some(d)) => format!("device-{d}"),
                _ => action.name().to_owned(),
            };
            show(
                &state,
                s,
                &user_id,
                None,
                None,
                Some((form, message)),
                reason,
            )
            .await
        }
        Err(e) => page::error(s.chrome, &e, &s.request_id),
    }
}
