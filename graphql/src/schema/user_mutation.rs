//! Mutations of a user's 2FA.

use super::*;

#[Object]
impl UserMutation {
    /// ADMIN. Removes every factor, recovery code and trusted device of the user.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn reset_two_factor(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        reason: String,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .reset(call(ctx)?, &user_id, &reason)
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// ADMIN. Erases the user, for a data-protection request: every factor, contact detail,
    /// recovery code, trusted device and queued notice goes, as with `resetTwoFactor`, and the
    /// user's data keys are destroyed, so their email address, phone number, TOTP secret and
    /// passkeys can never be read again from any stored copy (backups too, with a separate key
    /// database; see `complete` for what was sealed before per-user keys). The history stays,
    /// masked, with a `UserErased` event; the user may enroll again as a new start. The reason
    /// is kept and shown to auditors: put a reference in it, not personal data.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn erase_user(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        reason: String,
    ) -> async_graphql::Result<UserErasure> {
        let erasure = users(ctx)
            .erase(call(ctx)?, &user_id, &reason)
            .await
            .map_err(ApiError)?;
        Ok(erasure.into())
    }

    /// ADMIN. Ends a lockout early.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn clear_lockout(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        reason: String,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .clear_lockout(call(ctx)?, &user_id, &reason)
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP. Registers an email address and sends it a verification code. When the user already
    /// has a factor, `proof` must prove one; a verified address keeps working until the new one
    /// is confirmed. `locale` (a BCP 47 tag such as "ka" or "de-CH", of a supported language:
    /// en, ka, de, fr, es) becomes the user's language for codes and notices.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn add_email(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        email: String,
        proof: Option<ProofInputGql>,
        locale: Option<String>,
    ) -> async_graphql::Result<Challenge> {
        let proof = proof.map(Into::into);
        let c = users(ctx)
            .add_email(
                call(ctx)?,
                &user_id,
                &email,
                proof.as_ref(),
                locale.as_deref(),
            )
            .await
            .map_err(ApiError)?;
        Ok(c.into())
    }

    /// APP. Registers a phone number in international form (+<country code><number>) and sends
    /// it a verification code by SMS. When the user already has a factor, `proof` must prove
    /// one; a verified number keeps working until the new one is confirmed. `locale` as for
    /// addEmail.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn add_phone(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        phone: String,
        proof: Option<ProofInputGql>,
        locale: Option<String>,
    ) -> async_graphql::Result<Challenge> {
        let proof = proof.map(Into::into);
        let c = users(ctx)
            .add_phone(
                call(ctx)?,
                &user_id,
                &phone,
                proof.as_ref(),
                locale.as_deref(),
            )
            .await
            .map_err(ApiError)?;
        Ok(c.into())
    }

    /// APP. Confirms a channel with the code sent by addEmail/addPhone. Returns recovery codes
    /// if this enabled 2FA for the user (null otherwise).
    #[graphql(guard = "RoleGuard(APP)")]
    async fn confirm_channel(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        challenge_id: ID,
        code: String,
        proof: Option<ProofInputGql>,
    ) -> async_graphql::Result<Option<RecoveryCodes>> {
        let proof = proof.map(Into::into);
        let codes = users(ctx)
            .confirm_channel(call(ctx)?, &user_id, &challenge_id, &code, proof.as_ref())
            .await
            .map_err(ApiError)?;
        Ok(codes.map(Into::into))
    }

    /// APP.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn set_preferred_channel(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        channel: ChannelGql,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .set_preferred_channel(call(ctx)?, &user_id, channel.into())
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP. Sends a sign-in code by the given channel, or the user's preferred one. `locale`
    /// as for addEmail (not recorded when an open challenge is returned instead of a new code).
    #[graphql(guard = "RoleGuard(APP)")]
    async fn send_code(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        channel: Option<ChannelGql>,
        idempotency_key: Option<String>,
        locale: Option<String>,
    ) -> async_graphql::Result<Challenge> {
        let c = users(ctx)
            .send_code(
                call(ctx)?,
                &user_id,
                channel.map(Into::into),
                idempotency_key.as_deref(),
                locale.as_deref(),
            )
            .await
            .map_err(ApiError)?;
        Ok(c.into())
    }

    /// APP. Starts (or restarts) TOTP enrollment; the factor is active only after confirmation.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn start_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        account_label: Option<String>,
    ) -> async_graphql::Result<TotpEnrollment> {
        let enrollment = users(ctx)
            .start_totp_enrollment(call(ctx)?, &user_id, account_label.as_deref())
            .await
            .map_err(ApiError)?;
        Ok(enrollment.into())
    }

    /// APP. Activates TOTP. Returns ten recovery codes, shown this once, when TOTP is the user's
    /// first factor; an empty list when it joins or replaces another factor (the codes the user
    /// saved stay valid). When the user already has a factor, `proof` must prove one.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        code: String,
        proof: Option<ProofInputGql>,
    ) -> async_graphql::Result<RecoveryCodes> {
        let proof = proof.map(Into::into);
        let codes = users(ctx)
            .confirm_totp_enrollment(call(ctx)?, &user_id, &code, proof.as_ref())
            .await
            .map_err(ApiError)?;
        Ok(codes.into())
    }

    /// APP. Checks a second factor at sign-in. For EMAIL and SMS, challengeId is required; for
    /// WEBAUTHN too, with the browser's assertion (its `toJSON()`) as JSON in `code`.
    #[graphql(guard = "RoleGuard(APP)")]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn verify(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        code: String,
        challenge_id: Option<ID>,
        #[graphql(default_with = "Some(false)")] trust_device: Option<bool>,
        #[graphql(desc = "With trustDevice: what the user calls the device (1 to 64 characters).")]
        device_label: Option<String>,
    ) -> async_graphql::Result<Verification> {
        let verified = users(ctx)
            .verify(
                call(ctx)?,
                &user_id,
                VerifyInput {
                    factor: factor(method, code, challenge_id),
                    trust_device: trust_device.unwrap_or(false),
                    device_label,
                },
            )
            .await
            .map_err(ApiError)?;
        Ok(verified.into())
    }

    /// APP. Needs a current TOTP, email/SMS (with challengeId) or recovery code. Old codes stop
    /// working.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        code: String,
        challenge_id: Option<ID>,
    ) -> async_graphql::Result<RecoveryCodes> {
        let codes = users(ctx)
            .regenerate_recovery_codes(call(ctx)?, &user_id, &factor(method, code, challenge_id))
            .await
            .map_err(ApiError)?;
        Ok(codes.into())
    }

    /// APP. Needs a current code or a recovery code. Refused with POLICY_VIOLATION while the
    /// tenant enforces 2FA.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn disable_two_factor(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        code: String,
        challenge_id: Option<ID>,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .disable(call(ctx)?, &user_id, &factor(method, code, challenge_id))
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP. Removes one factor (TOTP, EMAIL, SMS, or with WEBAUTHN every passkey and security
    /// key, or only the one `credentialId` names) after checking `proof`, and revokes the
    /// user's trusted devices. Removing the last factor turns 2FA off, which a policy that
    /// enforces 2FA refuses (POLICY_VIOLATION).
    #[graphql(guard = "RoleGuard(APP)")]
    async fn remove_factor(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        proof: ProofInputGql,
        #[graphql(desc = "With WEBAUTHN: the one credential to remove (its id in \
                          webAuthnCredentials).")]
        credential_id: Option<ID>,
    ) -> async_graphql::Result<UserTwoFactor> {
        let service = users(ctx);
        let status = match credential_id {
            None => {
                service
                    .remove_factor(call(ctx)?, &user_id, method.into(), &proof.into())
                    .await
            }
            Some(id) if method == MethodGql::WebAuthn => {
                service
                    .remove_webauthn_credential(call(ctx)?, &user_id, &id, &proof.into())
                    .await
            }
            Some(_) => Err(ServiceError::InvalidInput(
                "credentialId is only used with method: WEBAUTHN".into(),
            )),
        }
        .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP. Starts registering a passkey or security key: `options` for
    /// `navigator.credentials.create`, excluding the user's registered credentials. When the
    /// user already has a factor, `proof` must prove one.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn start_web_authn_registration(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        display_name: String,
        proof: Option<ProofInputGql>,
    ) -> async_graphql::Result<WebAuthnChallenge> {
        let proof = proof.map(Into::into);
        let challenge = users(ctx)
            .start_webauthn_registration(call(ctx)?, &user_id, &display_name, proof.as_ref())
            .await
            .map_err(ApiError)?;
        Ok(challenge.into())
    }

    /// APP. Finishes a registration with the browser's PublicKeyCredential as JSON (its
    /// `toJSON()`). Returns ten recovery codes, shown this once, when this is the user's first
    /// factor (null otherwise). A user has at most 10 passkeys and security keys.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn finish_web_authn_registration(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        challenge_id: ID,
        credential: String,
        label: Option<String>,
    ) -> async_graphql::Result<Option<RecoveryCodes>> {
        let codes = users(ctx)
            .finish_webauthn_registration(
                call(ctx)?,
                &user_id,
                &challenge_id,
                &credential,
                label.as_deref(),
            )
            .await
            .map_err(ApiError)?;
        Ok((!codes.0.is_empty()).then(|| codes.into()))
    }

    /// APP. Starts a sign-in with a passkey or security key: `options` for
    /// `navigator.credentials.get`. The assertion goes to `verify(method: WEBAUTHN, challengeId,
    /// code: <the assertion's toJSON() as JSON>)`.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn start_web_authn_authentication(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<WebAuthnChallenge> {
        let challenge = users(ctx)
            .start_webauthn_authentication(call(ctx)?, &user_id)
            .await
            .map_err(ApiError)?;
        Ok(challenge.into())
    }

    /// APP.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn revoke_trusted_device(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        device_id: ID,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .revoke_trusted_device(call(ctx)?, &user_id, &device_id, None)
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }
}
