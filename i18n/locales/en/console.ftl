# The console for organisation admins and auditors (English and Georgian only).

console-title = Twofold console
console-skip = Skip to content
console-nav-label = Console sections
console-nav-overview = Overview
console-nav-sign-out = Sign out
console-language = Language
console-language-change = Change
console-signed-in = { $tenant } · { $role } key { $key }
console-read-only = You are signed in with an AUDITOR key: you can read everything and change nothing.

console-sign-in-title = Sign in to the console
console-sign-in-intro = Use an ADMIN or AUDITOR API key of your organisation. It is exchanged for a session at once and is not kept in your browser.
console-sign-in-key = API key
console-sign-in-submit = Sign in
console-sign-in-failed = That key is not valid or has been revoked.
console-sign-in-forbidden = Only ADMIN and AUDITOR keys can sign in to the console.
console-sign-in-throttled = Too many attempts from your address. Try again in { $seconds } seconds.
console-form-expired = This form has expired. Reload the page and try again.
console-signed-out = You have signed out.
console-session-ended = Your session has ended. Sign in again.

console-sign-out-title = Sign out
console-sign-out-confirm = Sign out of the console on this browser?
console-sign-out-submit = Sign out

console-overview-title = Overview
console-overview-users-seen = Users seen
console-overview-enrolled = With two-factor authentication
console-overview-not-enrolled = Without two-factor authentication
console-overview-enforcement = Two-factor authentication required
console-overview-enforced = Yes, since { $since }
console-overview-not-enforced = No

console-error-title = Something went wrong
console-error-internal = An internal error occurred. Give this request id to your operator: { $request }
console-not-found = There is no such page.
