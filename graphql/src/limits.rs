//! Bounds on the shape of a request, checked before anything recursive reads it.
//!
//! async-graphql's parser (pest) and validator recurse once per level of nesting, and its
//! depth and complexity limits only run after parsing and only count selections, not values:
//! a 4 KB document whose argument is a list nested 2,000 deep overflowed a worker thread's
//! stack and aborted the process. So the text is scanned first, linearly and without
//! recursion, and refused when its brackets nest deeper than [`MAX_NESTING`]; variables are
//! measured the same way; and a parsed document is refused when inlining its fragments would
//! make it larger than [`MAX_EXPANDED_SELECTIONS`] (a few fragments each spreading the next
//! twice expand exponentially, and the validator inlines them without memoising).

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Value};
use std::collections::HashMap;

/// Deepest nesting of `[`, `{` and `(` in a document (selections, arguments, list and object
/// values and list types together), and of lists and objects in its variables. The schema's
/// selection depth limit is 16, so real documents stay far below this.
pub const MAX_NESTING: usize = 64;

/// Most selections a document may hold once its fragments are inlined (all operations
/// together). The complexity limit (2,000) is lower, but it is only computed after this check
/// has made computing it cheap.
pub const MAX_EXPANDED_SELECTIONS: usize = 10_000;

