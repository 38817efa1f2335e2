//! WebDriver's WebAuthn extension (W3C WebAuthn Level 2, §11): a virtual authenticator in the
//! browser, so a page's `navigator.credentials` ceremonies run as with a real passkey, without
//! a person to touch it.

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value};

/// A command under `/session/{id}/webauthn/`.
#[derive(Debug)]
pub(super) struct WebAuthnCommand {
    /// The path after `webauthn/`.
    pub(super) path: String,
    /// `None`: a GET.
    pub(super) body: Option<Value>,
}

impl WebAuthnCommand {
    /// A platform authenticator that holds passkeys and verifies its user (as a phone's
    /// fingerprint reader does), answering at once.
    pub(super) fn add_platform_authenticator() -> Self {
        Self {
            path: "authenticator".to_owned(),
            body: Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
                "automaticPresenceSimulation": true,
            })),
        }
    }

    /// The credentials `authenticator` holds.
    pub(super) fn credentials(authenticator: &str) -> Self {
        Self {
            path: format!("authenticator/{authenticator}/credentials"),
            body: None,
        }
    }
}

impl WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session is open");
        base_url.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        match &self.body {
            Some(body) => (http::Method::POST, Some(body.to_string())),
            None => (http::Method::GET, None),
        }
    }
}
