### Die Nachricht, die `testDelivery` über die eigenen Anbieter eines Mandanten sendet, auf Deutsch.
### Variable: $tenant (der Name des Absenders). Sie enthält keinen Code, damit niemand sie für einen hält.

delivery-test-subject = Testnachricht von { $tenant }
delivery-test-body = Dies ist eine Testnachricht von { $tenant }. Sie zeigt, dass Nachrichten an diese Adresse ankommen. Sie müssen nichts tun.
delivery-test-sms = Testnachricht von { $tenant }: Nachrichten kommen an diese Nummer an. Sie müssen nichts tun.
delivery-test-sms-short = Testnachricht: Nachrichten kommen an diese Nummer an. Sie müssen nichts tun.
