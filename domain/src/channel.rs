//! Delivery channels of one-time codes and what a code is for.

use serde::{Deserialize, Serialize};

use crate::Method;

/// How a one-time code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    /// Email over SMTP.
    Email,
    /// SMS through the configured provider.
    Sms,
}

impl Channel {
    /// The verification method a code of this channel is.
    pub fn method(self) -> Method {
        match self {
            Channel::Email => Method::Email,
            Channel::Sms => Method::Sms,
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "EMAIL",
            Channel::Sms => "SMS",
        }
    }
}

/// Why a code was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Purpose {
    /// A second factor at sign-in.
    SignIn,
    /// Proving a newly added email address or phone number.
    VerifyChannel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_the_api_and_event_names() {
        for (channel, name, method) in [
            (Channel::Email, "EMAIL", Method::Email),
            (Channel::Sms, "SMS", Method::Sms),
        ] {
            assert_eq!(channel.as_str(), name);
            assert_eq!(serde_json::to_value(channel).unwrap(), name);
            assert_eq!(channel.method(), method);
        }
    }
}
