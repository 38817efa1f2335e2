//! What an auditor may see of each event: an allow-list written as one exhaustive match per
//! aggregate, so a new event or field shows nothing until someone decides what of it is safe.
//! Sealed secrets (TOTP secrets, email addresses, phone numbers), keyed hashes (API keys,
//! recovery codes, device tokens) and caller-chosen idempotency keys never appear; contact
//! details appear only in their masked form. Of WebAuthn, neither the sealed ceremony state
//! (the challenge) nor the sealed credential (the public key) appears, and an authenticator's
//! credential id only shortened. Of a security notice, its sealed destination never appears,
//! only the masked one. Of a console session, only its short reference appears, never its
//! token or the token's whole hash.

use serde_json::{json, Value};
use twofold_domain::tenant::TenantEvent;
use twofold_domain::user::{SealSlot, UserEvent};

/// Every event type the log can hold: the values `eventTypes` filters accept.
pub const EVENT_TYPES: &[&str] = &[
    // tenant
    "TenantRegistered",
    "ApiKeyIssued",
    "ApiKeyRevoked",
    "TwoFactorPolicySet",
    "DeliverySettingsChanged",
    "DeliveryTested",
    "ConsoleSignedIn",
    "ConsoleSignedOut",
    "TenantErased",
    // user
    "TotpEnrollmentStarted",
    "TotpEnabled",
    "RecoveryCodesGenerated",
    "CodeVerified",
    "RecoveryCodeUsed",
    "VerificationFailed",
    "UserLockedOut",
    "LockoutCleared",
    "EmailFactorAdded",
    "PhoneFactorAdded",
    "CodeSent",
    "CodeDelivered",
    "CodeDeliveryFailed",
    "ChannelVerified",
    "PreferredChannelChosen",
    "LocaleChanged",
    "TwoFactorDisabled",
    "FactorRemoved",
    "DeviceTrusted",
    "DeviceTrustRevoked",
    "SignInEvaluated",
    "TwoFactorReset",
    "UserErased",
    "SecretsResealed",
    "WebAuthnRegistrationStarted",
    "WebAuthnCredentialRegistered",
    "WebAuthnAuthenticationStarted",
    "WebAuthnCredentialUsed",
    "WebAuthnCounterRegressed",
    "WebAuthnCredentialRemoved",
    "NotificationQueued",
    "NotificationDelivered",
    "NotificationDeliveryFailed",
];

/// Characters of an authenticator's credential id an auditor sees: enough to tell a user's keys
/// apart, not the id a relying party elsewhere could match.
const SHOWN_CREDENTIAL_REF_CHARS: usize = 8;

fn shortened(credential_ref: &str) -> String {
    let head: String = credential_ref
        .chars()
        .take(SHOWN_CREDENTIAL_REF_CHARS)
        .collect();
    format!("{head}…")
}

/// The auditor's view of a stored event payload. A payload that does not parse as the event
/// its aggregate records (which would be a bug, or an event from a newer version) shows as an
/// empty object rather than as raw data: the allow-list fails closed.
pub fn audit_data(aggregate_type: &str, payload: &Value) -> Value {
    let shown = match aggregate_type {
        "user" => serde_json::from_value::<UserEvent>(payload.clone())
            .ok()
            .map(|e| user(&e)),
        "tenant" => serde_json::from_value::<TenantEvent>(payload.clone())
            .ok()
            .map(|e| tenant(&e)),
        _ => None,
    };
    shown.unwrap_or_else(|| json!({}))
}

