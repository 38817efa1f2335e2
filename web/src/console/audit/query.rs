//! The audit page's filter in its query string, shared by the page, its export and its live
//! stream, so all three show the same events for the same URL.
//!
//! The parameters are the API export's (`userId`, `eventType` repeated, `from`, `to`) plus
//! `after` for paging; `from` and `to` are what a `datetime-local` control sends
//! (`2026-12-01T09:30`, no zone) and are read as UTC, the zone every time on the page is in.

use chrono::{DateTime, NaiveDateTime, Utc};
use twofold_graphql::input_check::text::{self, Kind};
use twofold_services::audit::{AuditFilterInput, MAX_EVENT_TYPES};
use twofold_services::ServiceError;

/// The filter as the browser sent it (kept as text, to refill the form and build links).
#[derive(Debug, Default, Clone)]
pub(crate) struct AuditQuery {
    pub(crate) user_id: String,
    pub(crate) event_types: Vec<String>,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) after: Option<String>,
}

fn invalid(message: String) -> ServiceError {
    ServiceError::InvalidInput(message)
}

/// A `datetime-local` value (minutes or seconds) as UTC; a full RFC 3339 time is taken as is.
fn utc(name: &str, value: &str) -> Result<DateTime<Utc>, ServiceError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            invalid(format!(
                "`{name}` must be a date and time such as 2026-12-01T09:30 (UTC)"
            ))
        })
}

impl AuditQuery {
    /// Reads the query string; every value goes through the API's text check. Unknown
    /// parameters are ignored (a page URL may carry more than its filter).
    pub(crate) fn parse(raw: &str) -> Result<Self, ServiceError> {
        let mut q = Self::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            let kind = match name.as_ref() {
                "userId" | "eventType" | "after" => Kind::Id,
                "from" | "to" => Kind::Text,
                _ => continue,
            };
            // A single-valued parameter given twice is ambiguous, as in the API's export.
            if name != "eventType" {
                if seen.iter().any(|s| s == name.as_ref()) {
                    return Err(invalid(format!(
                        "`{name}` is given more than once; give it once"
                    )));
                }
                seen.push(name.to_string());
            }
            text::check(&name, &value, kind).map_err(invalid)?;
            let value = value.into_owned();
            match name.as_ref() {
                "userId" => q.user_id = value,
                "eventType" => {
                    if !value.is_empty() {
                        q.event_types.push(value)
                    }
                    // Refused here, not only by the service: a refused filter is echoed back
                    // into the page's form and links, and must not be as long as a request line.
                    if q.event_types.len() > MAX_EVENT_TYPES {
                        return Err(invalid(format!(
                            "eventTypes may name at most {MAX_EVENT_TYPES} event types"
                        )));
                    }
                }
                "from" => q.from = value,
                "to" => q.to = value,
                _ => q.after = Some(value).filter(|v| !v.is_empty()),
            }
        }
        Ok(q)
    }

    /// The filter for the audit service, which checks it as it checks the API's.
    pub(crate) fn filter(&self) -> Result<AuditFilterInput, ServiceError> {
        let time =
            |name: &str, value: &str| (!value.is_empty()).then(|| utc(name, value)).transpose();
        Ok(AuditFilterInput {
            user_id: Some(self.user_id.clone()).filter(|u| !u.is_empty()),
            event_types: Some(self.event_types.clone()).filter(|t| !t.is_empty()),
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
        })
    }

    /// The filter as a query string (no `after`): for the export, live and paging links.
    pub(crate) fn filter_query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if !self.user_id.is_empty() {
            s.append_pair("userId", &self.user_id);
        }
        for t in &self.event_types {
            s.append_pair("eventType", t);
        }
        if !self.from.is_empty() {
            s.append_pair("from", &self.from);
        }
        if !self.to.is_empty() {
            s.append_pair("to", &self.to);
        }
        s.finish()
    }

    /// `path` with the filter, and `extra` pairs after it.
    pub(crate) fn link(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let mut query = self.filter_query();
        for (k, v) in extra {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .append_pair(k, v)
                    .finish(),
            );
        }
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_values_are_utc_and_links_keep_the_filter() {
        let q = AuditQuery::parse(
            "userId=al%26ice&eventType=CodeSent&eventType=CodeVerified&from=2026-12-01T09:30&to=&after=a1x",
        )
        .unwrap();
        let f = q.filter().unwrap();
        assert_eq!(f.from.unwrap().to_rfc3339(), "2026-12-01T09:30:00+00:00");
        assert!(f.to.is_none());
        assert_eq!(f.user_id.as_deref(), Some("al&ice"));
        assert_eq!(
            q.link("/console/audit", &[("after", "c")]),
            "/console/audit?userId=al%26ice&eventType=CodeSent&eventType=CodeVerified&from=2026-12-01T09%3A30&after=c"
        );
        assert!(AuditQuery::parse("userId=a&userId=b").is_err());
        assert!(AuditQuery::parse("from=yesterday")
            .unwrap()
            .filter()
            .is_err());
    }
}
