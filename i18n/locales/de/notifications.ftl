### Sicherheitshinweise auf Deutsch: gesendet, wenn sich die Zwei-Faktor-Anmeldung ändert.
### Variablen und Regeln: siehe en/notifications.ftl. Nie einen Code, ein Geheimnis oder eine
### vollständige Adresse. SMS-Texte: ein Segment (160 GSM-7- oder 70 UCS-2-Zeichen).

notice-when = Zeitpunkt: { $when }
notice-not-you = Falls Sie das nicht waren, wenden Sie sich sofort an den Support von { $tenant }: Jemand hat möglicherweise Zugriff auf Ihr Konto.
notice-if-you = Falls Sie es waren, müssen Sie nichts tun.
notice-footer = Dies ist ein automatischer Sicherheitshinweis von { $tenant }. Er enthält nie einen Code, und { $tenant } wird Sie nie nach einem Code fragen.

notice-factor-added-subject = Neue Anmeldemethode für Ihr { $tenant }-Konto
notice-factor-added-body = { $method ->
    [TOTP] Für Ihr { $tenant }-Konto wurde eine Authenticator-App als zweiter Faktor hinzugefügt.
    [EMAIL] Für Ihr { $tenant }-Konto wurde die E-Mail-Adresse { $masked } als zweiter Faktor hinzugefügt.
    [SMS] Für Ihr { $tenant }-Konto wurde die Telefonnummer { $masked } als zweiter Faktor hinzugefügt.
   *[WEBAUTHN] Für Ihr { $tenant }-Konto wurde ein Passkey oder Sicherheitsschlüssel als zweiter Faktor hinzugefügt.
}
notice-factor-added-sms = { $tenant }: Neue 2FA-Methode für Ihr Konto hinzugefügt. Nicht Sie? Kontaktieren Sie sofort den Support.
notice-factor-added-sms-short = Neue 2FA-Methode für Ihr Konto hinzugefügt. Nicht Sie? Kontaktieren Sie sofort den Support.

notice-factor-replaced-subject = Eine Anmeldemethode Ihres { $tenant }-Kontos wurde geändert
notice-factor-replaced-body = { $method ->
    [TOTP] Die Authenticator-App Ihres { $tenant }-Kontos wurde durch eine neue ersetzt; die Codes der alten App gelten nicht mehr.
    [EMAIL] Die E-Mail-Adresse für Ihre { $tenant }-Codes wurde in { $masked } geändert. An diese Adresse gehen keine Codes mehr.
    [SMS] Die Telefonnummer für Ihre { $tenant }-Codes wurde in { $masked } geändert. An die alte Nummer gehen keine Codes mehr.
   *[WEBAUTHN] Ein Passkey oder Sicherheitsschlüssel Ihres { $tenant }-Kontos wurde ersetzt.
}
notice-factor-replaced-sms = { $tenant }: Eine 2FA-Methode Ihres Kontos wurde geändert. Nicht Sie? Kontaktieren Sie sofort den Support.
notice-factor-replaced-sms-short = Eine 2FA-Methode Ihres Kontos wurde geändert. Nicht Sie? Kontaktieren Sie sofort den Support.

notice-factor-removed-subject = Eine Anmeldemethode wurde aus Ihrem { $tenant }-Konto entfernt
notice-factor-removed-body = { $method ->
    [TOTP] Die Authenticator-App wurde aus Ihrem { $tenant }-Konto entfernt.
    [EMAIL] Die E-Mail-Adresse ist kein zweiter Faktor Ihres { $tenant }-Kontos mehr.
    [SMS] Die Telefonnummer ist kein zweiter Faktor Ihres { $tenant }-Kontos mehr.
   *[WEBAUTHN] Ein Passkey oder Sicherheitsschlüssel wurde aus Ihrem { $tenant }-Konto entfernt.
}
notice-factor-removed-sms = { $tenant }: Eine 2FA-Methode wurde aus Ihrem Konto entfernt. Nicht Sie? Kontaktieren Sie sofort den Support.
notice-factor-removed-sms-short = Eine 2FA-Methode wurde aus Ihrem Konto entfernt. Nicht Sie? Kontaktieren Sie sofort den Support.