fn tenant(event: &TenantEvent) -> Value {
    match event {
        TenantEvent::TenantRegistered {
            tenant_id,
            name,
            policy,
            registered_at,
        } => json!({
            "tenantId": tenant_id.as_str(),
            "name": name.as_str(),
            "policy": policy,
            "at": registered_at,
        }),
        TenantEvent::ApiKeyIssued {
            key_id,
            role,
            label,
            key_hash: _,
            issued_at,
        } => json!({
            "keyId": key_id.as_str(),
            "role": role.as_str(),
            "label": label.as_str(),
            "at": issued_at,
        }),
        TenantEvent::ApiKeyRevoked { key_id, revoked_at } => json!({
            "keyId": key_id.as_str(),
            "at": revoked_at,
        }),
        TenantEvent::TwoFactorPolicySet {
            previous,
            policy,
            set_at,
        } => json!({ "previous": previous, "policy": policy, "at": set_at }),
        // The credentials are only in the sealed value, which is never shown: an auditor
        // sees that they changed, and the facts an administrator sees.
        TenantEvent::DeliverySettingsChanged {
            version,
            settings,
            sealed,
            changed_at,
        } => json!({
            "version": version,
            "settings": settings,
            "credentials": if sealed.is_some() { "changed" } else { "cleared" },
            "at": changed_at,
        }),
        TenantEvent::DeliveryTested {
            channel,
            destination,
            delivered,
            provider_message_id,
            error,
            retryable,
            at,
        } => json!({
            "channel": channel,
            "destination": destination,
            "delivered": delivered,
            "providerMessageId": provider_message_id,
            "error": error,
            "retryable": retryable,
            "at": at,
        }),
        TenantEvent::ConsoleSignedIn {
            key_id,
            role,
            session,
            signed_in_at,
        } => json!({
            "keyId": key_id.as_str(),
            "role": role.as_str(),
            "session": session.as_str(),
            "at": signed_in_at,
        }),
        TenantEvent::ConsoleSignedOut {
            key_id,
            session,
            signed_out_at,
        } => json!({
            "keyId": key_id.as_str(),
            "session": session.as_str(),
            "at": signed_out_at,
        }),
        TenantEvent::TenantErased { reason, erased_at } => json!({
            "reason": reason.as_str(),
            "at": erased_at,
        }),
    }
}

