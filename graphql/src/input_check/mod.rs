//! Every argument of a request is checked here, once, before any resolver runs (decision 101):
//! the text rules of [`text`] for every string, also inside lists and input objects and
//! whether written in the document or passed as a variable; enum values written as strings
//! (`method: "TOTP"`), which the GraphQL specification refuses and async-graphql would accept;
//! and the cost rules of [`cost`]. Everything found is `INVALID_INPUT` with a message naming
//! the argument.
//!
//! It runs in the schema's extension ([`crate::extension`]) on parsing (`parse_query`), which
//! every request of every transport passes, also when the HTTP layer hands over a document it
//! parsed earlier: the hook sees the document after async-graphql's own recursion-depth check
//! and before validation and execution.

pub mod cost;
pub mod text;

use async_graphql::parser::types::{
    ExecutableDocument, OperationType, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Pos, Positioned, ServerError, ServerResult, Variables};
use async_graphql_value::{ConstValue, Value};
use twofold_services::ErrorCode;

use crate::error::coded;

/// Selection sets nested deeper than this are refused (async-graphql bounds those it
/// executes at 32; this also bounds fragments no operation uses, which it does not look at).
const MAX_NESTING: usize = 64;

/// The text rules for one query parameter of `GET /audit/export`, the one input that does not
/// come through GraphQL. A name that is not itself plain short text is not repeated back.
pub fn check_export_parameter(name: &str, value: &str) -> Result<(), String> {
    let kind = if name == "userId" {
        text::Kind::Id
    } else {
        text::Kind::Text
    };
    let shown = if name.len() <= 32 && text::check("name", name, text::Kind::Id).is_ok() {
        name
    } else {
        "parameter"
    };
    if matches!(name, "eventType" | "eventTypes") {
        // A comma-separated list: each name is one value.
        return value
            .split(',')
            .try_for_each(|item| text::check(shown, item, kind));
    }
    text::check(shown, value, kind)
}

/// An `INVALID_INPUT` error at `pos`.
pub(crate) fn invalid(message: String, pos: Pos) -> ServerError {
    coded(ErrorCode::InvalidInput, message).into_server_error(pos)
}

/// Checks every argument and variable default of `document`, and the cost of each operation.
pub fn check_document(
    registry: &Registry,
    document: &ExecutableDocument,
    variables: &Variables,
) -> ServerResult<()> {
    let walk = Walk {
        registry,
        variables,
    };
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        for definition in &operation.variable_definitions {
            walk.check_default(definition)?;
        }
        let root = root_type(registry, operation.ty);
        walk.selection_set(root, &operation.selection_set, 0)?;
        cost::check_operation(registry, document, operation, variables)?;
    }
    for fragment in document.fragments.values() {
        let on = registry
            .types
            .get(fragment.node.type_condition.node.on.node.as_str());
        walk.selection_set(on, &fragment.node.selection_set, 0)?;
    }
    Ok(())
}

/// The root type of an operation.
pub(crate) fn root_type(registry: &Registry, ty: OperationType) -> Option<&MetaType> {
    let name = match ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    name.and_then(|name| registry.types.get(name))
}

/// The named type under lists and non-null markers.
pub(crate) fn named_type<'a>(registry: &'a Registry, ty: &str) -> Option<&'a MetaType> {
    registry.types.get(MetaTypeName::concrete_typename(ty))
}

struct Walk<'a> {
    registry: &'a Registry,
    variables: &'a Variables,
}

/// One value still to check: its declared type (unknown for arguments the schema does not
/// have: validation refuses those later), the name errors give, and whether the document
/// spelled it out (a literal) or it came in a variable.
struct Pending<'v> {
    ty: Option<&'v str>,
    name: &'v str,
    value: Either<'v>,
}

