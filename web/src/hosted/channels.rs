//! Email and SMS on the hosted pages: enrolling an address or a number (a code is sent to it and
//! typed back), and the code page a sign-in by email or SMS shares. A refused number is explained
//! in words before the API is asked; the country selector starts with the tenant's allowed
//! calling codes.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_domain::calling_codes::CallingCode;
use twofold_domain::channel::Channel;
use twofold_domain::contact::{ContactError, PhoneNumber};
use twofold_services::users::ChallengeView;
use twofold_services::ServiceError;

use super::codes::CodesPage;
use super::enroll::{self, enroll_only};
use super::texts::HostedTexts;
use super::visit::Visit;
use super::{not_this_flow, problem, CsrfForm, Frame};
use crate::{page, WebState};

/// Seconds before the page offers to send another code (the service's own limits still apply).
pub(crate) const RESEND_AFTER_SECONDS: i64 = 30;

#[derive(Template)]
#[template(path = "hosted/contact.html")]
struct ContactPage {
    frame: Frame,
    /// `EMAIL` or `SMS`.
    method: &'static str,
    /// `(calling code, label)`; the first is chosen unless the user chose another.
    countries: Vec<(String, String)>,
    country: String,
    /// What the user typed, shown again after a refusal.
    typed: String,
    error: Option<String>,
}

/// The page asking for a code sent by email or SMS, at enrollment or sign-in.
#[derive(Template)]
#[template(path = "hosted/channel_code.html")]
pub(crate) struct CodePage {
    pub(crate) frame: Frame,
    /// `EMAIL` or `SMS`.
    pub(crate) method: &'static str,
    pub(crate) challenge: String,
    /// The masked address or number.
    pub(crate) sent_to: String,
    /// Where the code goes.
    pub(crate) action: &'static str,
    /// Where "send a new code" goes, and what it sends along.
    pub(crate) resend_action: &'static str,
    pub(crate) resend_fields: Vec<(&'static str, String)>,
    /// Days a trusted browser is remembered at sign-in; 0: not offered.
    pub(crate) trust_days: u16,
    /// When "send a new code" is offered (Unix seconds), for the countdown.
    pub(crate) resend_at: i64,
    pub(crate) error: Option<String>,
}

impl ContactPage {
    fn title(&self) -> String {
        self.frame.texts.t(if self.method == "EMAIL" {
            "hosted-email-title"
        } else {
            "hosted-phone-title"
        })
    }
}

impl CodePage {
    fn sent_line(&self) -> String {
        self.frame
            .texts
            .with("hosted-code-sent", &[("to", &self.sent_to)])
    }

    fn trust_label(&self) -> String {
        self.frame.texts.with(
            "hosted-trust-browser",
            &[("days", &self.trust_days.to_string())],
        )
    }

    fn resend_wait(&self) -> String {
        self.frame.texts.t("hosted-resend-wait")
    }

    /// The page for `challenge`, just sent.
    pub(crate) fn sent(frame: Frame, challenge: &ChallengeView) -> Self {
        Self {
            frame,
            method: challenge.channel.as_str(),
            challenge: challenge.id.clone(),
            sent_to: challenge.sent_to.clone(),
            action: "/hosted/enroll/channel/confirm",
            resend_action: "",
            resend_fields: Vec::new(),
            trust_days: 0,
            resend_at: chrono::Utc::now().timestamp() + RESEND_AFTER_SECONDS,
            error: None,
        }
    }

    pub(crate) fn render(&self) -> Response {
        let status = if self.error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        };
        page::html(status, self)
    }
}

/// A masked destination sent back by the code form, to be shown again: short and printable.
pub(crate) fn shown_again(sent_to: &str) -> String {
    if sent_to.chars().count() <= 80 && !sent_to.chars().any(char::is_control) {
        sent_to.to_owned()
    } else {
        String::new()
    }
}

/// The enrollment page instead, for a user who has 2FA already (another tab enrolled them):
/// adding an address or a number then needs proof, which the settings ask for.
async fn already_enrolled(state: &WebState, visit: &Visit) -> Option<Response> {
    match state.users.status(visit.call.tenant(), visit.user()).await {
        Ok(Some(status)) if status.enabled => Some(enroll::show(state, visit, None).await),
        Ok(_) => None,
        Err(e) => Some(super::internal(visit.texts, &e)),
    }
}

