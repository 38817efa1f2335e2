//! One operation of a socket (a `subscribe`), run on its own task.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request as GqlRequest, Response as GqlResponse};
use futures::StreamExt;
use tokio::sync::mpsc;
use twofold_services::{ErrorCode, Principal};

use super::protocol::Protocol;
use crate::admission::QueryCache;
use crate::http::finish;
use crate::rate_limit::RateLimits;
use crate::schema::TwofoldSchema;

/// One operation of a socket, run on its own task.
pub(super) struct Operation {
    pub(super) principal: Principal,
    pub(super) queries: Arc<QueryCache>,
    pub(super) schema: TwofoldSchema,
    pub(super) protocol: Protocol,
    pub(super) id: String,
    pub(super) request_id: String,
    pub(super) timeout: Duration,
    pub(super) out: mpsc::Sender<String>,
}

impl Operation {
    /// Charges the key, checks the document, then sends the operation's results and
    /// `complete`. A query or mutation gets the HTTP path's time bound; a subscription lasts
    /// until its stream ends.
    pub(super) async fn run(self, mut request: GqlRequest) {
        if let Some(limits) = self.schema.data::<Arc<RateLimits>>() {
            if let Err(refusal) = limits.charge(Some(&self.principal)).await {
                let response = finish(GqlResponse::from_errors(vec![refusal]), &self.request_id);
                let _ = self.out.send(self.protocol.next(&self.id, &response)).await;
                let _ = self.out.send(self.protocol.complete(&self.id)).await;
                return;
            }
        }
        if let Err(refusal) = self.queries.admit(&mut request) {
            let refusal = self
                .protocol
                .error(&self.id, ErrorCode::InvalidInput, &refusal.0);
            let _ = self.out.send(refusal).await;
            return;
        }
        let subscription = is_subscription(&mut request);
        if subscription {
            let mut results = self.schema.execute_stream(request);
            while let Some(response) = results.next().await {
                let response = finish(response, &self.request_id);
                if self
                    .out
                    .send(self.protocol.next(&self.id, &response))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        } else {
            match tokio::time::timeout(self.timeout, self.schema.execute(request)).await {
                Ok(response) => {
                    let response = finish(response, &self.request_id);
                    let _ = self.out.send(self.protocol.next(&self.id, &response)).await;
                }
                Err(_) => {
                    tracing::error!("WebSocket operation timed out");
                    let message =
                        format!("the request took too long (request id {})", self.request_id);
                    let refusal = self.protocol.error(&self.id, ErrorCode::Internal, &message);
                    let _ = self.out.send(refusal).await;
                    return;
                }
            }
        }
        let _ = self.out.send(self.protocol.complete(&self.id)).await;
    }
}

/// Whether the operation the request names is a subscription (a document that does not parse
/// is not; executing it reports why).
fn is_subscription(request: &mut GqlRequest) -> bool {
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false;
    };
    let operation = match &document.operations {
        DocumentOperations::Single(operation) => Some(operation),
        DocumentOperations::Multiple(operations) => name.as_deref().and_then(|n| operations.get(n)),
    };
    operation.is_some_and(|o| o.node.ty == OperationType::Subscription)
}