enum Either<'v> {
    Literal(&'v Value),
    Given(&'v ConstValue),
}

impl<'a> Walk<'a> {
    fn selection_set(
        &self,
        parent: Option<&'a MetaType>,
        set: &Positioned<SelectionSet>,
        depth: usize,
    ) -> ServerResult<()> {
        if depth > MAX_NESTING {
            return Err(invalid(
                format!("selections may nest at most {MAX_NESTING} levels deep"),
                set.pos,
            ));
        }
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let meta = parent.and_then(|p| p.field_by_name(field.name.node.as_str()));
                    for (name, value) in &field.arguments {
                        let ty = meta
                            .and_then(|m| m.args.get(name.node.as_str()))
                            .map(|a| a.ty.as_str());
                        self.argument(name.node.as_str(), ty, value)?;
                    }
                    for directive in &field.directives {
                        for (name, value) in &directive.node.arguments {
                            self.argument(name.node.as_str(), None, value)?;
                        }
                    }
                    let child = meta.and_then(|m| named_type(self.registry, &m.ty));
                    self.selection_set(child, &field.selection_set, depth + 1)?;
                }
                Selection::InlineFragment(inline) => {
                    let on = match &inline.node.type_condition {
                        Some(condition) => self.registry.types.get(condition.node.on.node.as_str()),
                        None => parent,
                    };
                    self.selection_set(on, &inline.node.selection_set, depth + 1)?;
                }
                // Fragments are checked once each, on their own.
                Selection::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }

    /// A variable's default value is written in the document, like a literal argument.
    fn check_default(&self, definition: &Positioned<VariableDefinition>) -> ServerResult<()> {
        let Some(default) = &definition.node.default_value else {
            return Ok(());
        };
        let ty = definition.node.var_type.node.to_string();
        let literal = default.node.clone().into_value();
        self.values(
            Pending {
                ty: Some(&ty),
                name: definition.node.name.node.as_str(),
                value: Either::Literal(&literal),
            },
            default.pos,
        )
    }

    fn argument(
        &self,
        name: &str,
        ty: Option<&str>,
        value: &Positioned<Value>,
    ) -> ServerResult<()> {
        self.values(
            Pending {
                ty,
                name,
                value: Either::Literal(&value.node),
            },
            value.pos,
        )
    }

    /// Checks a value and everything inside it, without recursion (values may nest deeply).
    fn values(&self, first: Pending<'_>, pos: Pos) -> ServerResult<()> {
        let mut pending = vec![first];
        while let Some(Pending { ty, name, value }) = pending.pop() {
            let named = ty.and_then(|ty| named_type(self.registry, ty));
            let element = ty.map(element_type);
            let field_type = |field: &str| match named {
                Some(MetaType::InputObject { input_fields, .. }) => {
                    input_fields.get(field).map(|f| f.ty.as_str())
                }
                _ => None,
            };
            match value {
                Either::Literal(Value::Variable(variable)) => {
                    if let Some(given) = self.variables.get(variable) {
                        pending.push(Pending {
                            ty,
                            name,
                            value: Either::Given(given),
                        });
                    }
                }
                Either::Literal(Value::String(s)) => {
                    if matches!(named, Some(MetaType::Enum { .. })) {
                        return Err(invalid(
                            format!(
                                "`{name}` takes an enum value, written without quotes \
                                 (TOTP, not \"TOTP\")"
                            ),
                            pos,
                        ));
                    }
                    self.text(name, named, s, pos)?;
                }
                Either::Given(ConstValue::String(s)) => self.text(name, named, s, pos)?,
                Either::Literal(Value::List(items)) => {
                    too_many(name, items.len(), pos)?;
                    pending.extend(items.iter().map(|item| Pending {
                        ty: element,
                        name,
                        value: Either::Literal(item),
                    }));
                }
                Either::Given(ConstValue::List(items)) => {
                    too_many(name, items.len(), pos)?;
                    pending.extend(items.iter().map(|item| Pending {
                        ty: element,
                        name,
                        value: Either::Given(item),
                    }));
                }
                Either::Literal(Value::Object(fields)) => {
                    for (field, item) in fields {
                        pending.push(Pending {
                            ty: field_type(field.as_str()),
                            name: field.as_str(),
                            value: Either::Literal(item),
                        });
                    }
                }
                Either::Given(ConstValue::Object(fields)) => {
                    for (field, item) in fields {
                        pending.push(Pending {
                            ty: field_type(field.as_str()),
                            name: field.as_str(),
                            value: Either::Given(item),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn text(&self, name: &str, named: Option<&MetaType>, s: &str, pos: Pos) -> ServerResult<()> {
        let kind = match named {
            Some(t) if t.name() == "ID" => text::Kind::Id,
            _ => text::Kind::Text,
        };
        text::check(name, s, kind).map_err(|message| invalid(message, pos))
    }
}

fn too_many(name: &str, len: usize, pos: Pos) -> ServerResult<()> {
    if len > text::MAX_LIST_ITEMS {
        return Err(invalid(
            format!("`{name}` may hold at most {} items", text::MAX_LIST_ITEMS),
            pos,
        ));
    }
    Ok(())
}

/// The type of a list's elements (a single value where a list is expected is coerced to a
/// list of one, so a non-list type is its own element type).
fn element_type(ty: &str) -> &str {
    match MetaTypeName::create(ty).unwrap_non_null() {
        MetaTypeName::List(inner) => inner,
        _ => ty,
    }
}
