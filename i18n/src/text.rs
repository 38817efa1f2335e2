//! Text helpers shared by every rendered message: the sender's name as it may be shown, HTML
//! escaping, line wrapping, and the inventory of a Fluent file (for the completeness test).

use fluent_bundle::FluentResource;
use fluent_syntax::ast;

/// Longest sender name shown, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The sender's name as it may appear in a message: control characters (which could break a
/// header or an SMS) replaced by spaces, at most [`MAX_NAME_CHARS`] characters, never empty.
pub fn display_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_NAME_CHARS)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "Twofold".to_owned()
    } else {
        clean.to_owned()
    }
}

/// HTML-escapes text (sender names are chosen by tenants, not by us).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps text at `width` characters on spaces (never inside a word, and never on a
/// non-breaking space), so a mail part of ASCII text can be sent as 7bit.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut line = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if line > 0 && line + 1 + len > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += len;
    }
    out
}

/// Each message of `resource` with the variables (and message references) it uses, sorted.
pub(crate) fn messages_and_variables(resource: &FluentResource) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for entry in resource.entries() {
        if let ast::Entry::Message(message) = entry {
            let mut names = Vec::new();
            if let Some(value) = &message.value {
                pattern_names(value, &mut names);
            }
            for attribute in &message.attributes {
                pattern_names(&attribute.value, &mut names);
            }
            names.sort();
            names.dedup();
            out.push((message.id.name.to_owned(), names));
        }
    }
    out.sort();
    out
}

fn pattern_names(pattern: &ast::Pattern<&str>, names: &mut Vec<String>) {
    for element in &pattern.elements {
        if let ast::PatternElement::Placeable { expression } = element {
            expression_names(expression, names);
        }
    }
}

fn expression_names(expression: &ast::Expression<&str>, names: &mut Vec<String>) {
    match expression {
        ast::Expression::Inline(inline) => inline_names(inline, names),
        ast::Expression::Select { selector, variants } => {
            inline_names(selector, names);
            for variant in variants {
                pattern_names(&variant.value, names);
            }
        }
    }
}

fn inline_names(inline: &ast::InlineExpression<&str>, names: &mut Vec<String>) {
    match inline {
        ast::InlineExpression::VariableReference { id } => names.push(format!("${}", id.name)),
        ast::InlineExpression::MessageReference { id, .. } => names.push(id.name.to_owned()),
        ast::InlineExpression::TermReference { id, .. } => names.push(format!("-{}", id.name)),
        ast::InlineExpression::FunctionReference { arguments, .. } => {
            for argument in &arguments.positional {
                inline_names(argument, names);
            }
            for argument in &arguments.named {
                inline_names(&argument.value, names);
            }
        }
        ast::InlineExpression::Placeable { expression } => expression_names(expression, names),
        ast::InlineExpression::StringLiteral { .. }
        | ast::InlineExpression::NumberLiteral { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_cut() {
        assert_eq!(display_name("Acme\r\nBcc: x"), "Acme  Bcc: x");
        assert_eq!(display_name("  \n "), "Twofold");
        assert_eq!(display_name(&"é".repeat(70)).chars().count(), 64);
    }

    #[test]
    fn html_is_escaped_and_text_wrapped() {
        assert_eq!(
            escape_html("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(wrap("est\u{a0}: x", 5), "est\u{a0}:\nx");
    }
}
