### Códigos de un solo uso por correo y SMS, en español (tuteo).
### Variables: $tenant (nombre del remitente), $code, $validity (un texto validity-*), $count.
### Los SMS empiezan por el código y se mantienen en el alfabeto GSM-7: por eso dicen «clave»
### y no «código» (la ó, como la á, la í y la ú, no está en GSM-7; la é y la ñ sí).

validity-seconds = { $count ->
    [one] { $count } segundo
   *[other] { $count } segundos
}
validity-minutes = { $count ->
    [one] { $count } minuto
   *[other] { $count } minutos
}

email-sign-in-subject = Tu código de acceso a { $tenant }
email-sign-in-intro = Tu código de acceso a { $tenant } es:
email-sign-in-outro = Es válido durante { $validity } y solo se puede usar una vez. No compartas este código con nadie: { $tenant } nunca te lo pedirá. Si no has intentado iniciar sesión en { $tenant }, es posible que alguien conozca tu contraseña: cámbiala.

email-verify-subject = Tu código de verificación de { $tenant }
email-verify-intro = Tu código de verificación de { $tenant } es:
email-verify-outro = Introdúcelo para confirmar esta dirección de correo electrónico. Es válido durante { $validity } y solo se puede usar una vez. Si no has añadido esta dirección a una cuenta de { $tenant }, ignora este correo.

sms-sign-in = { $code } es tu clave de acceso a { $tenant }. Vence en { $validity }. No la compartas con nadie.
sms-sign-in-short = { $code } es tu clave de acceso a { $tenant }. Vence en { $validity }.
sms-sign-in-minimal = { $code } es tu clave de acceso. Vence en { $validity }.
sms-sign-in-bare = { $code } es tu clave de acceso.

sms-verify = { $code } es tu clave para confirmar tu teléfono en { $tenant }. Vence en { $validity }. No la compartas con nadie.
sms-verify-short = { $code } es tu clave para confirmar tu teléfono en { $tenant }. Vence en { $validity }.
sms-verify-minimal = { $code } es tu clave para confirmar tu teléfono. Vence en { $validity }.
sms-verify-bare = { $code } es tu clave para confirmar tu teléfono.
