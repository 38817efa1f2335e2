//! One operation of a socket (a `subscribe`), run on its own task.

use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::Request as GqlRequest;
use futures::StreamExt;
use tokio::sync::mpsc;
use twofold_services::ErrorCode;

use super::protocol::Protocol;
use crate::http::finish;
use crate::schema::TwofoldSchema;

/// One operation of a socket, run on its own task.
pub(super) struct Operation {
    pub(super) schema: TwofoldSchema,
    pub(super) protocol: Protocol,
    pub(super) id: String,
    pub(super) request_id: String,
    pub(super) timeout: Duration,
    pub(super) out: mpsc::Sender<String>,
}

impl Operation {
    /// Sends the operation's results, then `complete`. A query or mutation gets the HTTP
    /// path's time bound; a subscription lasts until its stream ends.
    pub(super) async fn run(self, request: GqlRequest, subscription: bool) {
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
pub(super) fn is_subscription(request: &mut GqlRequest) -> bool {
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
