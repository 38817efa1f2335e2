### Email and SMS one-time codes, in English (the fallback language).
### Variables: $tenant (the sender's name), $code, $validity (a validity-* text), $count.
### SMS texts start with the code; the -short, -minimal and -bare forms are used when the whole
### text would not fit one SMS segment. Keep them GSM-7 (no curly quotes or dashes).

validity-seconds = { $count ->
    [one] { $count } second
   *[other] { $count } seconds
}
validity-minutes = { $count ->
    [one] { $count } minute
   *[other] { $count } minutes
}

email-sign-in-subject = Your { $tenant } sign-in code
email-sign-in-intro = Your { $tenant } sign-in code is:
email-sign-in-outro = It is valid for { $validity } and can be used once. Never share this code: { $tenant } will never ask you for it. If you did not try to sign in to { $tenant }, someone may know your password: change it.

email-verify-subject = Your { $tenant } verification code
email-verify-intro = Your { $tenant } verification code is:
email-verify-outro = Enter it to confirm this email address. It is valid for { $validity } and can be used once. If you did not add this address to an account at { $tenant }, ignore this email.

sms-sign-in = { $code } is your { $tenant } sign-in code. Valid for { $validity }. Do not share it.
sms-sign-in-short = { $code } is your { $tenant } sign-in code. Valid for { $validity }.
sms-sign-in-minimal = { $code } is your sign-in code. Valid for { $validity }.
sms-sign-in-bare = { $code } is your sign-in code.

sms-verify = { $code } is your { $tenant } verification code. Valid for { $validity }. Do not share it.
sms-verify-short = { $code } is your { $tenant } verification code. Valid for { $validity }.
sms-verify-minimal = { $code } is your verification code. Valid for { $validity }.
sms-verify-bare = { $code } is your verification code.