/// Why a request was refused; the message is safe to show (it never echoes the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses a document whose brackets, outside strings and comments, nest deeper than
/// [`MAX_NESTING`]. Linear in the length of the text; needs no valid syntax (an unbalanced
/// document is measured by its openings, which is what a recursive parser would descend).
pub fn check_document_nesting(document: &str) -> Result<(), Refusal> {
    let bytes = document.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                // Block string: ends at the next `"""` not escaped as `\"""`.
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                // A string ends at its closing quote, or (invalid, but the parser stops there
                // too) at the end of the line; brackets after that count again.
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\n' | b'\r') {
                    let escaped = bytes[i] == b'\\'
                        && bytes
                            .get(i + 1)
                            .is_some_and(|b| !matches!(b, b'\n' | b'\r'));
                    i += if escaped { 2 } else { 1 };
                }
                if i < bytes.len() && bytes[i] != b'"' {
                    continue;
                }
            }
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Refusal(format!(
                        "the document is nested more than {MAX_NESTING} levels deep (brackets, \
                         braces and parentheses together)"
                    )));
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses variables (or extensions) whose lists and objects nest deeper than
/// [`MAX_NESTING`]. Iterative, so measuring cannot overflow either.
pub fn check_value_nesting<'a>(
    what: &str,
    values: impl IntoIterator<Item = &'a Value>,
) -> Result<(), Refusal> {
    let mut pending: Vec<(&Value, usize)> = values.into_iter().map(|v| (v, 1)).collect();
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::List(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        if depth > MAX_NESTING {
            return Err(Refusal(format!(
                "{what} are nested more than {MAX_NESTING} levels deep"
            )));
        }
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

/// Refuses a parsed document that would hold more than [`MAX_EXPANDED_SELECTIONS`] selections
/// with its fragments inlined, or that spreads fragments in a cycle. Each fragment is sized
/// once, so this is linear in the document.
pub fn check_expansion(document: &ExecutableDocument) -> Result<(), Refusal> {
    let mut sizer = Sizer {
        document,
        sizes: HashMap::new(),
    };
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        total = total.saturating_add(sizer.selection_set(&operation.node.selection_set.node, 0)?);
    }
    if total > MAX_EXPANDED_SELECTIONS {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> Refusal {
    Refusal(format!(
        "the document holds more than {MAX_EXPANDED_SELECTIONS} selections once its fragments \
         are inlined"
    ))
}

/// A fragment being sized (so a spread back into it is a cycle) or its size.
#[derive(Clone, Copy)]
enum Size {
    InProgress,
    Done(usize),
}

struct Sizer<'a> {
    document: &'a ExecutableDocument,
    sizes: HashMap<&'a Name, Size>,
}

impl<'a> Sizer<'a> {
    /// `levels`: selection sets and fragments entered so far. Nesting of selection sets is
    /// already bounded by the text scan; chains of fragments are bounded here.
    fn selection_set(&mut self, set: &'a SelectionSet, levels: usize) -> Result<usize, Refusal> {
        if levels > 2 * MAX_NESTING {
            return Err(Refusal(format!(
                "fragments are spread more than {MAX_NESTING} levels deep"
            )));
        }
        let mut size = 0usize;
        for selection in &set.items {
            let add = match &selection.node {
                Selection::Field(field) => {
                    1 + self.selection_set(&field.node.selection_set.node, levels + 1)?
                }
                Selection::InlineFragment(inline) => {
                    1 + self.selection_set(&inline.node.selection_set.node, levels + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    1 + self.fragment(&spread.node.fragment_name.node, levels + 1)?
                }
            };
            size = size.saturating_add(add);
            if size > MAX_EXPANDED_SELECTIONS {
                return Err(too_large());
            }
        }
        Ok(size)
    }

    fn fragment(&mut self, name: &'a Name, levels: usize) -> Result<usize, Refusal> {
        match self.sizes.get(name) {
            Some(Size::Done(size)) => return Ok(*size),
            Some(Size::InProgress) => {
                return Err(Refusal(format!(
                    "fragment `{}` spreads itself",
                    shown(name.as_str())
                )))
            }
            None => {}
        }
        // An unknown fragment is left to validation, which names it.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(0);
        };
        self.sizes.insert(name, Size::InProgress);
        let size = self.selection_set(&fragment.node.selection_set.node, levels)?;
        self.sizes.insert(name, Size::Done(size));
        Ok(size)
    }
}

/// A name from the document, cut short so a message never carries much of the input.
fn shown(name: &str) -> String {
    name.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{{ __typename(x: {}{}) }}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn nesting_up_to_the_bound_passes_and_beyond_it_is_refused() {
        // The selection set and the argument list add two levels.
        assert!(check_document_nesting(&nested(MAX_NESTING - 2)).is_ok());
        assert!(check_document_nesting(&nested(MAX_NESTING - 1)).is_err());
        assert!(check_document_nesting(&nested(100_000)).is_err());
        assert!(check_document_nesting(&"{".repeat(1_000)).is_err());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(500);
        for document in [
            format!("{{ a(x: \"{deep}\") }}"),
            format!("{{ a(x: \"\\\"{deep}\") }}"),
            format!("{{ a(x: \"\"\"{deep} \\\"\"\" {deep}\"\"\") }}"),
            format!("# {deep}\n{{ a }}"),
        ] {
            assert!(check_document_nesting(&document).is_ok(), "{document}");
        }
        // A string that ends, or a line that ends an unterminated string, lets the brackets
        // after it count again.
        assert!(check_document_nesting(&format!("{{ a(x: \"\n{deep}) }}")).is_err());
        assert!(check_document_nesting(&format!("{{ a(x: \"\\\n{deep}) }}")).is_err());
        assert!(check_document_nesting(&format!("{{ a(x: \"\") {deep} }}")).is_err());
        assert!(check_document_nesting(&format!("\"\"\"a\"\"\"{deep}")).is_err());
    }

    #[test]
    fn nested_variables_are_refused_past_the_bound() {
        let mut value = Value::Null;
        for _ in 0..MAX_NESTING {
            value = Value::List(vec![value]);
        }
        assert!(check_value_nesting("variables", [&value]).is_ok());
        let value = Value::List(vec![value]);
        assert!(check_value_nesting("variables", [&value]).is_err());
    }

    #[test]
    fn fragments_that_double_at_each_level_are_refused_before_validation() {
        let mut document = String::from("{ ...F0 }\n");
        for i in 0..30 {
            document.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        document.push_str("fragment F30 on Query { __typename }\n");
        let parsed = async_graphql::parser::parse_query(&document).unwrap();
        assert!(check_expansion(&parsed).is_err());
    }

    #[test]
    fn a_fragment_cycle_and_a_long_fragment_chain_are_refused() {
        let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        let parsed = async_graphql::parser::parse_query(cycle).unwrap();
        assert!(check_expansion(&parsed).is_err());

        let mut chain = String::from("{ ...F0 }\n");
        for i in 0..2_000 {
            chain.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
        }
        chain.push_str("fragment F2000 on Query { __typename }\n");
        let parsed = async_graphql::parser::parse_query(&chain).unwrap();
        assert!(check_expansion(&parsed).is_err());
    }

    #[test]
    fn an_ordinary_document_passes() {
        let document = "query Q($u: ID!) { user(userId: $u) { ...F } } \
                        fragment F on UserTwoFactor { userId enrolledMethods }";
        assert!(check_document_nesting(document).is_ok());
        let parsed = async_graphql::parser::parse_query(document).unwrap();
        assert!(check_expansion(&parsed).is_ok());
    }
}
