### Einmalcodes per E-Mail und SMS, auf Deutsch (Sie-Form).
### Variablen: $tenant (Name des Absenders), $code, $validity (ein validity-*-Text), $count.
### SMS-Texte beginnen mit dem Code und bleiben im GSM-7-Zeichensatz (keine typografischen
### Anführungszeichen oder Gedankenstriche).

validity-seconds = { $count ->
    [one] { $count } Sekunde
   *[other] { $count } Sekunden
}
validity-minutes = { $count ->
    [one] { $count } Minute
   *[other] { $count } Minuten
}

email-sign-in-subject = Ihr Anmeldecode für { $tenant }
email-sign-in-intro = Ihr Anmeldecode für { $tenant } lautet:
email-sign-in-outro = Er ist { $validity } lang gültig und kann nur einmal verwendet werden. Geben Sie diesen Code niemals weiter: { $tenant } wird Sie nie danach fragen. Wenn Sie nicht versucht haben, sich bei { $tenant } anzumelden, kennt möglicherweise jemand Ihr Passwort: Ändern Sie es.

email-verify-subject = Ihr Bestätigungscode für { $tenant }
email-verify-intro = Ihr Bestätigungscode für { $tenant } lautet:
email-verify-outro = Geben Sie ihn ein, um diese E-Mail-Adresse zu bestätigen. Er ist { $validity } lang gültig und kann nur einmal verwendet werden. Wenn Sie diese Adresse nicht zu einem Konto bei { $tenant } hinzugefügt haben, können Sie diese E-Mail ignorieren.

sms-sign-in = { $code } ist Ihr Anmeldecode für { $tenant }. { $validity } gültig. Geben Sie ihn nicht weiter.
sms-sign-in-short = { $code } ist Ihr Anmeldecode für { $tenant }. { $validity } gültig.
sms-sign-in-minimal = { $code } ist Ihr Anmeldecode. { $validity } gültig.
sms-sign-in-bare = { $code } ist Ihr Anmeldecode.

sms-verify = { $code } ist Ihr Bestätigungscode für { $tenant }. { $validity } gültig. Geben Sie ihn nicht weiter.
sms-verify-short = { $code } ist Ihr Bestätigungscode für { $tenant }. { $validity } gültig.
sms-verify-minimal = { $code } ist Ihr Bestätigungscode. { $validity } gültig.
sms-verify-bare = { $code } ist Ihr Bestätigungscode.
