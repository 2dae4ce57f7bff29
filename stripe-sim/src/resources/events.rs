//! Events: every change is recorded in an [`EventLog`] (including events chaos drops from
//! delivery) and listed by `GET /v1/events`, newest first, as Stripe serves it.
//!
//! The log is bounded: it keeps the newest `retention` events and none older than Stripe's
//! 30 days, each stored once as the serialized JSON that is listed and delivered (a parsed
//! `Value` costs several times its text). A cursor that fell out of the log is answered like
//! any unknown id, 404 `resource_missing`, which is what a catch-up must be ready for.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::store::Store;

/// How long Stripe keeps events listable.
pub const RETENTION_SECONDS: i64 = 30 * 24 * 3600;

/// One recorded event; `body` is exactly what is listed and delivered.
#[derive(Debug, Clone)]
pub struct Event {
    /// Increasing in creation order across both modes: the chaos RNG is derived from it.
    pub seq: u64,
    pub id: String,
    pub event_type: String,
    pub created: i64,
    /// The serialized event.
    pub body: Bytes,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The newest events of one mode, oldest first, with an index by id.
#[derive(Debug)]
pub struct EventLog {
    events: VecDeque<Arc<Event>>,
    by_id: HashMap<String, u64>,
    retention: usize,
}

impl EventLog {
    pub fn new(retention: usize) -> Self {
        Self {
            events: VecDeque::new(),
            by_id: HashMap::new(),
            retention: retention.max(1),
        }
    }

    /// Appends an event and forgets what falls out of the retention (count or age).
    pub fn push(&mut self, event: Arc<Event>) {
        let oldest_kept = event.created - RETENTION_SECONDS;
        self.by_id.insert(event.id.clone(), event.seq);
        self.events.push_back(event);
        while self.events.len() > self.retention
            || self.events.front().is_some_and(|e| e.created < oldest_kept)
        {
            if let Some(old) = self.events.pop_front() {
                self.by_id.remove(&old.id);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Event>> {
        self.position(id).map(|index| &self.events[index])
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Event>> {
        self.events.iter()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    fn position(&self, id: &str) -> Option<usize> {
        let seq = *self.by_id.get(id)?;
        self.events.binary_search_by_key(&seq, |e| e.seq).ok()
    }
}

pub fn retrieve(store: &Store, id: &str) -> ApiResult {
    store
        .events
        .get(id)
        .map(|e| e.json())
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
pub fn created_filter(params: &Params) -> Result<impl Fn(i64) -> bool, ApiError> {
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

fn limit(params: &Params) -> Result<usize, ApiError> {
    let limit = params.i64("limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "This value must be between 1 and 100.",
        ));
    }
    Ok(usize::try_from(limit).unwrap_or(10))
}

/// `GET /v1/events`: newest first; `starting_after` pages to older events, `ending_before`
/// to newer ones (the `limit` nearest the cursor, still newest first). Reads only the page
/// it returns, so paging through a full log costs the log once.
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
    let limit = limit(params)?;
    let wanted = |e: &&Arc<Event>| {
        (types.is_empty() || types.iter().any(|t| type_matches(t, &e.event_type)))
            && created(e.created)
    };
    let log = &store.events;
    let cursor = |param: &str, id: &str| {
        log.position(id)
            .ok_or_else(|| ApiError::missing("event", id, param))
    };
    let (page, has_more): (Vec<&Arc<Event>>, bool) =
        if let Some(before) = params.str("ending_before") {
            let newer = log.events.range(cursor("ending_before", before)? + 1..);
            let mut page: Vec<_> = newer.filter(wanted).take(limit + 1).collect();
            let has_more = page.len() > limit;
            page.truncate(limit);
            page.reverse();
            (page, has_more)
        } else {
            let end = match params.str("starting_after") {
                Some(after) => cursor("starting_after", after)?,
                None => log.len(),
            };
            let older = log.events.range(..end).rev();
            let mut page: Vec<_> = older.filter(wanted).take(limit + 1).collect();
            let has_more = page.len() > limit;
            page.truncate(limit);
            (page, has_more)
        };
    let data: Vec<Value> = page.into_iter().map(|e| e.json()).collect();
    Ok(json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/events"}))
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

    fn event(seq: u64, created: i64) -> Arc<Event> {
        Arc::new(Event {
            seq,
            id: format!("evt_{seq}"),
            event_type: "customer.created".into(),
            created,
            body: Bytes::from_static(b"{}"),
        })
    }

    #[test]
    fn the_log_keeps_the_newest_events_up_to_its_retention() {
        let mut log = EventLog::new(3);
        for seq in [1, 4, 6, 9] {
            log.push(event(seq, 1_000));
        }
        let kept: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(kept, [4, 6, 9]);
        assert!(log.get("evt_1").is_none(), "forgotten with its index entry");
        assert_eq!(log.get("evt_6").map(|e| e.seq), Some(6));
    }

    #[test]
    fn events_older_than_thirty_days_are_forgotten() {
        let mut log = EventLog::new(100);
        log.push(event(1, 0));
        log.push(event(2, RETENTION_SECONDS + 1));
        let kept: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(kept, [2]);
    }
}
