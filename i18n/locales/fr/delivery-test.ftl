### Le message que `testDelivery` envoie par les fournisseurs propres d'un client, en français.
### Variable : $tenant (le nom de l'expéditeur). Il ne contient pas de code, pour que personne ne le prenne pour un code.

delivery-test-subject = Message de test de { $tenant }
delivery-test-body = Ceci est un message de test de { $tenant }. Il montre que les messages arrivent bien à cette adresse. Vous n'avez rien à faire.
delivery-test-sms = Message de test de { $tenant } : les SMS arrivent bien sur ce numéro. Rien à faire.
delivery-test-sms-short = Message de test : les SMS arrivent bien sur ce numéro. Rien à faire.
