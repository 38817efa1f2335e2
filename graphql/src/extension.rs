//! The schema's one extension, through which every request of every transport passes. It
//! runs, in this order, what used to be four extensions: syntax errors made one line
//! ([`crate::syntax_error`]), introspection refused to anonymous callers
//! ([`crate::introspection`]), every argument checked ([`crate::input_check`]), and the
//! operation run in its tenant's share ([`crate::rate_limit`]). async-graphql wraps each
//! extension around every stage and every resolved field, boxing a future each time, so one
//! extension instead of four costs a verify fewer allocations (docs/benchmark.md, round 14).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerResult, Variables};

/// Register with `SchemaBuilder::extension(Checks)`; without `RateLimits` in the schema's data
/// (the SDL export) the rate limit does nothing.
pub struct Checks;

impl ExtensionFactory for Checks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ChecksExtension)
    }
}

struct ChecksExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for ChecksExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next
            .run(ctx, query, variables)
            .await
            .map_err(crate::syntax_error::one_line_error)?;
        crate::introspection::refuse_anonymous(ctx, &document)?;
        crate::input_check::check_document(&ctx.schema_env.registry, &document, variables)?;
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        crate::rate_limit::execute(ctx, operation_name, next).await
    }
}
