# The hosted pages for end users (web/src/hosted). { $tenant } is the organisation's name.
hosted-title-ENROLL = Set up two-step verification
hosted-title-VERIFY = Confirm it's you
hosted-title-MANAGE = Your two-step verification
hosted-cancel = Cancel and go back to { $tenant }
hosted-link-invalid-title = This link can't be used
hosted-link-invalid = The link has expired or has already been used. Go back to the site you came from and start again.
hosted-session-ended-title = This page has expired
hosted-session-ended = Your time on this page has run out. Go back to the site you came from and start again.
hosted-error-title = Something went wrong
hosted-form-expired = The form has expired. Reload the page and try again.
hosted-error-internal = Something went wrong on our side. Try again in a moment.
hosted-throttled = Too many attempts from your network. Try again in { $seconds } seconds.
