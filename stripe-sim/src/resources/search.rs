//! `GET /v1/{payment_intents,invoices}/search`: Stripe's search query language, as far as
//! a payment service uses it to find what it created: `metadata['key']:'value'` clauses
//! joined by `AND`. Anything else is refused as Stripe refuses a query it cannot parse.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{error::ApiError, store::newest_first};

/// The `metadata['key']:'value'` pairs a query asks for (all must match).
pub fn parse(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || {
        ApiError::invalid_param(
            "query",
            format!(
                "This search query is not supported here: {query:?}. Use metadata['key']:'value' clauses joined by AND."
            ),
        )
    };
    query
        .split(" AND ")
        .map(|clause| {
            let rest = clause.trim().strip_prefix("metadata[")?;
            let (key, rest) = quoted(rest)?;
            let rest = rest.strip_prefix("]:")?;
            let (value, rest) = quoted(rest)?;
            rest.is_empty().then(|| (key.to_owned(), value.to_owned()))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|clauses| !clauses.is_empty())
        .ok_or_else(bad)
}

/// `'text'` or `"text"` at the start of `s`: the text and what follows.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(quote)?;
    Some((&body[..end], &body[end + 1..]))
}

pub fn matches(metadata: &BTreeMap<String, String>, clauses: &[(String, String)]) -> bool {
    clauses
        .iter()
        .all(|(k, v)| metadata.get(k).is_some_and(|have| have == v))
}

/// A search result page of `(sequence, id, object)` matches, newest first, as lists
/// order them (this double returns every match on one page).
pub fn result(url: &str, matches: Vec<(u64, String, Value)>) -> Value {
    let data: Vec<Value> = newest_first(matches).into_iter().map(|(_, v)| v).collect();
    json!({
        "object": "search_result",
        "url": url,
        "has_more": false,
        "next_page": null,
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_clauses_are_parsed() {
        assert_eq!(
            parse("metadata['transaction_id']:'abc-1'").ok(),
            Some(vec![("transaction_id".into(), "abc-1".into())])
        );
        assert_eq!(
            parse("metadata[\"a\"]:\"1\" AND metadata['b']:'2'").ok(),
            Some(vec![("a".into(), "1".into()), ("b".into(), "2".into())])
        );
    }

    #[test]
    fn other_queries_are_refused() {
        for query in [
            "",
            "status:'succeeded'",
            "metadata['a']:'1' OR x",
            "metadata['a']:1",
        ] {
            assert!(parse(query).is_err(), "{query}");
        }
    }
}