fn user(event: &UserEvent) -> Value {
    match event {
        UserEvent::TotpEnrollmentStarted {
            secret: _,
            algorithm,
            digits,
            period,
            at,
        } => json!({ "algorithm": algorithm, "digits": digits, "period": period, "at": at }),
        UserEvent::TotpEnabled { step, at } => json!({ "step": step, "at": at }),
        UserEvent::RecoveryCodesGenerated { hashes, at } => {
            json!({ "count": hashes.len(), "at": at })
        }
        UserEvent::CodeVerified {
            method,
            totp_step,
            challenge_id,
            at,
        } => json!({
            "method": method,
            "totpStep": totp_step,
            "challengeId": challenge_id,
            "at": at,
        }),
        UserEvent::RecoveryCodeUsed {
            index,
            remaining,
            at,
        } => json!({ "index": index, "remaining": remaining, "at": at }),
        UserEvent::VerificationFailed {
            method,
            challenge_id,
            consecutive_failures,
            at,
        } => json!({
            "method": method,
            "challengeId": challenge_id,
            "consecutiveFailures": consecutive_failures,
            "at": at,
        }),
        UserEvent::UserLockedOut {
            until,
            lockout,
            admin_required,
            at,
        } => json!({
            "until": until,
            "lockout": lockout,
            "adminRequired": admin_required,
            "at": at,
        }),
        UserEvent::LockoutCleared { by, reason, at } => {
            json!({ "by": by.as_str(), "reason": reason.as_str(), "at": at })
        }
        UserEvent::EmailFactorAdded {
            email: _,
            masked,
            replacing,
            at,
        } => json!({ "masked": masked, "replacing": replacing, "at": at }),
        UserEvent::PhoneFactorAdded {
            phone: _,
            calling_code,
            region,
            masked,
            replacing,
            at,
        } => json!({
            "callingCode": calling_code,
            "region": region,
            "masked": masked,
            "replacing": replacing,
            "at": at,
        }),
        UserEvent::CodeSent {
            challenge_id,
            channel,
            purpose,
            digits,
            expires_at,
            sent_to,
            idempotency_key: _,
            at,
        } => json!({
            "challengeId": challenge_id,
            "channel": channel,
            "purpose": purpose,
            "digits": digits,
            "expiresAt": expires_at,
            "sentTo": sent_to,
            "at": at,
        }),
        UserEvent::CodeDelivered {
            challenge_id,
            provider_message_id,
            at,
        } => json!({
            "challengeId": challenge_id,
            "providerMessageId": provider_message_id,
            "at": at,
        }),
        UserEvent::CodeDeliveryFailed {
            challenge_id,
            error,
            attempts,
            at,
        } => json!({
            "challengeId": challenge_id,
            "error": error,
            "attempts": attempts,
            "at": at,
        }),
        UserEvent::NotificationQueued {
            notification_id,
            kind,
            channel,
            destination: _,
            sent_to,
            at,
        } => json!({
            "notificationId": notification_id,
            "kind": kind,
            "channel": channel,
            "sentTo": sent_to,
            "at": at,
        }),
        UserEvent::NotificationDelivered {
            notification_id,
            provider_message_id,
            at,
        } => json!({
            "notificationId": notification_id,
            "providerMessageId": provider_message_id,
            "at": at,
        }),
        UserEvent::NotificationDeliveryFailed {
            notification_id,
            error,
            attempts,
            at,
        } => json!({
            "notificationId": notification_id,
            "error": error,
            "attempts": attempts,
            "at": at,
        }),
        UserEvent::ChannelVerified {
            channel,
            challenge_id,
            at,
        } => json!({ "channel": channel, "challengeId": challenge_id, "at": at }),
        UserEvent::PreferredChannelChosen { channel, at } => {
            json!({ "channel": channel, "at": at })
        }
        UserEvent::LocaleChanged { locale, at } => json!({ "locale": locale, "at": at }),
        UserEvent::TwoFactorDisabled { method, at } => json!({ "method": method, "at": at }),
        UserEvent::FactorRemoved { method, at } => json!({ "method": method, "at": at }),
        UserEvent::DeviceTrusted {
            device_id,
            token_hash: _,
            label,
            expires_at,
            at,
        } => json!({
            "deviceId": device_id,
            "label": label.as_ref().map(|l| l.as_str()),
            "expiresAt": expires_at,
            "at": at,
        }),
        UserEvent::DeviceTrustRevoked {
            device_id,
            reason,
            explanation,
            at,
        } => json!({
            "deviceId": device_id,
            "reason": reason,
            "explanation": explanation.as_ref().map(|e| e.as_str()),
            "at": at,
        }),
        UserEvent::SignInEvaluated {
            required,
            reason,
            methods,
            trusted_device,
            device_token_rejected,
            sso_login,
            locked_until,
            grace_ends_at,
            at,
        } => json!({
            "required": required,
            "reason": reason,
            "methods": methods,
            "trustedDevice": trusted_device,
            "deviceTokenRejected": device_token_rejected,
            "ssoLogin": sso_login,
            "lockedUntil": locked_until,
            "graceEndsAt": grace_ends_at,
            "at": at,
        }),
        UserEvent::TwoFactorReset { by, reason, at } | UserEvent::UserErased { by, reason, at } => {
            json!({ "by": by.as_str(), "reason": reason.as_str(), "at": at })
        }
        // Which places were resealed, never the seals.
        UserEvent::SecretsResealed { seals, at } => json!({
            "places": seals.iter().map(|(slot, _)| match slot {
                SealSlot::WebAuthnCredential(_) => "WebAuthnCredential".to_owned(),
                SealSlot::Notification { .. } => "Notification".to_owned(),
                other => format!("{other:?}"),
            }).collect::<Vec<_>>(),
            "at": at,
        }),
        UserEvent::WebAuthnRegistrationStarted {
            challenge_id,
            state: _,
            expires_at,
            proven,
            at,
        } => json!({
            "challengeId": challenge_id,
            "expiresAt": expires_at,
            "proven": proven,
            "at": at,
        }),
        UserEvent::WebAuthnCredentialRegistered {
            credential_id,
            credential_ref,
            label,
            credential: _,
            counter,
            challenge_id,
            at,
        } => json!({
            "credentialId": credential_id,
            "authenticatorCredentialId": shortened(credential_ref),
            "label": label.as_ref().map(|l| l.as_str()),
            "counter": counter,
            "challengeId": challenge_id,
            "at": at,
        }),
        UserEvent::WebAuthnAuthenticationStarted {
            challenge_id,
            state: _,
            expires_at,
            at,
        } => json!({ "challengeId": challenge_id, "expiresAt": expires_at, "at": at }),
        UserEvent::WebAuthnCredentialUsed {
            credential_id,
            counter,
            challenge_id,
            at,
        } => json!({
            "credentialId": credential_id,
            "counter": counter,
            "challengeId": challenge_id,
            "at": at,
        }),
        UserEvent::WebAuthnCounterRegressed {
            credential_id,
            stored,
            presented,
            challenge_id,
            at,
        } => json!({
            "credentialId": credential_id,
            "stored": stored,
            "presented": presented,
            "challengeId": challenge_id,
            "at": at,
        }),
        UserEvent::WebAuthnCredentialRemoved { credential_id, at } => {
            json!({ "credentialId": credential_id, "at": at })
        }
    }
}
