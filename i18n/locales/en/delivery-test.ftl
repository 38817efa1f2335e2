### The message `testDelivery` sends through a tenant's own providers, in English.
### Variables: $tenant (the sender's name). It holds no code, so no one mistakes it for one.

delivery-test-subject = Test message from { $tenant }
delivery-test-body = This is a test message from { $tenant }. It shows that messages reach this address. There is nothing to do.
delivery-test-sms = Test message from { $tenant }: messages reach this number. Nothing to do.
delivery-test-sms-short = Test message: messages reach this number. Nothing to do.
