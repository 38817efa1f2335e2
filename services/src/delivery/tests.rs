//! The worker's bookkeeping around a send, on the in-memory gateway.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use twofold_domain::channel::Channel;
use twofold_domain::user::UserEvent;

use super::{DeliveryWorker, RetryPolicy};
use crate::ports::{
    CodeSender, DeliveryJob, DeliveryKind, DeliveryQueue, DeliveryReceipt, NoticeSender,
    OutgoingCode, OutgoingNotice, SendError,
};
use crate::testing::{admin, app, user, Harness};
use crate::users::UserService;
use crate::StoreError;

/// The job of `id`, a code or a notice, to bob's email address, as the worker claims it.
fn bobs_email_job(id: &str, kind: DeliveryKind) -> DeliveryJob {
    DeliveryJob {
        challenge_id: id.to_owned(),
        kind,
        user: user("bob"),
        channel: Channel::Email,
        attempts: 0,
        lease: chrono::Utc::now(),
    }
}

/// A queue that remembers which jobs were finished, and how.
#[derive(Default)]
struct Finishes(Mutex<Vec<(String, bool)>>);

#[async_trait]
impl DeliveryQueue for Finishes {
    async fn claim_up_to(&self, _: Duration, _: usize) -> Result<Vec<DeliveryJob>, StoreError> {
        Ok(Vec::new())
    }
    async fn finish(
        &self,
        job: &DeliveryJob,
        delivered: bool,
        _: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut finished = self.0.lock().unwrap();
        finished.push((job.challenge_id.clone(), delivered));
        Ok(true)
    }
    async fn prune(&self, _: Duration) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn retry_later(
        &self,
        _: &DeliveryJob,
        _: u32,
        _: Duration,
        _: &str,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// A provider that accepts every notice, counting them, and takes the database down for the
/// next `outage` commands right after the first.
struct OutageAfterSending {
    gateway: Arc<crate::testing::MemGateway<twofold_domain::user::User>>,
    outage: usize,
    sent: Mutex<usize>,
}

#[async_trait]
impl CodeSender for OutageAfterSending {
    async fn send(&self, _: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        unreachable!("only notices are sent here")
    }
}

#[async_trait]
impl NoticeSender for OutageAfterSending {
    async fn send_notice(&self, _: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        let mut sent = self.sent.lock().unwrap();
        if *sent == 0 {
            self.gateway.fail_next(self.outage);
        }
        *sent += 1;
        Ok(DeliveryReceipt {
            provider_message_id: Some("accepted-1".into()),
        })
    }
}

// A notice the provider accepted while the database went away is recorded once it is back,
// not left to its lease, whose retry would send it a second time; while it stays away, the
// worker gives up before half the lease is gone.
#[tokio::test(start_paused = true)]
async fn a_sent_notice_is_recorded_once_the_database_is_back_not_sent_again() {
    crate::recognise_unavailable(|e| e.is::<crate::testing::Outage>());
    let h = Harness::new();
    h.confirmed_email("bob", "bob@example.com").await;
    h.users
        .reset(&admin(), "bob", "lost his phone")
        .await
        .unwrap();
    let notification_id = h
        .events("bob")
        .await
        .into_iter()
        .find_map(|e| match e {
            UserEvent::NotificationQueued {
                notification_id, ..
            } => Some(notification_id),
            _ => None,
        })
        .expect("the reset is told to bob's address");

    let sender = Arc::new(OutageAfterSending {
        gateway: h.gateway.clone(),
        outage: 3,
        sent: Mutex::new(0),
    });
    let worker = DeliveryWorker::new(
        h.users.clone(),
        Arc::new(Finishes::default()),
        sender.clone(),
        sender.clone(),
        RetryPolicy::default(),
    );
    worker
        .deliver_claimed(bobs_email_job(&notification_id, DeliveryKind::Notification))
        .await
        .expect("recorded once the database is back");

    assert_eq!(*sender.sent.lock().unwrap(), 1);
    assert!(
        h.users
            .outgoing_notice(&user("bob"), &notification_id)
            .await
            .unwrap()
            .is_none(),
        "a later claim of the job finds nothing left to send"
    );
    let delivered: Vec<_> = h
        .events("bob")
        .await
        .into_iter()
        .filter(|e| matches!(e, UserEvent::NotificationDelivered { notification_id: id, .. } if *id == notification_id))
        .collect();
    assert_eq!(delivered.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_sent_code_s_record_is_given_up_before_half_the_lease_when_the_database_stays_away() {
    crate::recognise_unavailable(|e| e.is::<crate::testing::Outage>());
    let h = Harness::new();
    let challenge = h
        .users
        .add_email(&app(), "bob", "bob@example.com", None, None)
        .await
        .unwrap();
    h.gateway.fail_next(usize::MAX);
    let worker = DeliveryWorker::new(
        h.users.clone(),
        Arc::new(Finishes::default()),
        Arc::new(Accepting),
        Arc::new(Accepting),
        RetryPolicy::default(),
    );
    let started = tokio::time::Instant::now();
    let e = worker
        .deliver_claimed(bobs_email_job(&challenge.id, DeliveryKind::Code))
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let waited = started.elapsed();
    assert!(
        waited > RetryPolicy::default().lease / 4 && waited < RetryPolicy::default().lease / 2,
        "{waited:?}"
    );
}

/// A provider that accepts every message.
struct Accepting;

#[async_trait]
impl CodeSender for Accepting {
    async fn send(&self, _: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        Ok(DeliveryReceipt {
            provider_message_id: None,
        })
    }
}

/// A provider that accepts the mail while an admin resets its user, as one taking its time
/// would let happen.
struct ResetWhileSending(UserService);

#[async_trait]
impl CodeSender for ResetWhileSending {
    async fn send(&self, _: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        self.0
            .reset(&admin(), "bob", "lost his phone")
            .await
            .expect("the reset");
        Ok(DeliveryReceipt {
            provider_message_id: None,
        })
    }
}

#[async_trait]
impl NoticeSender for ResetWhileSending {
    async fn send_notice(&self, _: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        Ok(DeliveryReceipt {
            provider_message_id: None,
        })
    }
}

// A sent code whose challenge a reset took meanwhile records nothing, so no event closes its
// job: the worker closes it, rather than leave it pending until its lease runs out.
#[tokio::test]
async fn a_code_whose_challenge_went_while_it_was_sent_has_its_job_closed_by_the_worker() {
    let h = Harness::new();
    let challenge = h
        .users
        .add_email(&app(), "bob", "bob@example.com", None, None)
        .await
        .unwrap();
    let queue = Arc::new(Finishes::default());
    let sender = Arc::new(ResetWhileSending(h.users.clone()));
    let worker = DeliveryWorker::new(
        h.users.clone(),
        queue.clone(),
        sender.clone(),
        sender,
        RetryPolicy::default(),
    );
    worker
        .deliver_claimed(bobs_email_job(&challenge.id, DeliveryKind::Code))
        .await
        .unwrap();

    assert!(!h
        .events("bob")
        .await
        .iter()
        .any(|e| matches!(e, UserEvent::CodeDelivered { .. })));
    assert_eq!(*queue.0.lock().unwrap(), [(challenge.id, true)]);
}

#[async_trait]
impl NoticeSender for Accepting {
    async fn send_notice(&self, _: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        Ok(DeliveryReceipt {
            provider_message_id: None,
        })
    }
}
