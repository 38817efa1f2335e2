//! The load during the faults: valid and wrong codes, `sendCode`, enrollments and admin
//! resets, each answer recorded under the fault in progress, and every acknowledged write kept
//! for the accounting afterwards.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::api::{unix_now, Answer, Api, Enrolled};
use crate::bench::load::wrong_code;

const VERIFY: &str =
    "mutation($u: ID!, $c: String!) { verify(userId: $u, method: TOTP, code: $c) { method } }";
const SEND: &str = "mutation($u: ID!) { sendCode(userId: $u, channel: EMAIL) { id } }";
const VERIFY_EMAIL: &str = "mutation($u: ID!, $c: String!, $i: ID!) { verify(userId: $u, method: EMAIL, code: $c, challengeId: $i) { method } }";
const START: &str = "mutation($u: ID!) { startTotpEnrollment(userId: $u) { otpauthUri } }";
const CONFIRM: &str =
    "mutation($u: ID!, $c: String!) { confirmTotpEnrollment(userId: $u, code: $c) { codes } }";
const RESET: &str =
    "mutation($u: ID!) { resetTwoFactor(userId: $u, reason: \"chaos\") { enabled } }";

/// Answers during one fault (or the calm between faults).
#[derive(Debug, Default, Clone)]
pub struct PhaseStats {
    pub sent: u64,
    pub answered: u64,
    /// Answers with an error, by `extensions.code`.
    pub errors: BTreeMap<String, u64>,
    /// Requests that got no answer (connection refused or cut).
    pub unanswered: u64,
    /// The longest time without any successful answer.
    pub longest_gap: Duration,
}

/// What the load saw, shared by its workers and the fault schedule.
pub struct Ledger {
    phase: Mutex<&'static str>,
    stats: Mutex<BTreeMap<&'static str, PhaseStats>>,
    last_success: Mutex<Instant>,
    /// Acknowledged verifies: (user, the time step the server records).
    pub verified: Mutex<Vec<(String, u64)>>,
    /// Users whose enrollment was acknowledged.
    pub enrolled: Mutex<Vec<String>>,
    /// Acknowledged admin resets, by user.
    pub resets: Mutex<BTreeMap<String, u64>>,
    /// Challenge ids `sendCode` acknowledged (a resend within 30 s returns the open one).
    pub sent: Mutex<std::collections::BTreeSet<String>>,
    /// Challenges whose emailed code a verify accepted.
    pub email_verified: Mutex<Vec<String>>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            phase: Mutex::new("calm"),
            stats: Mutex::default(),
            last_success: Mutex::new(Instant::now()),
            verified: Mutex::default(),
            enrolled: Mutex::default(),
            resets: Mutex::default(),
            sent: Mutex::default(),
            email_verified: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// From now on, answers count under `phase`.
    pub fn enter(&self, phase: &'static str) {
        *lock(&self.phase) = phase;
    }

    pub fn stats(&self) -> BTreeMap<&'static str, PhaseStats> {
        lock(&self.stats).clone()
    }

    /// Records one answer; `Ok(None)` a success.
    fn record(&self, outcome: &anyhow::Result<Answer>) {
        let phase = *lock(&self.phase);
        let mut stats = lock(&self.stats);
        let s = stats.entry(phase).or_default();
        s.sent += 1;
        match outcome {
            Ok(Answer::Data(_)) => {
                s.answered += 1;
                let mut last = lock(&self.last_success);
                s.longest_gap = s.longest_gap.max(last.elapsed());
                *last = Instant::now();
            }
            Ok(Answer::Error(code, _)) => {
                s.answered += 1;
                *s.errors.entry(code.clone()).or_insert(0) += 1;
            }
            Err(_) => s.unanswered += 1,
        }
    }
}

/// Who the load works with.
pub struct Cast {
    pub app_key: String,
    pub admin_key: String,
    /// Enrolled users for valid and wrong codes.
    pub signers: Vec<Arc<Enrolled>>,
    /// Users with a verified email address, for `sendCode`.
    pub mailed: Vec<String>,
    /// Where their codes arrive.
    pub mail: crate::bench::sinks::Inbox,
    /// Users who only get wrong codes (a guesser's targets: they end up locked out, which the
    /// signers must not).
    pub targets: Vec<Arc<Enrolled>>,
    /// Users only admins reset (so their resets never disturb the signers' codes).
    pub resettable: Vec<String>,
}

/// Each signer and the next time step it may use; a signer is out while its request runs.
struct Signers {
    users: Vec<Arc<Enrolled>>,
    free: Mutex<VecDeque<(usize, u64)>>,
}

impl Signers {
    fn take(&self) -> Option<(usize, u64)> {
        let mut free = lock(&self.free);
        for _ in 0..free.len() {
            let (i, last) = free.pop_front()?;
            let current = unix_now() / self.users[i].totp.step();
            let step = (last + 1).max(current);
            if step <= current + 1 {
                return Some((i, step));
            }
            free.push_back((i, last));
        }
        None
    }
}