notice-two-factor-disabled-subject = Zwei-Faktor-Anmeldung für Ihr { $tenant }-Konto ausgeschaltet
notice-two-factor-disabled-body = Die Zwei-Faktor-Anmeldung für Ihr { $tenant }-Konto wurde ausgeschaltet: Zum Anmelden genügt jetzt Ihr Passwort.
notice-two-factor-disabled-sms = { $tenant }: Die Zwei-Faktor-Anmeldung wurde ausgeschaltet. Nicht Sie? Kontaktieren Sie sofort den Support.
notice-two-factor-disabled-sms-short = Die Zwei-Faktor-Anmeldung wurde ausgeschaltet. Nicht Sie? Kontaktieren Sie sofort den Support.

notice-two-factor-reset-subject = Ihre Zwei-Faktor-Anmeldung bei { $tenant } wurde zurückgesetzt
notice-two-factor-reset-body = Ein Administrator von { $tenant } hat die Zwei-Faktor-Anmeldung Ihres Kontos zurückgesetzt: Alle zweiten Faktoren, Wiederherstellungscodes und vertrauenswürdigen Geräte wurden entfernt. Sie werden gebeten, sie neu einzurichten.
notice-two-factor-reset-sms = { $tenant }: Ein Administrator hat Ihre Zwei-Faktor-Anmeldung zurückgesetzt. Nicht Sie? Support kontaktieren.
notice-two-factor-reset-sms-short = Ein Administrator hat Ihre Zwei-Faktor-Anmeldung zurückgesetzt. Nicht Sie? Support kontaktieren.

notice-recovery-code-used-subject = Ein Wiederherstellungscode Ihres { $tenant }-Kontos wurde verwendet
notice-recovery-code-used-body = Mit einem Wiederherstellungscode wurde sich bei Ihrem { $tenant }-Konto angemeldet. { $remaining ->
    [0] Sie haben keine Wiederherstellungscodes mehr: Erzeugen Sie jetzt neue.
    [one] Sie haben noch 1 Wiederherstellungscode: Erzeugen Sie bald neue.
   *[other] Sie haben noch { $remaining } Wiederherstellungscodes.
}
notice-recovery-code-used-sms = { $tenant }: Wiederherstellungscode verwendet, noch { $remaining } übrig. Nicht Sie? Kontaktieren Sie sofort den Support.
notice-recovery-code-used-sms-short = Wiederherstellungscode verwendet, noch { $remaining } übrig. Nicht Sie? Kontaktieren Sie sofort den Support.

notice-device-trusted-subject = Neues vertrauenswürdiges Gerät für Ihr { $tenant }-Konto
notice-device-trusted-body = Für Ihr { $tenant }-Konto wurde ein Gerät gespeichert: Anmeldungen von diesem Gerät fragen eine Zeit lang nicht nach dem zweiten Faktor.
notice-device-trusted-sms = { $tenant }: Ein neues Gerät wurde für Ihr Konto gespeichert. Nicht Sie? Kontaktieren Sie sofort den Support.
notice-device-trusted-sms-short = Ein neues Gerät wurde für Ihr Konto gespeichert. Nicht Sie? Kontaktieren Sie sofort den Support.

notice-locked-out-subject = Ihr { $tenant }-Konto wurde nach falschen Codes gesperrt
notice-locked-out-body = { $admin ->
    [yes] Für Ihr { $tenant }-Konto wurden zu viele falsche Codes eingegeben. Es bleibt gesperrt, bis ein Administrator es entsperrt.
   *[no] Für Ihr { $tenant }-Konto wurden zu viele falsche Codes eingegeben. Es ist gesperrt bis { $until }.
}
notice-locked-out-sms = { $tenant }: Ihr Konto wurde nach zu vielen falschen Codes gesperrt. Nicht Sie? Support kontaktieren.
notice-locked-out-sms-short = Ihr Konto wurde nach zu vielen falschen Codes gesperrt. Nicht Sie? Support kontaktieren.
