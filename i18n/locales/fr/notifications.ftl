### Avis de sécurité en français : envoyés quand la validation en deux étapes d'un utilisateur change.
### Variables et règles : voir en/notifications.ftl. Jamais de code, de secret ni d'adresse complète.
### SMS : un seul segment (160 caractères GSM-7 ou 70 UCS-2) ; pas d'espace insécable ni de
### lettre hors GSM-7 (ê, ç, ô...) dans les SMS, qui passeraient sinon en UCS-2.

notice-when = Date : { $when }
notice-not-you = Si ce n'était pas vous, contactez immédiatement le support de { $tenant } : quelqu'un a peut-être accès à votre compte.
notice-if-you = Si c'était vous, vous n'avez rien à faire.
notice-footer = Ceci est un avis de sécurité automatique de { $tenant }. Il ne contient jamais de code, et { $tenant } ne vous demandera jamais de code.

notice-factor-added-subject = Nouvelle méthode de connexion sur votre compte { $tenant }
notice-factor-added-body = { $method ->
    [TOTP] Une application d'authentification a été ajoutée comme second facteur à votre compte { $tenant }.
    [EMAIL] L'adresse e-mail { $masked } a été ajoutée comme second facteur à votre compte { $tenant }.
    [SMS] Le numéro de téléphone { $masked } a été ajouté comme second facteur à votre compte { $tenant }.
   *[WEBAUTHN] Une clé d'accès ou clé de sécurité a été ajoutée comme second facteur à votre compte { $tenant }.
}
notice-factor-added-sms = { $tenant } : une nouvelle méthode 2FA a été ajoutée à votre compte. Pas vous ? Contactez le support.
notice-factor-added-sms-short = Une nouvelle méthode 2FA a été ajoutée à votre compte. Pas vous ? Contactez le support.

notice-factor-replaced-subject = Une méthode de connexion de votre compte { $tenant } a été modifiée
notice-factor-replaced-body = { $method ->
    [TOTP] L'application d'authentification de votre compte { $tenant } a été remplacée par une nouvelle ; les codes de l'ancienne ne fonctionnent plus.
    [EMAIL] L'adresse e-mail de vos codes { $tenant } a été remplacée par { $masked }. Les codes ne sont plus envoyés à cette adresse.
    [SMS] Le numéro de téléphone de vos codes { $tenant } a été remplacé par { $masked }. Les codes ne sont plus envoyés à l'ancien numéro.
   *[WEBAUTHN] Une clé d'accès ou clé de sécurité de votre compte { $tenant } a été remplacée.
}
notice-factor-replaced-sms = { $tenant } : une méthode 2FA de votre compte a été modifiée. Pas vous ? Contactez le support.
notice-factor-replaced-sms-short = Une méthode 2FA de votre compte a été modifiée. Pas vous ? Contactez le support.

notice-factor-removed-subject = Une méthode de connexion a été retirée de votre compte { $tenant }
notice-factor-removed-body = { $method ->
    [TOTP] L'application d'authentification a été retirée de votre compte { $tenant }.
    [EMAIL] L'adresse e-mail n'est plus un second facteur de votre compte { $tenant }.
    [SMS] Le numéro de téléphone n'est plus un second facteur de votre compte { $tenant }.
   *[WEBAUTHN] Une clé d'accès ou clé de sécurité a été retirée de votre compte { $tenant }.
}
notice-factor-removed-sms = { $tenant } : une méthode 2FA a été retirée de votre compte. Pas vous ? Contactez le support.
notice-factor-removed-sms-short = Une méthode 2FA a été retirée de votre compte. Pas vous ? Contactez le support.

notice-two-factor-disabled-subject = Validation en deux étapes désactivée sur votre compte { $tenant }
notice-two-factor-disabled-body = La validation en deux étapes a été désactivée sur votre compte { $tenant } : votre mot de passe suffit désormais pour vous connecter.
notice-two-factor-disabled-sms = { $tenant } : la validation en deux étapes a été désactivée. Pas vous ? Contactez le support.
notice-two-factor-disabled-sms-short = La validation en deux étapes a été désactivée. Pas vous ? Contactez le support.

notice-two-factor-reset-subject = Votre validation en deux étapes { $tenant } a été réinitialisée
notice-two-factor-reset-body = Un administrateur de { $tenant } a réinitialisé la validation en deux étapes de votre compte : tous vos seconds facteurs, codes de récupération et appareils de confiance ont été supprimés. Il vous sera demandé de la configurer à nouveau.
notice-two-factor-reset-sms = { $tenant } : un administrateur a réinitialisé votre validation en deux étapes. Pas vous ? Contactez le support.
notice-two-factor-reset-sms-short = Un administrateur a réinitialisé votre validation en deux étapes. Pas vous ? Contactez le support.

notice-recovery-code-used-subject = Un code de récupération de votre compte { $tenant } a été utilisé
notice-recovery-code-used-body = Un code de récupération a servi à vous connecter à votre compte { $tenant }. { $remaining ->
    [0] Il ne vous reste aucun code de récupération : générez-en de nouveaux dès maintenant.
    [one] Il vous reste 1 code de récupération : générez-en de nouveaux bientôt.
   *[other] Il vous reste { $remaining } codes de récupération.
}
notice-recovery-code-used-sms = { $tenant } : un code de récupération a été utilisé, il en reste { $remaining }. Pas vous ? Contactez le support.
notice-recovery-code-used-sms-short = Un code de récupération a été utilisé, il en reste { $remaining }. Pas vous ? Contactez le support.

notice-device-trusted-subject = Nouvel appareil de confiance pour votre compte { $tenant }
notice-device-trusted-body = Un appareil a été mémorisé pour votre compte { $tenant } : les connexions depuis cet appareil ne demanderont pas de second facteur pendant un certain temps.
notice-device-trusted-sms = { $tenant } : un nouvel appareil a été mémorisé pour votre compte. Pas vous ? Contactez le support.
notice-device-trusted-sms-short = Un nouvel appareil a été mémorisé pour votre compte. Pas vous ? Contactez le support.

notice-locked-out-subject = Votre compte { $tenant } a été bloqué après des codes erronés
notice-locked-out-body = { $admin ->
    [yes] Trop de codes erronés ont été saisis pour votre compte { $tenant } : il reste bloqué jusqu'à ce qu'un administrateur le débloque.
   *[no] Trop de codes erronés ont été saisis pour votre compte { $tenant } : il est bloqué jusqu'au { $until }.
}
notice-locked-out-sms = { $tenant } : votre compte a été bloqué après trop de codes erronés. Pas vous ? Contactez le support.
notice-locked-out-sms-short = Votre compte a été bloqué après trop de codes erronés. Pas vous ? Contactez le support.
