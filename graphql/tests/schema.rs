//! The schema as clients see it: the checked-in SDL must match the code, and nothing any
//! committed version of it offered may be removed, renamed or changed (nor anything of the
//! original contract, `../shared/api.graphql`, when it is beside the checkout).

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
        let old = std::fs::read_to_string(SDL_PATH).unwrap_or_default();
        let problems = if old.is_empty() {
            Vec::new()
        } else {
            violations(&sdl, &old)
        };
        assert!(
            problems.is_empty(),
            "not updating graphql/schema.graphql: the change breaks clients:\n{}",
            problems.join("\n")
        );
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

/// Where `ours` breaks `previous`: anything a client of `previous` could rely on that `ours`
/// removes, renames or changes (the rules of `graphql-inspector`'s breaking changes). Additions
/// are allowed, except arguments and input fields added as required: calls written against
/// `previous` would be refused.
fn violations(ours: &str, previous: &str) -> Vec<String> {
    let previous = shapes(previous);
    let ours = shapes(ours);
    let mut problems = Vec::new();
    for (name, promised) in &previous {
        let Some(shape) = ours.get(name) else {
            problems.push(format!("type {name} was removed"));
            continue;
        };
        match (shape, promised) {
            (Shape::Object(fields), Shape::Object(promised_fields)) => {
                for (field, (p_ty, p_args)) in promised_fields {
                    let Some((ty, args)) = fields.get(field) else {
                        problems.push(format!("{name}.{field} was removed"));
                        continue;
                    };
                    if ty != p_ty {
                        problems.push(format!("{name}.{field}: {ty}, was {p_ty}"));
                    }
                    let kept = p_args.iter().all(|(a, t)| args.get(a) == Some(t));
                    let added_required = args
                        .iter()
                        .any(|(a, t)| !p_args.contains_key(a) && t.ends_with('!'));
                    if !kept || added_required {
                        problems.push(format!(
                            "{name}.{field} arguments {args:?}, were {p_args:?}"
                        ));
                    }
                }
            }
            (Shape::Input(fields), Shape::Input(promised_fields)) => {
                for (field, promised) in promised_fields {
                    if fields.get(field) != Some(promised) {
                        problems.push(format!(
                            "input {name}.{field}: {:?}, was {promised}",
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
                for value in promised_values {
                    if !values.contains(value) {
                        problems.push(format!("enum {name}: {value} was removed"));
                    }
                }
            }
            (Shape::Scalar, Shape::Scalar) | (Shape::Other, Shape::Other) => {}
            (a, b) => problems.push(format!("{name} is {a:?}, was {b:?}")),
        }
    }
    problems
}

/// Every version of `graphql/schema.graphql` ever committed, newest first, with its commit;
/// `None` when this is not a git checkout (a source archive).
fn committed_sdls() -> Option<Vec<(String, String)>> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let commits = git(&["log", "--format=%h", "--", "schema.graphql"])?;
    Some(
        commits
            .lines()
            .filter_map(|commit| {
                git(&["show", &format!("{commit}:graphql/schema.graphql")])
                    .map(|sdl| (commit.to_owned(), sdl))
            })
            .collect(),
    )
}

#[test]
fn the_schema_keeps_everything_every_committed_sdl_had() {
    let Some(versions) = committed_sdls() else {
        eprintln!("not a git checkout: only the checked-in SDL is compared");
        return;
    };
    assert!(!versions.is_empty(), "git knows no graphql/schema.graphql");
    let ours = our_sdl();
    for (commit, previous) in versions {
        let problems = violations(&ours, &previous);
        assert!(
            problems.is_empty(),
            "the schema breaks what clients had at commit {commit}; add instead of renaming \
             or removing (deprecate the old name):\n{}",
            problems.join("\n")
        );
    }
}

/// The API as it began (`../shared/api.graphql`), when that file is beside the checkout (CI
/// has it; a fresh clone alone does not, and its own history is then the contract).
#[test]
fn everything_the_original_contract_promised_is_kept_when_it_is_beside_the_checkout() {
    let Ok(contract) = std::fs::read_to_string(CONTRACT_PATH) else {
        eprintln!("{CONTRACT_PATH} is not beside the checkout: skipped");
        return;
    };
    let problems = violations(&our_sdl(), &contract);
    assert!(
        problems.is_empty(),
        "the schema breaks the original contract:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_breaking_change_check_catches_removals_renames_and_type_changes() {
    let before = "type Query { a: Int! } type Mutation { m(keyId: ID!): String } \
                  input In { x: Int } enum E { A B } type T { t: Int }";
    assert!(violations(before, before).is_empty());
    let cases = [
        ("type Query { a: Int! } type Mutation { m(key: ID!): String } input In { x: Int } enum E { A B } type T { t: Int }", "Mutation.m arguments"),
        ("type Query { a: Int } type Mutation { m(keyId: ID!): String } input In { x: Int } enum E { A B } type T { t: Int }", "Query.a: Int, was Int!"),
        ("type Query { b: Int! } type Mutation { m(keyId: ID!): String } input In { x: Int } enum E { A B } type T { t: Int }", "Query.a was removed"),
        ("type Query { a: Int! } type Mutation { m(keyId: ID!, note: String!): String } input In { x: Int } enum E { A B } type T { t: Int }", "Mutation.m arguments"),
        ("type Query { a: Int! } type Mutation { m: String } input In { x: Int } enum E { A B } type T { t: Int }", "Mutation.m arguments"),
        ("type Query { a: Int! } type Mutation { m(keyId: ID!): String } input In { y: Int } enum E { A B } type T { t: Int }", "input In.x"),
        ("type Query { a: Int! } type Mutation { m(keyId: ID!): String } input In { x: Int, y: Int! } enum E { A B } type T { t: Int }", "input In.y is added as required"),
        ("type Query { a: Int! } type Mutation { m(keyId: ID!): String } input In { x: Int } enum E { A } type T { t: Int }", "enum E: B was removed"),
        ("type Query { a: Int! } type Mutation { m(keyId: ID!): String } input In { x: Int } enum E { A B }", "type T was removed"),
        ("type Query { a: Int! } type Mutation { m(keyId: ID!): String } input In { x: Int } enum E { A B } input T { t: Int }", "T is Input"),
    ];
    for (after, expected) in cases {
        let problems = violations(after, before);
        assert_eq!(problems.len(), 1, "{after}: {problems:?}");
        assert!(problems[0].contains(expected), "{after}: {problems:?}");
    }
    let added = "type Query { a: Int! b: Int } type Mutation { m(keyId: ID!, note: String): String } \
                 input In { x: Int, y: Int } enum E { A B C } type T { t: Int } type New { n: Int }";
    assert!(
        violations(added, before).is_empty(),
        "additions are allowed"
    );
}
