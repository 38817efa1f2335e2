### Codes à usage unique par e-mail et SMS, en français (vouvoiement).
### Variables : $tenant (nom de l'expéditeur), $code, $validity (un texte validity-*), $count.
### Les SMS commencent par le code et restent dans l'alphabet GSM-7 : pas d'espace insécable,
### pas d'apostrophe typographique, pas de ç, â, ê, î, ô ni û.
### Dans les e-mails, l'espace avant « : » est insécable (U+00A0).

validity-seconds = { $count ->
    [one] { $count } seconde
   *[other] { $count } secondes
}
validity-minutes = { $count ->
    [one] { $count } minute
   *[other] { $count } minutes
}

email-sign-in-subject = Votre code de connexion { $tenant }
email-sign-in-intro = Votre code de connexion { $tenant } est :
email-sign-in-outro = Il est valable { $validity } et ne peut être utilisé qu'une seule fois. Ne communiquez jamais ce code : { $tenant } ne vous le demandera jamais. Si vous n'avez pas essayé de vous connecter à { $tenant }, quelqu'un connaît peut-être votre mot de passe : changez-le.

email-verify-subject = Votre code de vérification { $tenant }
email-verify-intro = Votre code de vérification { $tenant } est :
email-verify-outro = Saisissez-le pour confirmer cette adresse e-mail. Il est valable { $validity } et ne peut être utilisé qu'une seule fois. Si vous n'avez pas ajouté cette adresse à un compte { $tenant }, ignorez cet e-mail.

sms-sign-in = { $code } est votre code de connexion { $tenant }. Valable { $validity }. Ne le communiquez à personne.
sms-sign-in-short = { $code } est votre code de connexion { $tenant }. Valable { $validity }.
sms-sign-in-minimal = { $code } est votre code de connexion. Valable { $validity }.
sms-sign-in-bare = { $code } est votre code de connexion.

sms-verify = { $code } est votre code de vérification { $tenant }. Valable { $validity }. Ne le communiquez à personne.
sms-verify-short = { $code } est votre code de vérification { $tenant }. Valable { $validity }.
sms-verify-minimal = { $code } est votre code de vérification. Valable { $validity }.
sms-verify-bare = { $code } est votre code de vérification.
