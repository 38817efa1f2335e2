//! The schema as clients see it: the checked-in SDL must match the code, and everything we
//! expose must match the public contract (`shared/api.graphql`) name for name and type for type.

use std::collections::BTreeMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

const SDL_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
const CONTRACT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/api.graphql");

fn our_sdl() -> String {
    twofold_graphql::schema_builder().finish().sdl()
}

#[test]
fn the_checked_in_sdl_matches_the_code() {
    let sdl = our_sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(SDL_PATH, &sdl).expect("writing graphql/schema.graphql");
    }
    let checked_in = std::fs::read_to_string(SDL_PATH).expect("graphql/schema.graphql exists");
    assert!(
        checked_in == sdl,
        "graphql/schema.graphql is out of date: review the change, then run \
         `UPDATE_SCHEMA=1 cargo test -p twofold-graphql --test schema` and commit it"
    );
}

/// A type reduced to what clients depend on.
#[derive(Debug, PartialEq)]
enum Shape {
    Scalar,
    /// field -> (type, argument -> type)
    Object(BTreeMap<String, (String, BTreeMap<String, String>)>),
    /// field -> type
    Input(BTreeMap<String, String>),
    Enum(Vec<String>),
    Other,
}

fn shapes(sdl: &str) -> BTreeMap<String, Shape> {
    let doc = parse_schema(sdl).expect("valid SDL");
    let mut out = BTreeMap::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let t = t.node;
        let shape = match t.kind {
            TypeKind::Scalar => Shape::Scalar,
            TypeKind::Object(o) => Shape::Object(
                o.fields
                    .into_iter()
                    .map(|f| {
                        let f = f.node;
                        let args = f
                            .arguments
                            .into_iter()
                            .map(|a| (a.node.name.node.to_string(), a.node.ty.node.to_string()))
                            .collect();
                        (f.name.node.to_string(), (f.ty.node.to_string(), args))
                    })
                    .collect(),
            ),
            TypeKind::InputObject(i) => Shape::Input(
                i.fields
                    .into_iter()
                    .map(|f| (f.node.name.node.to_string(), f.node.ty.node.to_string()))
                    .collect(),
            ),
            TypeKind::Enum(e) => {
                let mut values: Vec<String> = e
                    .values
                    .into_iter()
                    .map(|v| v.node.value.node.to_string())
                    .collect();
                values.sort();
                Shape::Enum(values)
            }
            _ => Shape::Other,
        };
        out.insert(t.name.node.to_string(), shape);
    }
    out
}

/// Where `ours` breaks `contract` (additions are allowed; changes are not).
fn violations(ours: &str, contract: &str) -> Vec<String> {
    let contract = shapes(contract);
    let ours = shapes(ours);
    let mut problems = Vec::new();
    for (name, shape) in &ours {
        let Some(promised) = contract.get(name) else {
            continue; // an addition: allowed
        };
        match (shape, promised) {
            (Shape::Object(fields), Shape::Object(promised_fields)) => {
                for (field, (ty, args)) in fields {
                    match promised_fields.get(field) {
                        None => {} // an added field
                        Some((p_ty, p_args)) => {
                            if ty != p_ty {
                                problems
                                    .push(format!("{name}.{field}: {ty}, contract says {p_ty}"));
                            }
                            // Promised arguments keep their types; an added argument must be
                            // optional, or calls written against the contract would be refused.
                            let kept = p_args.iter().all(|(a, t)| args.get(a) == Some(t));
                            let added_required = args
                                .iter()
                                .any(|(a, t)| !p_args.contains_key(a) && t.ends_with('!'));
                            if !kept || added_required {
                                problems.push(format!(
                                    "{name}.{field} arguments {args:?}, contract says {p_args:?}"
                                ));
                            }
                        }
                    }
                }
            }
            (Shape::Input(fields), Shape::Input(promised_fields)) => {
                // Every promised field keeps its type; an added field must be optional, or
                // requests written against the contract would be refused.
                for (field, promised) in promised_fields {
                    if fields.get(field) != Some(promised) {
                        problems.push(format!(
                            "input {name}.{field}: {:?}, contract says {promised}",
                            fields.get(field)
                        ));
                    }
                }
                for (field, ty) in fields {
                    if !promised_fields.contains_key(field) && ty.ends_with('!') {
                        problems.push(format!("input {name}.{field} is added as required ({ty})"));
                    }
                }
            }
            (Shape::Enum(values), Shape::Enum(promised_values)) => {
                if values != promised_values {
                    problems.push(format!(
                        "enum {name}: {values:?}, contract says {promised_values:?}"
                    ));
                }
            }
            (Shape::Scalar, Shape::Scalar) => {}
            (a, b) => problems.push(format!("{name} is {a:?}, contract says {b:?}")),
        }
    }
    for root in ["Query", "Mutation", "Subscription"] {
        if contract.contains_key(root) && !matches!(ours.get(root), Some(Shape::Object(_))) {
            problems.push(format!("{root} missing"));
        }
    }
    problems
}

#[test]
fn everything_we_expose_matches_the_public_contract() {
    let contract = std::fs::read_to_string(CONTRACT_PATH).unwrap_or_else(|e| {
        panic!("the API contract {CONTRACT_PATH} must be beside the checkout: {e}")
    });
    let problems = violations(&our_sdl(), &contract);
    assert!(
        problems.is_empty(),
        "the schema breaks the contract:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_contract_check_catches_renames_and_type_changes() {
    let contract = "type Query { a: Int! } type Mutation { m(keyId: ID!): String }";
    assert!(violations(contract, contract).is_empty());
    let renamed = "type Query { a: Int! } type Mutation { m(key: ID!): String }";
    assert_eq!(violations(renamed, contract).len(), 1);
    let retyped = "type Query { a: Int } type Mutation { m(keyId: ID!): String }";
    assert_eq!(
        violations(retyped, contract),
        vec!["Query.a: Int, contract says Int!"]
    );
    let added =
        "type Query { a: Int! b: Int } type Mutation { m(keyId: ID!): String } type New { x: Int }";
    assert!(
        violations(added, contract).is_empty(),
        "additions are allowed"
    );
    let optional_arg =
        "type Query { a: Int! } type Mutation { m(keyId: ID!, note: String): String }";
    assert!(violations(optional_arg, contract).is_empty());
    let required_arg =
        "type Query { a: Int! } type Mutation { m(keyId: ID!, note: String!): String }";
    assert_eq!(violations(required_arg, contract).len(), 1);
    let dropped_arg = "type Query { a: Int! } type Mutation { m: String }";
    assert_eq!(violations(dropped_arg, contract).len(), 1);
    let with_subscription = "type Query { a: Int! } type Mutation { m(keyId: ID!): String } \
         type Subscription { s: Int! }";
    assert_eq!(
        violations(contract, with_subscription),
        vec!["Subscription missing"]
    );
}
