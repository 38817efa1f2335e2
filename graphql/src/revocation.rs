//! Long answers end when their key is revoked: a key is dead everywhere at once, including in
//! an audit export that started before the revocation and is read slowly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use twofold_services::{Authenticator, ServiceError};

/// How often a long answer's key is checked again (as often as a WebSocket's).
pub const RECHECK: Duration = Duration::from_millis(500);

enum Item {
    Chunk(Result<Bytes, std::io::Error>),
    End,
    Revoked,
}

/// `chunks`, failed (so the client sees a cut-off body, never a complete-looking one) as soon
/// as `revoked` resolves, even while `chunks` waits for its next item.
pub fn until_revoked(
    chunks: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    revoked: impl Future<Output = ()> + Send + 'static,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let chunks = chunks
        .map(Item::Chunk)
        .chain(stream::once(async { Item::End }));
    let revoked = stream::once(revoked).map(|()| Item::Revoked);
    stream::select(chunks, revoked)
        .scan((), |(), item| {
            futures::future::ready(match item {
                Item::Chunk(chunk) => Some(chunk),
                Item::End => None,
                Item::Revoked => {
                    tracing::info!("the key was revoked; ending its export");
                    Some(Err(std::io::Error::other("the key was revoked")))
                }
            })
        })
        .boxed()
}

/// Resolves once `credential` is refused (revoked); a check that fails internally is not a
/// refusal, and is tried again at the next tick.
pub async fn revocation_of(auth: Arc<Authenticator>, credential: String) {
    let mut tick = tokio::time::interval(RECHECK);
    // A reader that stalled gets one check when it reads again, not one per missed tick.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match auth.authenticate(&credential).await {
            Ok(_) | Err(ServiceError::Internal(_)) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_answer_fails_when_its_key_is_revoked_and_a_finished_one_ends_cleanly() {
        let (revoke, revoked) = tokio::sync::oneshot::channel::<()>();
        let first = stream::iter([Ok(Bytes::from_static(b"first\n"))]);
        let mut body = until_revoked(first.chain(stream::pending()), async {
            let _ = revoked.await;
        });
        assert_eq!(body.next().await.unwrap().unwrap(), "first\n");
        let _ = revoke.send(());
        let cut = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the revocation ends a waiting answer");
        assert!(cut.unwrap().is_err());

        let whole = stream::iter([Ok(Bytes::from_static(b"a\n"))]);
        let body: Vec<_> = until_revoked(whole, std::future::pending()).collect().await;
        assert_eq!(
            body.len(),
            1,
            "ends with its last chunk, without waiting for a revocation"
        );
    }
}
