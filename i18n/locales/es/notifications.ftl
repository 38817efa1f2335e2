### Avisos de seguridad en español: se envían cuando cambia la verificación en dos pasos de un usuario.
### Variables y reglas: ver en/notifications.ftl. Nunca un código, un secreto ni una dirección completa.
### SMS: un solo segmento (160 caracteres GSM-7 o 70 UCS-2; las tildes de á, í, ó, ú obligan a UCS-2).

notice-when = Fecha: { $when }
notice-not-you = Si no fue usted, contacte de inmediato con el soporte de { $tenant }: es posible que alguien tenga acceso a su cuenta.
notice-if-you = Si fue usted, no tiene que hacer nada.
notice-footer = Este es un aviso de seguridad automático de { $tenant }. Nunca contiene un código, y { $tenant } nunca le pedirá uno.

notice-factor-added-subject = Nuevo método de inicio de sesión en su cuenta de { $tenant }
notice-factor-added-body = { $method ->
    [TOTP] Se añadió una aplicación de autenticación como segundo factor a su cuenta de { $tenant }.
    [EMAIL] Se añadió la dirección de correo { $masked } como segundo factor a su cuenta de { $tenant }.
    [SMS] Se añadió el número de teléfono { $masked } como segundo factor a su cuenta de { $tenant }.
   *[WEBAUTHN] Se añadió una llave de acceso o llave de seguridad como segundo factor a su cuenta de { $tenant }.
}
notice-factor-added-sms = { $tenant }: nuevo método 2FA añadido. ¿No fue usted? Avísenos.
notice-factor-added-sms-short = Nuevo método 2FA añadido a su cuenta. ¿No fue usted? Avísenos.

notice-factor-replaced-subject = Se cambió un método de inicio de sesión de su cuenta de { $tenant }
notice-factor-replaced-body = { $method ->
    [TOTP] La aplicación de autenticación de su cuenta de { $tenant } se sustituyó por una nueva; los códigos de la anterior ya no sirven.
    [EMAIL] La dirección de correo de sus códigos de { $tenant } se cambió a { $masked }. Los códigos ya no llegarán a esta dirección.
    [SMS] El número de teléfono de sus códigos de { $tenant } se cambió a { $masked }. Los códigos ya no llegarán al número anterior.
   *[WEBAUTHN] Se sustituyó una llave de acceso o llave de seguridad de su cuenta de { $tenant }.
}
notice-factor-replaced-sms = { $tenant }: se cambió un método 2FA. ¿No fue usted? Avísenos.
notice-factor-replaced-sms-short = Se cambió un método 2FA de su cuenta. ¿No fue usted? Avísenos.

notice-factor-removed-subject = Se quitó un método de inicio de sesión de su cuenta de { $tenant }
notice-factor-removed-body = { $method ->
    [TOTP] Se quitó la aplicación de autenticación de su cuenta de { $tenant }.
    [EMAIL] La dirección de correo ya no es un segundo factor de su cuenta de { $tenant }.
    [SMS] El número de teléfono ya no es un segundo factor de su cuenta de { $tenant }.
   *[WEBAUTHN] Se quitó una llave de acceso o llave de seguridad de su cuenta de { $tenant }.
}
notice-factor-removed-sms = { $tenant }: se quitó un método 2FA. ¿No fue usted? Avísenos.
notice-factor-removed-sms-short = Se quitó un método 2FA de su cuenta. ¿No fue usted? Avísenos.

notice-two-factor-disabled-subject = Verificación en dos pasos desactivada en su cuenta de { $tenant }
notice-two-factor-disabled-body = Se desactivó la verificación en dos pasos de su cuenta de { $tenant }: ahora basta con su contraseña para iniciar sesión.
notice-two-factor-disabled-sms = { $tenant }: se desactivó su 2FA. ¿No fue usted? Avísenos.
notice-two-factor-disabled-sms-short = Se desactivó la verificación en dos pasos. ¿No fue usted? Avísenos.

notice-two-factor-reset-subject = Se restableció su verificación en dos pasos de { $tenant }
notice-two-factor-reset-body = Un administrador de { $tenant } restableció la verificación en dos pasos de su cuenta: se eliminaron todos sus segundos factores, códigos de recuperación y dispositivos de confianza. Se le pedirá que la configure de nuevo.
notice-two-factor-reset-sms = { $tenant }: un administrador restableció su 2FA. ¿No fue usted? Avísenos.
notice-two-factor-reset-sms-short = Un administrador restableció su 2FA. ¿No fue usted? Avísenos.

notice-recovery-code-used-subject = Se usó un código de recuperación de su cuenta de { $tenant }
notice-recovery-code-used-body = Se usó un código de recuperación para iniciar sesión en su cuenta de { $tenant }. { $remaining ->
    [0] No le quedan códigos de recuperación: genere otros nuevos ahora.
    [one] Le queda 1 código de recuperación: genere otros nuevos pronto.
   *[other] Le quedan { $remaining } códigos de recuperación.
}
notice-recovery-code-used-sms = { $tenant }: código de recuperación usado; quedan { $remaining }. ¿No fue usted? Avísenos.
notice-recovery-code-used-sms-short = Código de recuperación usado; quedan { $remaining }. ¿No fue usted? Avísenos.

notice-device-trusted-subject = Nuevo dispositivo de confianza en su cuenta de { $tenant }
notice-device-trusted-body = Se recordó un dispositivo para su cuenta de { $tenant }: los inicios de sesión desde él no pedirán un segundo factor durante un tiempo.
notice-device-trusted-sms = { $tenant }: nuevo dispositivo de confianza. ¿No fue usted? Avísenos.
notice-device-trusted-sms-short = Nuevo dispositivo de confianza en su cuenta. ¿No fue usted? Avísenos.

notice-locked-out-subject = Su cuenta de { $tenant } se bloqueó tras varios códigos erróneos
notice-locked-out-body = { $admin ->
    [yes] Se introdujeron demasiados códigos erróneos en su cuenta de { $tenant }, así que queda bloqueada hasta que un administrador la desbloquee.
   *[no] Se introdujeron demasiados códigos erróneos en su cuenta de { $tenant }, así que está bloqueada hasta el { $until }.
}
notice-locked-out-sms = { $tenant }: su cuenta se bloqueó. ¿No fue usted? Avísenos.
notice-locked-out-sms-short = Su cuenta se bloqueó por códigos erróneos. ¿No fue usted? Avísenos.
