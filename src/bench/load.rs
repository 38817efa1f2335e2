//! The verify load: `concurrency` clients, each sending one `verify` at a time for a fixed
//! duration. A valid code is computed the way an authenticator app does, for a (user, time step)
//! never used before; a configurable share of requests carry a wrong code instead.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::api::{unix_now, Answer, Api, Enrolled};

const VERIFY: &str =
    "mutation($u: ID!, $c: String!) { verify(userId: $u, method: TOTP, code: $c) { method } }";

/// What one load run did.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Latency of every request, microseconds.
    pub latencies_us: Vec<u64>,
    /// Valid codes sent.
    pub valid_sent: u64,
    /// Valid codes accepted.
    pub valid_accepted: u64,
    /// Valid codes refused, by error code.
    pub valid_refused: HashMap<String, u64>,
    /// Wrong codes sent.
    pub wrong_sent: u64,
    /// Wrong codes answered `INVALID_CODE` (recorded failures).
    pub wrong_invalid: u64,
    /// Wrong codes answered otherwise, by error code (`LOCKED_OUT`; `ACCEPTED` would be a bug).
    pub wrong_other: HashMap<String, u64>,
    /// Requests that failed in transport.
    pub transport_errors: u64,
    /// Times no user had an unused time step left (the run needs more users).
    pub starved: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadResult {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of latency, milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn merge(&mut self, other: LoadResult) {
        self.latencies_us.extend(other.latencies_us);
        self.valid_sent += other.valid_sent;
        self.valid_accepted += other.valid_accepted;
        self.wrong_sent += other.wrong_sent;
        self.wrong_invalid += other.wrong_invalid;
        self.transport_errors += other.transport_errors;
        self.starved += other.starved;
        for (k, v) in other.valid_refused {
            *self.valid_refused.entry(k).or_insert(0) += v;
        }
        for (k, v) in other.wrong_other {
            *self.wrong_other.entry(k).or_insert(0) += v;
        }
    }
}

/// A user in the pool and the last time step it used.
struct Slot {
    index: usize,
    last_step: u64,
}

/// Users with their next usable time step; a slot is taken out while its request runs.
struct Pool {
    users: Vec<Arc<Enrolled>>,
    free: Mutex<VecDeque<Slot>>,
}

impl Pool {
    /// A user and a time step it has not used that the server accepts now (the current step,
    /// or the next one: both are inside the ±1 window).
    fn take(&self) -> Option<(Slot, u64)> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..free.len() {
            let slot = free.pop_front()?;
            let period = self.users[slot.index].totp.step();
            let current = unix_now() / period;
            let step = (slot.last_step + 1).max(current);
            if step <= current + 1 {
                return Some((slot, step));
            }
            free.push_back(slot);
        }
        None
    }

    fn give_back(&self, slot: Slot) {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(slot);
    }
}

/// A small, fast generator for the wrong-code draw (not for anything secret).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A code that is certainly wrong for `user` now: differs from the codes of the steps around
/// the current one.
pub(crate) fn wrong_code(user: &Enrolled) -> String {
    let current = unix_now() / user.totp.step();
    let valid: Vec<String> = (current.saturating_sub(2)..=current + 2)
        .map(|s| user.code_at(s))
        .collect();
    let mut code = user.code_at(current + 7);
    while valid.contains(&code) {
        let bumped: String = code
            .chars()
            .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
            .collect();
        code = bumped;
    }
    code
}

/// Drives `verify` at `concurrency` for `duration`, a `wrong_share` of requests with wrong codes.
pub async fn run(
    api: &Api,
    key: &str,
    users: Vec<Arc<Enrolled>>,
    concurrency: usize,
    duration: Duration,
    wrong_share: f64,
) -> LoadResult {
    let free = users
        .iter()
        .enumerate()
        .map(|(index, u)| Slot {
            index,
            last_step: u.confirmed_step,
        })
        .collect();
    let pool = Arc::new(Pool {
        users,
        free: Mutex::new(free),
    });
    let deadline = Instant::now() + duration;
    clients(concurrency, |w| {
        let api = api.clone();
        let key = key.to_owned();
        let pool = pool.clone();
        async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1000_0001));
            let mut result = LoadResult::default();
            while Instant::now() < deadline {
                if rng.unit() < wrong_share {
                    let index = (rng.next() % pool.users.len() as u64) as usize;
                    let user = &pool.users[index];
                    let code = wrong_code(user);
                    let t = Instant::now();
                    let answer = api
                        .call(&key, VERIFY, json!({ "u": user.user, "c": code }))
                        .await;
                    result.wrong_sent += 1;
                    match answer {
                        Ok(Answer::Error(c, _)) if c == "INVALID_CODE" => result.wrong_invalid += 1,
                        Ok(Answer::Error(c, _)) => *result.wrong_other.entry(c).or_insert(0) += 1,
                        Ok(Answer::Data(_)) => {
                            *result.wrong_other.entry("ACCEPTED".into()).or_insert(0) += 1
                        }
                        Err(_) => result.transport_errors += 1,
                    }
                    result.latencies_us.push(t.elapsed().as_micros() as u64);
                    continue;
                }
                let Some((mut slot, step)) = pool.take() else {
                    result.starved += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let user = &pool.users[slot.index];
                let code = user.code_at(step);
                let t = Instant::now();
                let answer = api
                    .call(&key, VERIFY, json!({ "u": user.user, "c": code }))
                    .await;
                result.latencies_us.push(t.elapsed().as_micros() as u64);
                result.valid_sent += 1;
                match answer {
                    Ok(Answer::Data(_)) => result.valid_accepted += 1,
                    Ok(Answer::Error(c, _)) => *result.valid_refused.entry(c).or_insert(0) += 1,
                    Err(_) => result.transport_errors += 1,
                }
                // Used (or burnt): never sent again, nor a later step with the same code.
                slot.last_step = user.step_recorded_for(step);
                pool.give_back(slot);
            }
            result
        }
    })
    .await
}

/// Runs `concurrency` clients, each made by `client(index)`, until all are done; their results
/// merged, with the wall time they took.
async fn clients<F, Fut>(concurrency: usize, client: F) -> LoadResult
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = LoadResult> + Send + 'static,
{
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency).map(|w| tokio::spawn(client(w))).collect();
    let mut total = LoadResult::default();
    for w in workers {
        if let Ok(r) = w.await {
            total.merge(r);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// The API's floor on this machine: `concurrency` clients sending a GraphQL query that touches
/// no database (`{ __typename }`, authenticated with the same key) for `duration`. No request
/// over this API can go faster, so it bounds what any verify rate could be.
pub async fn floor(api: &Api, key: &str, concurrency: usize, duration: Duration) -> LoadResult {
    let deadline = Instant::now() + duration;
    clients(concurrency, |_| {
        let api = api.clone();
        let key = key.to_owned();
        async move {
            let mut result = LoadResult::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                match api.call(&key, "{ __typename }", json!({})).await {
                    Ok(Answer::Data(_)) => {}
                    Ok(Answer::Error(c, _)) => *result.wrong_other.entry(c).or_insert(0) += 1,
                    Err(_) => result.transport_errors += 1,
                }
                result.latencies_us.push(t.elapsed().as_micros() as u64);
            }
            result
        }
    })
    .await
}
