//! The accessibility check: axe-core (vendored, see `tests/assets/axe-core/README.md`) injected
//! into the page under test and run there; its serious and critical violations fail the test.

use fantoccini::Client;
use serde_json::Value;

const AXE_SOURCE: &str = include_str!("../../assets/axe-core/axe.min.js");

/// Runs axe on the whole document of the current page; the full result, as axe gives it.
pub(super) async fn run(client: &Client) -> Value {
    // A WebDriver script runs outside the page's Content-Security-Policy, so axe can be
    // injected into pages that allow no inline script (all of ours).
    let present = client
        .execute("return typeof window.axe === 'object';", vec![])
        .await
        .expect("looking for axe in the page");
    if present != Value::Bool(true) {
        client
            .execute(AXE_SOURCE, vec![])
            .await
            .expect("injecting axe-core into the page");
    }
    let answer = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             window.axe.run(document)
               .then(result => done(JSON.stringify(result)))
               .catch(error => done(JSON.stringify({ axeError: String(error) })));",
            vec![],
        )
        .await
        .expect("running axe-core in the page");
    let text = answer.as_str().expect("axe answers with a JSON string");
    let result: Value = serde_json::from_str(text).expect("axe's answer is JSON");
    if let Some(error) = result.get("axeError") {
        panic!("axe-core failed in the page: {error}");
    }
    assert!(
        result["violations"].is_array() && result["passes"].is_array(),
        "axe's answer has no violations or passes: {text:.500}"
    );
    result
}

/// One rule that failed, with the elements it failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The axe rule, e.g. `image-alt`.
    pub rule: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    /// What the rule wants, in a sentence.
    pub help: String,
    /// Where the rule is explained.
    pub help_url: String,
    /// A CSS selector for every element that fails the rule.
    pub targets: Vec<String>,
}

impl Violation {
    /// Whether this violation fails the check.
    pub fn is_blocking(&self) -> bool {
        matches!(self.impact.as_str(), "serious" | "critical")
    }
}

/// The violations in an axe result.
pub fn violations(result: &Value) -> Vec<Violation> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    result["violations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|v| Violation {
            rule: text(&v["id"]),
            impact: text(&v["impact"]),
            help: text(&v["help"]),
            help_url: text(&v["helpUrl"]),
            targets: v["nodes"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                // A target is a list of selectors: the element, then into shadow roots/frames.
                .map(|node| match &node["target"] {
                    Value::Array(path) => path
                        .iter()
                        .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(" >> "),
                    other => other.to_string(),
                })
                .collect(),
        })
        .collect()
}

/// A readable list of `violations`, one rule per paragraph.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            format!(
                "- {} ({}): {}\n  {}\n  on: {}",
                v.rule,
                v.impact,
                v.help,
                v.help_url,
                v.targets.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serious_and_critical_block_and_milder_ones_do_not() {
        let result = json!({ "violations": [
            { "id": "image-alt", "impact": "critical", "help": "Images must have alternative text",
              "helpUrl": "https://example.test/image-alt",
              "nodes": [{ "target": ["img"] }, { "target": ["#frame", "img.logo"] }] },
            { "id": "region", "impact": "moderate", "help": "Content in landmarks",
              "helpUrl": "u", "nodes": [{ "target": ["p"] }] },
            { "id": "color-contrast", "impact": "serious", "help": "Contrast",
              "helpUrl": "u", "nodes": [] },
        ]});
        let found = violations(&result);
        let blocking: Vec<_> = found.iter().filter(|v| v.is_blocking()).collect();
        assert_eq!(
            blocking.iter().map(|v| v.rule.as_str()).collect::<Vec<_>>(),
            ["image-alt", "color-contrast"]
        );
        assert_eq!(found[0].targets, ["img", "#frame >> img.logo"]);
        let text = describe(&found[..1]);
        assert!(text.contains("- image-alt (critical): Images must have alternative text"));
        assert!(text.contains("on: img, #frame >> img.logo"), "{text}");
    }
}
