# Las páginas alojadas para los usuarios finales (web/src/hosted). { $tenant } es el nombre de la organización.
hosted-title-ENROLL = Activar la verificación en dos pasos
hosted-title-VERIFY = Confirma que eres tú
hosted-title-MANAGE = Tu verificación en dos pasos
hosted-cancel = Cancelar y volver a { $tenant }
hosted-link-invalid-title = Este enlace no se puede usar
hosted-link-invalid = El enlace ha caducado o ya se ha usado. Vuelve al sitio del que viniste y empieza de nuevo.
hosted-session-ended-title = Esta página ha caducado
hosted-session-ended = Se ha agotado tu tiempo en esta página. Vuelve al sitio del que viniste y empieza de nuevo.
hosted-error-title = Algo ha salido mal
hosted-form-expired = El formulario ha caducado. Vuelve a cargar la página e inténtalo de nuevo.
hosted-error-internal = Algo ha salido mal por nuestra parte. Inténtalo de nuevo en un momento.
hosted-throttled = Demasiados intentos desde tu red. Inténtalo de nuevo dentro de { $seconds } segundos.
