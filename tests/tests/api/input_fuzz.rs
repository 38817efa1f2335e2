//! Arbitrary text in every text argument of every operation never gets INTERNAL (issue 14,
//! point 6). The operations and their arguments come from the schema itself (introspection),
//! so an argument added later is covered without touching this test.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use twofold_tests::{spawn_app, TestApp};

const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } \
    types { kind name enumValues { name } inputFields { name type { ...T } } \
            fields { name args { name type { ...T } } type { ...T } } } } } \
    fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name \
      ofType { kind name } } } } }";

/// One place for the fuzzed text: a root field, one of its arguments, and where inside the
/// argument's value the text goes (input object fields and list elements).
#[derive(Debug, Clone)]
struct Slot {
    operation: &'static str,
    field: String,
    /// `(name, GraphQL type, introspected type)` of every argument sent: the required ones and
    /// the fuzzed one.
    args: Vec<(String, String, Value)>,
    /// Index in `args` of the fuzzed argument, and the path to the text inside its value.
    fuzzed: usize,
    path: Vec<PathStep>,
    selection: &'static str,
    key: String,
}

#[derive(Debug, Clone)]
enum PathStep {
    Field(String),
    Element,
}

struct Types(Vec<Value>);

impl Types {
    fn named(&self, name: &str) -> &Value {
        self.0
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("type {name}"))
    }
}

/// The GraphQL spelling of an introspected type reference.
fn type_name(t: &Value) -> String {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", type_name(&t["ofType"])),
        "LIST" => format!("[{}]", type_name(&t["ofType"])),
        _ => t["name"].as_str().unwrap().to_owned(),
    }
}

/// A valid-looking value of a type: required input fields filled, optional ones left out.
fn filler(types: &Types, t: &Value, id: &str) -> Value {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => filler(types, &t["ofType"], id),
        "LIST" => json!([filler(types, &t["ofType"], id)]),
        "ENUM" => types.named(t["name"].as_str().unwrap())["enumValues"][0]["name"].clone(),
        "INPUT_OBJECT" => {
            let mut object = serde_json::Map::new();
            for field in types.named(t["name"].as_str().unwrap())["inputFields"]
                .as_array()
                .unwrap()
            {
                if field["type"]["kind"] == "NON_NULL" {
                    object.insert(
                        field["name"].as_str().unwrap().to_owned(),
                        filler(types, &field["type"], id),
                    );
                }
            }
            Value::Object(object)
        }
        _ => match t["name"].as_str().unwrap() {
            "Int" => json!(1),
            "Float" => json!(1.0),
            "Boolean" => json!(false),
            "DateTime" => json!("2026-01-01T00:00:00Z"),
            "ID" => json!(id),
            _ => json!("x"),
        },
    }
}

/// Every path to a text (String or ID) inside a value of type `t`.
fn text_paths(types: &Types, t: &Value, depth: usize) -> Vec<Vec<PathStep>> {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => text_paths(types, &t["ofType"], depth),
        "LIST" => text_paths(types, &t["ofType"], depth)
            .into_iter()
            .map(|mut p| {
                p.insert(0, PathStep::Element);
                p
            })
            .collect(),
        "SCALAR" if matches!(t["name"].as_str(), Some("String" | "ID")) => vec![vec![]],
        "INPUT_OBJECT" if depth < 4 => {
            let mut paths = Vec::new();
            for field in types.named(t["name"].as_str().unwrap())["inputFields"]
                .as_array()
                .unwrap()
            {
                for mut p in text_paths(types, &field["type"], depth + 1) {
                    p.insert(
                        0,
                        PathStep::Field(field["name"].as_str().unwrap().to_owned()),
                    );
                    paths.push(p);
                }
            }
            paths
        }
        _ => vec![],
    }
}

/// `filler` with `text` at `path`.
fn with_text(types: &Types, t: &Value, path: &[PathStep], text: &str, id: &str) -> Value {
    let t = if t["kind"] == "NON_NULL" {
        &t["ofType"]
    } else {
        t
    };
    match path.split_first() {
        None => json!(text),
        Some((PathStep::Element, rest)) => json!([with_text(types, &t["ofType"], rest, text, id)]),
        Some((PathStep::Field(name), rest)) => {
            let mut value = filler(types, t, id);
            let field = types.named(t["name"].as_str().unwrap())["inputFields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name.as_str())
                .unwrap()
                .clone();
            value[name.as_str()] = with_text(types, &field["type"], rest, text, id);
            value
        }
    }
}

impl Slot {
    fn document(&self) -> String {
        let definitions: Vec<String> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, (_, ty, _))| format!("$a{i}: {ty}"))
            .collect();
        let arguments: Vec<String> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| format!("{name}: $a{i}"))
            .collect();
        format!(
            "{}({}) {{ {}({}) {} }}",
            self.operation,
            definitions.join(", "),
            self.field,
            arguments.join(", "),
            self.selection
        )
    }

    /// The variables, with `text` in the fuzzed place and `id` for every other ID.
    fn variables(&self, types: &Types, text: &str, id: &str) -> Value {
        let mut variables = serde_json::Map::new();
        for (i, (_, _, ty)) in self.args.iter().enumerate() {
            let value = if i == self.fuzzed {
                with_text(types, ty, &self.path, text, id)
            } else {
                filler(types, ty, id)
            };
            variables.insert(format!("a{i}"), value);
        }
        Value::Object(variables)
    }
}