/// When the load stops: set once the fault schedule is over.
pub type Until = Arc<Mutex<Option<Instant>>>;

fn over(until: &Until) -> bool {
    lock(until).is_some_and(|at| Instant::now() >= at)
}

/// Runs `workers` clients until `until` is set and passed.
pub async fn run_until(
    api: Api,
    cast: Arc<Cast>,
    ledger: Arc<Ledger>,
    workers: usize,
    until: Until,
) {
    let signers = Arc::new(Signers {
        free: Mutex::new(
            cast.signers
                .iter()
                .enumerate()
                .map(|(i, u)| (i, u.confirmed_step))
                .collect(),
        ),
        users: cast.signers.clone(),
    });
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (api, cast, ledger, signers, until) = (
                api.clone(),
                cast.clone(),
                ledger.clone(),
                signers.clone(),
                until.clone(),
            );
            tokio::spawn(async move { worker(w, api, cast, ledger, signers, until).await })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn worker(
    w: usize,
    api: Api,
    cast: Arc<Cast>,
    ledger: Arc<Ledger>,
    signers: Arc<Signers>,
    until: Until,
) {
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ ((w as u64 + 1) << 17);
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut enrollments = 0;
    while !over(&until) {
        let pick = next() % 100;
        if pick < 70 {
            let Some((i, step)) = signers.take() else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let user = &signers.users[i];
            let answer = api
                .call(
                    &cast.app_key,
                    VERIFY,
                    json!({ "u": user.user, "c": user.code_at(step) }),
                )
                .await;
            ledger.record(&answer);
            let recorded = user.step_recorded_for(step);
            if matches!(answer, Ok(Answer::Data(_))) {
                lock(&ledger.verified).push((user.user.clone(), recorded));
            }
            // Used, refused or lost in flight: never sent again.
            lock(&signers.free).push_back((i, recorded));
        } else if pick < 80 {
            let user = &cast.targets[(next() as usize) % cast.targets.len()];
            let answer = api
                .call(
                    &cast.app_key,
                    VERIFY,
                    json!({ "u": user.user, "c": wrong_code(user) }),
                )
                .await;
            ledger.record(&answer);
        } else if pick < 90 && !cast.mailed.is_empty() {
            let user = &cast.mailed[(next() as usize) % cast.mailed.len()];
            let answer = api.call(&cast.app_key, SEND, json!({ "u": user })).await;
            ledger.record(&answer);
            if let Ok(Answer::Data(d)) = &answer {
                if let Some(id) = d["sendCode"]["id"].as_str() {
                    lock(&ledger.sent).insert(id.to_owned());
                    sign_in_by_email(&api, &cast, &ledger, user, id).await;
                }
            }
        } else if pick < 95 {
            enrollments += 1;
            let user = format!("new-{w}-{enrollments}");
            enroll(&api, &cast.app_key, &ledger, &user).await;
        } else if !cast.resettable.is_empty() {
            let user = &cast.resettable[(next() as usize) % cast.resettable.len()];
            let answer = api.call(&cast.admin_key, RESET, json!({ "u": user })).await;
            ledger.record(&answer);
            if matches!(answer, Ok(Answer::Data(_))) {
                *lock(&ledger.resets).entry(user.clone()).or_insert(0) += 1;
            }
        }
    }
}

/// The user reads the emailed code and types it (closing the challenge, so the next
/// `sendCode` sends a new one). The code may never come while the providers are down.
async fn sign_in_by_email(api: &Api, cast: &Cast, ledger: &Ledger, user: &str, challenge: &str) {
    let email = format!("{user}@example.com");
    let deadline = Instant::now() + Duration::from_secs(3);
    let code = loop {
        let arrived = cast
            .mail
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.to == email && m.key.contains(challenge))
            .and_then(|m| {
                crate::bench::sinks::first_digits(&m.body[m.body.find("code").unwrap_or(0)..], 6)
            });
        if let Some(code) = arrived {
            break code;
        }
        if Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let answer = api
        .call(
            &cast.app_key,
            VERIFY_EMAIL,
            json!({ "u": user, "c": code, "i": challenge }),
        )
        .await;
    ledger.record(&answer);
    if matches!(answer, Ok(Answer::Data(_))) {
        lock(&ledger.email_verified).push(challenge.to_owned());
    }
}

/// A new user's enrollment, as a tenant's app and an authenticator app do it.
async fn enroll(api: &Api, key: &str, ledger: &Ledger, user: &str) {
    let started = api.call(key, START, json!({ "u": user })).await;
    ledger.record(&started);
    let Ok(Answer::Data(d)) = started else { return };
    let Some(Ok(totp)) = d["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .map(totp_rs::Totp::from_url)
    else {
        return;
    };
    let code = totp.generate(unix_now()).to_string();
    let confirmed = api
        .call(key, CONFIRM, json!({ "u": user, "c": code }))
        .await;
    ledger.record(&confirmed);
    if matches!(confirmed, Ok(Answer::Data(_))) {
        lock(&ledger.enrolled).push(user.to_owned());
    }
}
