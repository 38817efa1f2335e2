//! What one operation may ask for (decision 101): root fields that record events run one
//! command each, and a list's page size is the work its resolver does, so a document that
//! repeats them under aliases or through fragments must not multiply its cost unchecked.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaType, Registry};
use async_graphql::{Name, Positioned, ServerResult, Variables};
use async_graphql_value::{ConstValue, Value};

use super::{invalid, named_type, root_type};

/// Most root fields of one operation that record events.
pub const MAX_RECORDING_FIELDS: u64 = 5;

/// Most root fields of one operation, whatever they do: query root fields run side by side,
/// each with database work of its own (a `user` loads an aggregate), so a thousand aliases of
/// one cheap field would take every pooled connection at once.
pub const MAX_ROOT_FIELDS: u64 = 10;

/// Which root fields a count takes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Roots {
    Recording,
    All,
}

/// Query fields that record events (`signInRequirement` records `SignInEvaluated`); every
/// mutation field does.
pub const RECORDING_QUERIES: &[&str] = &["signInRequirement"];

/// Most list items one operation may ask for: the sum of `first` over its paged fields, their
/// default page size where `first` is not given.
pub const MAX_ITEMS: u64 = 1_000;

/// Checks both limits for one operation.
pub fn check_operation(
    registry: &Registry,
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: &Variables,
) -> ServerResult<()> {
    let mut count = Count {
        registry,
        document,
        operation,
        variables,
        roots: HashMap::new(),
        items: HashMap::new(),
    };
    let pos = operation.selection_set.pos;
    let all = count.root_fields(Roots::All, operation.ty, &operation.selection_set);
    if all > MAX_ROOT_FIELDS {
        return Err(invalid(
            format!(
                "a document may hold at most {MAX_ROOT_FIELDS} root fields (aliases included); \
                 this one holds {all}"
            ),
            pos,
        ));
    }
    let recording = count.root_fields(Roots::Recording, operation.ty, &operation.selection_set);
    if recording > MAX_RECORDING_FIELDS {
        return Err(invalid(
            format!(
                "a document may hold at most {MAX_RECORDING_FIELDS} fields that record events \
                 (mutations and signInRequirement); this one holds {recording}"
            ),
            pos,
        ));
    }
    let root = root_type(registry, operation.ty);
    let items = count.items(root, &operation.selection_set);
    if items > MAX_ITEMS {
        return Err(invalid(
            format!(
                "a document may ask for at most {MAX_ITEMS} items in all (the sum of `first` \
                 over its lists, 50 where not given); this one asks for {items}"
            ),
            pos,
        ));
    }
    Ok(())
}

/// Counts with each fragment counted once and reused, so fragments that spread each other
/// several times cannot make the count itself expensive. Recursion follows the document's
/// nesting, which async-graphql has already bounded (32) for everything an operation reaches.
struct Count<'a> {
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    /// Per kind of count and fragment; `None` while it is being counted (a cycle, which
    /// validation refuses).
    roots: HashMap<(Roots, &'a Name), Option<u64>>,
    items: HashMap<&'a Name, Option<u64>>,
}

impl<'a> Count<'a> {
    fn root_fields(
        &mut self,
        which: Roots,
        ty: OperationType,
        set: &'a Positioned<SelectionSet>,
    ) -> u64 {
        let mut n: u64 = 0;
        for selection in &set.node.items {
            let here = match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    u64::from(match (which, ty) {
                        (_, _) if name == "__typename" => false,
                        (Roots::All, _) | (Roots::Recording, OperationType::Mutation) => true,
                        (Roots::Recording, OperationType::Query) => {
                            RECORDING_QUERIES.contains(&name)
                        }
                        (Roots::Recording, OperationType::Subscription) => false,
                    })
                }
                Selection::InlineFragment(inline) => {
                    self.root_fields(which, ty, &inline.node.selection_set)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    match self.roots.get(&(which, name)) {
                        Some(known) => known.unwrap_or(0),
                        None => match self.document.fragments.get(name) {
                            Some(fragment) => {
                                self.roots.insert((which, name), None);
                                let found =
                                    self.root_fields(which, ty, &fragment.node.selection_set);
                                self.roots.insert((which, name), Some(found));
                                found
                            }
                            None => 0,
                        },
                    }
                }
            };
            n = n.saturating_add(here);
        }
        n
    }

    fn items(&mut self, parent: Option<&'a MetaType>, set: &'a Positioned<SelectionSet>) -> u64 {
        let mut n: u64 = 0;
        for selection in &set.node.items {
            let here = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let meta = parent.and_then(|p| p.field_by_name(field.name.node.as_str()));
                    let page = meta.map_or(0, |meta| {
                        let Some(first) = meta.args.get("first") else {
                            return 0;
                        };
                        let given = field
                            .arguments
                            .iter()
                            .find(|(name, _)| name.node == "first")
                            .map(|(_, value)| &value.node);
                        self.page_size(given, first.default_value.as_deref())
                    });
                    let child = meta.and_then(|m| named_type(self.registry, &m.ty));
                    page.saturating_add(self.items(child, &field.selection_set))
                }
                Selection::InlineFragment(inline) => {
                    let on = match &inline.node.type_condition {
                        Some(c) => self.registry.types.get(c.node.on.node.as_str()),
                        None => parent,
                    };
                    self.items(on, &inline.node.selection_set)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    match self.items.get(name) {
                        Some(known) => known.unwrap_or(0),
                        None => match self.document.fragments.get(name) {
                            Some(fragment) => {
                                let on = self
                                    .registry
                                    .types
                                    .get(fragment.node.type_condition.node.on.node.as_str());
                                self.items.insert(name, None);
                                let found = self.items(on, &fragment.node.selection_set);
                                self.items.insert(name, Some(found));
                                found
                            }
                            None => 0,
                        },
                    }
                }
            };
            n = n.saturating_add(here);
        }
        n
    }

    /// The `first` a field is given: written, from a variable (or the variable's default), or
    /// the argument's default. Whatever else is not a non-negative number counts as nothing:
    /// the resolver refuses it.
    fn page_size(&self, given: Option<&Value>, default: Option<&str>) -> u64 {
        let from_default = || default.and_then(|d| d.parse::<u64>().ok());
        // An explicit null is no value: the resolver uses its default page.
        let number = |v: &ConstValue| match v {
            ConstValue::Number(n) => n.as_u64(),
            ConstValue::Null => from_default(),
            _ => None,
        };
        let size = match given {
            None => from_default(),
            Some(Value::Variable(variable)) => match self.variables.get(variable) {
                Some(v) => number(v),
                None => self
                    .operation
                    .variable_definitions
                    .iter()
                    .find(|d| d.node.name.node == *variable)
                    .and_then(|d| d.node.default_value.as_ref())
                    .map_or_else(from_default, |d| number(&d.node)),
            },
            Some(literal) => literal.clone().into_const().as_ref().and_then(number),
        };
        size.unwrap_or(0)
    }
}
