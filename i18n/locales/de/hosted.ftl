# Die gehosteten Seiten für Endnutzer (web/src/hosted). { $tenant } ist der Name der Organisation.
hosted-title-ENROLL = Bestätigung in zwei Schritten einrichten
hosted-title-VERIFY = Bestätigen Sie, dass Sie es sind
hosted-title-MANAGE = Ihre Bestätigung in zwei Schritten
hosted-cancel = Abbrechen und zurück zu { $tenant }
hosted-link-invalid-title = Dieser Link kann nicht verwendet werden
hosted-link-invalid = Der Link ist abgelaufen oder wurde bereits verwendet. Kehren Sie zur Website zurück, von der Sie kamen, und beginnen Sie erneut.
hosted-session-ended-title = Diese Seite ist abgelaufen
hosted-session-ended = Ihre Zeit auf dieser Seite ist abgelaufen. Kehren Sie zur Website zurück, von der Sie kamen, und beginnen Sie erneut.
hosted-error-title = Etwas ist schiefgelaufen
hosted-form-expired = Das Formular ist abgelaufen. Laden Sie die Seite neu und versuchen Sie es noch einmal.
hosted-error-internal = Bei uns ist etwas schiefgelaufen. Versuchen Sie es gleich noch einmal.
hosted-throttled = Zu viele Versuche aus Ihrem Netzwerk. Versuchen Sie es in { $seconds } Sekunden erneut.
