//! Events: every change is recorded here (including events chaos drops from delivery) and
//! listed by `GET /v1/events`, newest first.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::store::{Store, paginate_with};

/// One recorded event; `body` is exactly what is listed and delivered.
#[derive(Debug, Clone)]
pub struct Event {
    /// 0, 1, 2, … in creation order: the chaos RNG is derived from it.
    pub seq: u64,
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub body: Value,
}

pub fn retrieve(store: &Store, id: &str) -> ApiResult {
    store
        .event(id)
        .map(|e| e.body.clone())
        .ok_or_else(|| ApiError::missing("event", id, "id"))
}

/// `type=invoice.*` style patterns: a trailing `*` matches any suffix.
fn type_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// `created` as an exact timestamp or as `created[gt|gte|lt|lte]`.
fn created_filter(params: &Params) -> Result<impl Fn(i64) -> bool, ApiError> {
    let (mut gt, mut gte, mut lt, mut lte) = (None, None, None, None);
    if let Some(range) = params.nested("created") {
        gt = range.i64("gt")?;
        gte = range.i64("gte")?;
        lt = range.i64("lt")?;
        lte = range.i64("lte")?;
    } else if let Some(exact) = params.i64("created")? {
        gte = Some(exact);
        lte = Some(exact);
    }
    Ok(move |created: i64| {
        gt.is_none_or(|v| created > v)
            && gte.is_none_or(|v| created >= v)
            && lt.is_none_or(|v| created < v)
            && lte.is_none_or(|v| created <= v)
    })
}

pub fn list(store: &Store, params: &Params) -> ApiResult {
    let mut types = params.str_list("types");
    if let Some(single) = params.str("type") {
        types.push(single.to_owned());
    }
    if types.len() > 20 {
        return Err(ApiError::invalid_param(
            "types",
            "At most 20 types can be given.",
        ));
    }
    let created = created_filter(params)?;
    let items: Vec<&Arc<Event>> = store
        .events
        .iter()
        .rev()
        .filter(|e| types.is_empty() || types.iter().any(|t| type_matches(t, &e.event_type)))
        .filter(|e| created(e.created))
        .collect();
    paginate_with(
        &items,
        |e| e.id.as_str(),
        |e| e.body.clone(),
        params,
        "/v1/events",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_star_matches_a_family_of_types() {
        assert!(type_matches("invoice.*", "invoice.paid"));
        assert!(!type_matches("invoice.*", "invoiceitem.created"));
        assert!(type_matches("charge.refunded", "charge.refunded"));
        assert!(!type_matches("charge.refunded", "charge.refund.updated"));
    }
}