fn contact_page(visit: &Visit, channel: Channel, country: &str, typed: &str) -> ContactPage {
    let allowed = &visit.session.policy.allowed_calling_codes;
    let countries: Vec<(String, String)> = if allowed.is_empty() {
        std::iter::once((String::new(), visit.texts.t("hosted-phone-country-choose")))
            .chain(CallingCode::all().map(|c| (c.to_string(), format!("+{c}"))))
            .collect()
    } else {
        allowed
            .iter()
            .map(|c| (c.to_string(), format!("+{c}")))
            .collect()
    };
    ContactPage {
        frame: Frame::of(visit),
        method: channel.method().as_str(),
        country: country.to_owned(),
        countries,
        typed: typed.to_owned(),
        error: None,
    }
}

/// The choice of email or SMS: the field to type the address or number into.
async fn choose(state: &WebState, visit: Visit, channel: Channel, form: CsrfForm) -> Response {
    if let Some(page) = visit.refuse(&form.csrf).or_else(|| enroll_only(&visit)) {
        return page;
    }
    if let Some(page) = already_enrolled(state, &visit).await {
        return visit.allow_return(page);
    }
    if !visit.session.policy.allows(channel.method()) {
        return not_this_flow(visit.texts);
    }
    let page = contact_page(&visit, channel, "", "");
    visit.allow_return(page::html(StatusCode::OK, &page))
}

pub(crate) async fn choose_email(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<CsrfForm>,
) -> Response {
    choose(&state, visit, Channel::Email, form).await
}

pub(crate) async fn choose_sms(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<CsrfForm>,
) -> Response {
    choose(&state, visit, Channel::Sms, form).await
}

#[derive(Deserialize)]
pub(crate) struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    phone: String,
}

/// Why a number cannot be used, in the user's words.
fn contact_problem(texts: HostedTexts, e: &ContactError) -> String {
    match e {
        ContactError::InvalidEmail => texts.t("hosted-email-invalid"),
        ContactError::MissingCountryCode => texts.t("hosted-phone-missing-country"),
        ContactError::InvalidPhone => texts.t("hosted-phone-invalid"),
        ContactError::Extension => texts.t("hosted-phone-extension"),
        ContactError::NotMobile(_) => texts.t("hosted-phone-not-mobile"),
    }
}

/// The number the user means: typed in international form, or national after the chosen
/// country's code (with or without the trunk `0` many countries write first).
fn number(country: &str, typed: &str) -> Result<PhoneNumber, ContactError> {
    let typed = typed.trim();
    if typed.starts_with(['+', '＋']) || typed.starts_with("00") {
        return PhoneNumber::parse(typed);
    }
    let code = CallingCode::parse(country).map_err(|_| ContactError::MissingCountryCode)?;
    PhoneNumber::parse(&format!("+{code}{typed}")).or_else(|first| match typed.strip_prefix('0') {
        Some(national) => PhoneNumber::parse(&format!("+{code}{national}")),
        None => Err(first),
    })
}

