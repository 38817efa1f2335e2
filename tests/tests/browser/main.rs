//! Tests in headless Chromium (see `twofold_tests::browser`): pages load as a user's browser
//! loads them, under their Content-Security-Policy, and pass the accessibility check.

mod console;
mod console_pages;
mod graphiql;
mod harness;
mod hosted;
mod hosted_codes;
mod hosted_passkeys;
mod pages;
