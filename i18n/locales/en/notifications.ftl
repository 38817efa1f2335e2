### Security notices, in English (the fallback language): sent when a user's 2FA changes.
### Variables: $tenant (the sender's name), $method (TOTP, EMAIL, SMS or WEBAUTHN), $masked (the
### new address or number, masked: a•••@example.com, +995 •••• 56), $when and $until (a time,
### already formatted, UTC), $remaining (recovery codes left), $admin (yes or no).
### Never put a code, a secret or a full address in these texts.
### SMS texts (-sms) must fit one segment (160 GSM-7 or 70 UCS-2 characters); the -sms-short
### form, without the tenant's name, is used when the first would not.

notice-when = When: { $when }
notice-not-you = If this was not you, contact { $tenant } support right away: someone may have access to your account.
notice-if-you = If it was you, there is nothing to do.
notice-footer = This is an automatic security notice from { $tenant }. It never contains a code, and { $tenant } will never ask you for one.

notice-factor-added-subject = A new sign-in method was added to your { $tenant } account
notice-factor-added-body = { $method ->
    [TOTP] An authenticator app was added as a second factor to your { $tenant } account.
    [EMAIL] The email address { $masked } was added as a second factor to your { $tenant } account.
    [SMS] The phone number { $masked } was added as a second factor to your { $tenant } account.
   *[WEBAUTHN] A passkey or security key was added as a second factor to your { $tenant } account.
}
notice-factor-added-sms = { $tenant }: a new 2FA method was added to your account. Not you? Contact support now.
notice-factor-added-sms-short = A new 2FA method was added to your account. Not you? Contact support now.

notice-factor-replaced-subject = A sign-in method of your { $tenant } account was changed
notice-factor-replaced-body = { $method ->
    [TOTP] The authenticator app of your { $tenant } account was replaced by a new one; the old app's codes no longer work.
    [EMAIL] The email address for your { $tenant } codes was changed to { $masked }. Codes no longer go to this address.
    [SMS] The phone number for your { $tenant } codes was changed to { $masked }. Codes no longer go to the old number.
   *[WEBAUTHN] A passkey or security key of your { $tenant } account was replaced.
}
notice-factor-replaced-sms = { $tenant }: a 2FA method of your account was changed. Not you? Contact support now.
notice-factor-replaced-sms-short = A 2FA method of your account was changed. Not you? Contact support now.

notice-factor-removed-subject = A sign-in method was removed from your { $tenant } account
notice-factor-removed-body = { $method ->
    [TOTP] The authenticator app was removed from your { $tenant } account.
    [EMAIL] The email address was removed from the second factors of your { $tenant } account.
    [SMS] The phone number was removed from the second factors of your { $tenant } account.
   *[WEBAUTHN] A passkey or security key was removed from your { $tenant } account.
}
notice-factor-removed-sms = { $tenant }: a 2FA method was removed from your account. Not you? Contact support now.
notice-factor-removed-sms-short = A 2FA method was removed from your account. Not you? Contact support now.

notice-two-factor-disabled-subject = Two-step verification was turned off for your { $tenant } account
notice-two-factor-disabled-body = Two-step verification was turned off for your { $tenant } account: signing in now needs only your password.
notice-two-factor-disabled-sms = { $tenant }: two-step verification was turned off. Not you? Contact support now.
notice-two-factor-disabled-sms-short = Two-step verification was turned off. Not you? Contact support now.

notice-two-factor-reset-subject = Your { $tenant } two-step verification was reset
notice-two-factor-reset-body = An administrator of { $tenant } reset two-step verification for your account: all your second factors, recovery codes and trusted devices were removed. You will be asked to set it up again.
notice-two-factor-reset-sms = { $tenant }: an administrator reset your two-step verification. Not you? Contact support.
notice-two-factor-reset-sms-short = An administrator reset your two-step verification. Not you? Contact support.

notice-recovery-code-used-subject = A recovery code was used for your { $tenant } account
notice-recovery-code-used-body = A recovery code was used to sign in to your { $tenant } account. { $remaining ->
    [0] You have no recovery codes left: generate new ones now.
    [one] You have 1 recovery code left: generate new ones soon.
   *[other] You have { $remaining } recovery codes left.
}
notice-recovery-code-used-sms = { $tenant }: a recovery code was used, { $remaining } left. Not you? Contact support now.
notice-recovery-code-used-sms-short = A recovery code was used, { $remaining } left. Not you? Contact support now.

notice-device-trusted-subject = A new trusted device for your { $tenant } account
notice-device-trusted-body = A device was remembered for your { $tenant } account: sign-ins from it will not ask for a second factor for a while.
notice-device-trusted-sms = { $tenant }: a new device was trusted for your account. Not you? Contact support now.
notice-device-trusted-sms-short = A new device was trusted for your account. Not you? Contact support now.

notice-locked-out-subject = Your { $tenant } account was locked after wrong codes
notice-locked-out-body = { $admin ->
    [yes] Too many wrong codes were entered for your { $tenant } account, so it is locked until an administrator unlocks it.
   *[no] Too many wrong codes were entered for your { $tenant } account, so it is locked until { $until }.
}
notice-locked-out-sms = { $tenant }: your account was locked after too many wrong codes. Not you? Contact support.
notice-locked-out-sms-short = Your account was locked after too many wrong codes. Not you? Contact support.
