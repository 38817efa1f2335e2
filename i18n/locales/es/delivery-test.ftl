### El mensaje que `testDelivery` envía por los proveedores propios de un cliente, en español.
### Variable: $tenant (el nombre del remitente). No lleva ningún código, para que nadie lo tome por uno.

delivery-test-subject = Mensaje de prueba de { $tenant }
delivery-test-body = Este es un mensaje de prueba de { $tenant }. Muestra que los mensajes llegan a esta dirección. No tiene que hacer nada.
delivery-test-sms = Mensaje de prueba de { $tenant }: los SMS llegan a este teléfono. No tiene que hacer nada.
delivery-test-sms-short = Mensaje de prueba: los SMS llegan a este teléfono. No tiene que hacer nada.