/// Sends a code to the address or number typed: the page to type it back.
pub(crate) async fn send(
    state: &WebState,
    visit: &Visit,
    channel: Channel,
    form: &ContactForm,
) -> Response {
    let t = visit.texts;
    let refuse = |message: String| {
        let typed = match channel {
            Channel::Email => &form.email,
            Channel::Sms => &form.phone,
        };
        let mut page = contact_page(visit, channel, &form.country, typed);
        page.error = Some(message);
        page::html(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let language = Some(t.lang());
    let (sent, resend) = match channel {
        Channel::Email => {
            if let Err(message) = visit.may_send(state) {
                return refuse(message);
            }
            (
                state
                    .users
                    .add_email(&visit.call, visit.user(), form.email.trim(), None, language)
                    .await,
                vec![("email", form.email.trim().to_owned())],
            )
        }
        Channel::Sms => {
            let phone = match number(&form.country, &form.phone) {
                Ok(phone) => phone,
                Err(e) => return refuse(contact_problem(t, &e)),
            };
            let allowed = &visit.session.policy.allowed_calling_codes;
            if !allowed.is_empty() && !allowed.contains(&phone.calling_code()) {
                let list: Vec<String> = allowed.iter().map(|c| format!("+{c}")).collect();
                return refuse(t.with(
                    "hosted-phone-country-refused",
                    &[
                        ("code", &format!("+{}", phone.calling_code())),
                        ("allowed", &list.join(", ")),
                    ],
                ));
            }
            if let Err(message) = visit.may_send(state) {
                return refuse(message);
            }
            (
                state
                    .users
                    .add_phone(&visit.call, visit.user(), phone.e164(), None, language)
                    .await,
                vec![("phone", phone.e164().to_owned())],
            )
        }
    };
    match sent {
        Ok(challenge) => {
            let mut page = CodePage::sent(Frame::of(visit), &challenge);
            page.resend_action = match channel {
                Channel::Email => "/hosted/enroll/email/send",
                Channel::Sms => "/hosted/enroll/sms/send",
            };
            page.resend_fields = resend;
            page.render()
        }
        Err(ServiceError::InvalidInput(_)) if channel == Channel::Email => {
            refuse(t.t("hosted-email-invalid"))
        }
        Err(e) => match problem(t, &e) {
            Ok(message) => refuse(message),
            Err(page) => *page,
        },
    }
}

pub(crate) async fn send_email(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<ContactForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf).or_else(|| enroll_only(&visit)) {
        return page;
    }
    if let Some(page) = already_enrolled(&state, &visit).await {
        return visit.allow_return(page);
    }
    let page = send(&state, &visit, Channel::Email, &form).await;
    visit.allow_return(page)
}

pub(crate) async fn send_sms(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<ContactForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf).or_else(|| enroll_only(&visit)) {
        return page;
    }
    if let Some(page) = already_enrolled(&state, &visit).await {
        return visit.allow_return(page);
    }
    let page = send(&state, &visit, Channel::Sms, &form).await;
    visit.allow_return(page)
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    sent_to: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
}

/// The code typed back: the address or number is the user's; the first one brings the
/// recovery codes.
pub(crate) async fn confirm(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf).or_else(|| enroll_only(&visit)) {
        return page;
    }
    if let Some(page) = already_enrolled(&state, &visit).await {
        return visit.allow_return(page);
    }
    let page = match state
        .users
        .confirm_channel(
            &visit.call,
            visit.user(),
            form.challenge.trim(),
            form.code.trim(),
            None,
        )
        .await
    {
        Ok(Some(codes)) if !codes.0.is_empty() => {
            // Codes come with the first factor only: the one the user has now is this one (the
            // form's own `method` is the browser's word, not evidence).
            let method = match state.users.status(visit.call.tenant(), visit.user()).await {
                Ok(Some(status)) => status
                    .methods
                    .into_iter()
                    .find(|m| *m != twofold_domain::Method::RecoveryCode),
                Ok(None) => None,
                Err(e) => return super::internal(visit.texts, &e),
            };
            match method {
                Some(method) => CodesPage::after_enrollment(&state, &visit, method, codes).render(),
                None => enroll::show(&state, &visit, None).await,
            }
        }
        Ok(_) => enroll::show(&state, &visit, None).await,
        Err(e) => match problem(visit.texts, &e) {
            Ok(message) => {
                let email = form.method == "EMAIL";
                let (resend_action, resend_fields) = if email {
                    (
                        "/hosted/enroll/email/send",
                        vec![("email", form.email.clone())],
                    )
                } else {
                    (
                        "/hosted/enroll/sms/send",
                        vec![("phone", form.phone.clone())],
                    )
                };
                CodePage {
                    frame: Frame::of(&visit),
                    method: if email { "EMAIL" } else { "SMS" },
                    challenge: form.challenge.clone(),
                    sent_to: shown_again(&form.sent_to),
                    action: "/hosted/enroll/channel/confirm",
                    resend_action,
                    resend_fields,
                    trust_days: 0,
                    resend_at: 0,
                    error: Some(message),
                }
                .render()
            }
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}
