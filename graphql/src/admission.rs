//! The gate every GraphQL request passes before the schema sees it, over HTTP and over a
//! WebSocket alike: the shape limits of [`crate::limits`], then parsing (cached).

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::Request;

use crate::limits::{self, Refusal};

/// Parsed GraphQL documents by their text. A tenant's backend sends the same few documents
/// over and over; parsing one costs more than the rest of a `verify`'s GraphQL work, so each
/// is parsed once. The schema still validates every request and checks its depth and
/// complexity; only admitted documents are kept, small ones only, and the cache starts afresh
/// when full, so no sequence of requests makes it grow without bound.
#[derive(Default)]
pub struct QueryCache {
    documents: std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>,
}

impl QueryCache {
    /// Most documents kept.
    pub const MAX_DOCUMENTS: usize = 256;
    /// Longest document kept, in bytes.
    pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024;

    /// Checks `request` against the limits and gives it its parsed document, so the schema
    /// never parses text that has not been measured. A document that does not parse is left
    /// for the schema to report (its nesting is bounded, so the parser's recursion is too).
    pub fn admit(&self, request: &mut Request) -> Result<(), Refusal> {
        limits::check_document_nesting(&request.query)?;
        limits::check_value_nesting("variables", request.variables.values())?;
        limits::check_value_nesting("extensions", request.extensions.values())?;
        let cacheable = request.query.len() <= Self::MAX_DOCUMENT_BYTES;
        let lock = || {
            self.documents
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(document) = cacheable
            .then(|| lock().get(&request.query).cloned())
            .flatten()
        {
            request.set_parsed_query(document);
            return Ok(());
        }
        let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
            return Ok(());
        };
        limits::check_expansion(&document)?;
        if cacheable {
            let mut documents = lock();
            if documents.len() >= Self::MAX_DOCUMENTS {
                documents.clear();
            }
            documents.insert(request.query.clone(), document.clone());
        }
        request.set_parsed_query(document);
        Ok(())
    }
}
