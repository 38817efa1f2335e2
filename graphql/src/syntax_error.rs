//! GraphQL syntax errors as one readable line: "syntax error at line 1 column 8: expected
//! name", instead of the parser's multi-line diagram (which also quotes the caller's document
//! back, line by line, into logs and client error displays).

use async_graphql::ServerError;

/// Longest "expected ..." detail kept; the parser can list many alternatives.
const MAX_DETAIL_CHARS: usize = 160;

/// `error` as one line when the parser made it a diagram; any other error as it is.
pub(crate) fn one_line_error(mut error: ServerError) -> ServerError {
    if error.message.contains('\n') {
        let at = error.locations.first().copied();
        error.message = one_line(&error.message, at.map(|p| (p.line, p.column)));
    }
    error
}

/// The parser's verdict (its `= expected ...` line) with the position in front.
fn one_line(diagram: &str, at: Option<(usize, usize)>) -> String {
    let detail = diagram
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("= "))
        .unwrap_or("the document is not valid GraphQL");
    let mut detail: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
    if detail.chars().count() == MAX_DETAIL_CHARS {
        detail.push_str("...");
    }
    match at {
        Some((line, column)) => format!("syntax error at line {line} column {column}: {detail}"),
        None => format!("syntax error: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn the_diagram_becomes_one_line() {
        let e = async_graphql::parser::parse_query("{ user(").unwrap_err();
        assert!(
            e.to_string().contains('\n'),
            "the parser's own message has a diagram"
        );
        let line = one_line(&e.to_string(), Some((1, 8)));
        assert!(
            line.starts_with("syntax error at line 1 column 8: expected "),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
