# Les pages hébergées pour les utilisateurs finaux (web/src/hosted). { $tenant } est le nom de l'organisation.
hosted-title-ENROLL = Activer la validation en deux étapes
hosted-title-VERIFY = Confirmez qu'il s'agit bien de vous
hosted-title-MANAGE = Votre validation en deux étapes
hosted-cancel = Annuler et revenir à { $tenant }
hosted-link-invalid-title = Ce lien ne peut pas être utilisé
hosted-link-invalid = Le lien a expiré ou a déjà été utilisé. Revenez sur le site d'où vous venez et recommencez.
hosted-session-ended-title = Cette page a expiré
hosted-session-ended = Le temps passé sur cette page est écoulé. Revenez sur le site d'où vous venez et recommencez.
hosted-error-title = Un problème est survenu
hosted-form-expired = Le formulaire a expiré. Rechargez la page et réessayez.
hosted-error-internal = Un problème est survenu de notre côté. Réessayez dans un instant.
hosted-throttled = Trop de tentatives depuis votre réseau. Réessayez dans { $seconds } secondes.
