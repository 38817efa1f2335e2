//! Introspection (`__schema`, `__type`) needs a valid credential: the schema is the map of every
//! operation and argument, and an anonymous caller has no use for it. `__typename` stays open.
//!
//! Checked on the parsed document, before validation and execution, so a refused document runs
//! nothing; fragments and inline fragments are followed, since `{ ...F }` can hide the field.

use async_graphql::extensions::ExtensionContext;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Value};
use twofold_services::ErrorCode;

use crate::guard::Caller;

/// Refuses `document` when it asks for introspection and the request has no credential.
pub(crate) fn refuse_anonymous(
    ctx: &ExtensionContext<'_>,
    document: &ExecutableDocument,
) -> ServerResult<()> {
    let anonymous = ctx.data_opt::<Caller>().is_none_or(|c| c.0.is_none());
    if anonymous && asks_introspection(document) {
        let mut error = ServerError::new(
            "introspection needs an API key: send `Authorization: Bearer <API key>`",
            None,
        );
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", Value::from(ErrorCode::Unauthenticated.as_str()));
        return Err(error);
    }
    Ok(())
}

/// Whether any selection of the document, at any depth, is `__schema` or `__type`. Walked with
/// a heap stack, not recursion: the document's nesting is the caller's choice.
fn asks_introspection(document: &ExecutableDocument) -> bool {
    let mut pending: Vec<&SelectionSet> = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(
            document
                .fragments
                .values()
                .map(|f| &f.node.selection_set.node),
        )
        .collect();
    while let Some(set) = pending.pop() {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        return true;
                    }
                    pending.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(inline) => {
                    pending.push(&inline.node.selection_set.node);
                }
                // The fragment's own selection set is in `document.fragments`.
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::asks_introspection;

    fn asks(query: &str) -> bool {
        asks_introspection(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn finds_introspection_wherever_it_hides() {
        assert!(asks("{ __schema { types { name } } }"));
        assert!(asks("{ t: __type(name: \"Query\") { name } }"));
        assert!(asks("{ ... on Query { ... { __schema { __typename } } } }"));
        assert!(asks("query A { __typename } query B { ...F } fragment F on Query { __type(name: \"X\") { name } }"));
        assert!(!asks("{ __typename }"));
        assert!(!asks("{ user(userId: \"__schema\") { userId } }"));
    }
}