/// The first key the field does not refuse for its role.
async fn key_for(app: &TestApp, keys: &[String], slot: &Slot, types: &Types) -> String {
    for key in keys {
        let a = app
            .gql(
                Some(key),
                &slot.document(),
                slot.variables(types, "fuzz-key", "fuzz-key"),
            )
            .await;
        let code = a.body["errors"][0]["extensions"]["code"].as_str();
        if !matches!(code, Some("FORBIDDEN" | "UNAUTHENTICATED")) {
            return key.clone();
        }
    }
    keys[0].clone()
}

async fn slots(app: &TestApp, keys: &[String]) -> (Types, Vec<Slot>) {
    let schema = app.gql(Some(&keys[1]), INTROSPECTION, json!({})).await;
    let types = Types(
        schema.data()["__schema"]["types"]
            .as_array()
            .unwrap()
            .clone(),
    );
    let mut slots = Vec::new();
    for (operation, root) in [("query", "Query"), ("mutation", "Mutation")] {
        for field in types.named(root)["fields"].as_array().unwrap().clone() {
            let selection = match field["type"]["kind"].as_str() {
                Some("OBJECT") => "{ __typename }",
                Some("NON_NULL") if field["type"]["ofType"]["kind"] == "OBJECT" => "{ __typename }",
                _ => "",
            };
            let args = field["args"].as_array().unwrap();
            for (a, arg) in args.iter().enumerate() {
                for path in text_paths(&types, &arg["type"], 0) {
                    let mut sent = Vec::new();
                    let mut fuzzed = 0;
                    for (b, other) in args.iter().enumerate() {
                        if b == a || other["type"]["kind"] == "NON_NULL" {
                            if b == a {
                                fuzzed = sent.len();
                            }
                            sent.push((
                                other["name"].as_str().unwrap().to_owned(),
                                type_name(&other["type"]),
                                other["type"].clone(),
                            ));
                        }
                    }
                    let mut slot = Slot {
                        operation,
                        field: field["name"].as_str().unwrap().to_owned(),
                        args: sent,
                        fuzzed,
                        path,
                        selection,
                        key: String::new(),
                    };
                    slot.key = key_for(app, keys, &slot, &types).await;
                    slots.push(slot);
                }
            }
        }
    }
    // A send first in each case, while its user has an open channel and no open challenge:
    // only then does the idempotency key reach the database.
    slots.sort_by_key(|s| s.field != "sendCode");
    (types, slots)
}

/// Gives `user` a confirmed email address of its own (one mailbox for all would meet the cap on
/// codes per destination).
async fn enroll_email(app: &TestApp, key: &str, user: &str, mails: usize) {
    let added = app
        .gql(
            Some(key),
            "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e) { id } }",
            json!({ "u": user, "e": format!("{user}@example.com") }),
        )
        .await;
    let challenge = added.data()["addEmail"]["id"].clone();
    let code = crate::channels::mailed_code(app, mails).await;
    app.gql(
        Some(key),
        "mutation($u: ID!, $c: ID!, $k: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k) { codes } }",
        json!({ "u": user, "c": challenge, "k": code }),
    )
    .await
    .data();
}

fn text() -> impl Strategy<Value = String> {
    let nasty = prop::sample::select(vec![
        '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{ad}', '\u{200b}', '\u{200d}', '\u{200f}',
        '\u{2028}', '\u{202a}', '\u{202e}', '\u{2060}', '\u{2066}', '\u{2069}', '\u{feff}', ' ',
        'a', '/', '"', '\\',
    ]);
    prop_oneof![
        1 => any::<String>(),
        2 => prop::collection::vec(prop_oneof![1 => any::<char>(), 3 => nasty], 1..48)
            .prop_map(String::from_iter),
        1 => (any::<char>(), 200usize..20_000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// Cases run (each sends every slot once).
const CASES: usize = 12;

#[test]
fn arbitrary_text_in_every_argument_never_answers_internal() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, types, slots) = runtime.block_on(async {
        let app = spawn_app().await;
        let (_, admin) = app.create_tenant("Acme").await;
        let (_, app_key) = app.issue_key(&admin, "APP").await;
        let keys = vec![app_key, admin, app.operator_token.clone()];
        let (types, slots) = slots(&app, &keys).await;
        // Each case works on a user of its own, who has a confirmed email.
        for case in 0..CASES {
            enroll_email(&app, &keys[0], &format!("fuzz-{case}"), case + 1).await;
        }
        (app, types, slots)
    });
    // The schema has text arguments in queries, mutations and input objects.
    assert!(slots.len() > 20, "{slots:?}");
    assert!(slots.iter().any(|s| !s.path.is_empty()));

    let mut runner = TestRunner::new(Config {
        cases: CASES as u32,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let outcome = runner.run(&text(), |text| {
        // Shrinking runs more cases than CASES: they reuse the last user.
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("fuzz-{}", n.min(CASES - 1));
        runtime.block_on(async {
            for slot in &slots {
                let a = app
                    .gql(
                        Some(&slot.key),
                        &slot.document(),
                        slot.variables(&types, &text, &id),
                    )
                    .await;
                let internal = a.status >= 500
                    || a.body["errors"].as_array().is_some_and(|errors| {
                        errors.iter().any(|e| {
                            !e["extensions"]["code"].is_string()
                                || e["extensions"]["code"] == "INTERNAL"
                        })
                    });
                if internal {
                    return Err(TestCaseError::fail(format!(
                        "{} {}: {}",
                        slot.document(),
                        slot.variables(&types, &text, &id),
                        a.body
                    )));
                }
            }
            Ok(())
        })
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
