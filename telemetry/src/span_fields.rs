//! How a span's fields are kept for the JSON log lines.
//!
//! tracing-subscriber's `JsonFields` keeps them as one JSON object and, each time a
//! field is recorded on a live span, parses that object, adds the field and writes it
//! again. The webhook span records five fields as it learns them, so every webhook
//! paid for five parses. [`AppendJsonFields`] writes the new fields after the old ones
//! instead. A field recorded twice then appears twice, and the later value is the one a
//! log line shows: the JSON formatter reads the object with serde_json, whose maps keep
//! the last value of a repeated key.

use std::fmt;

use tracing_subscriber::{
    field::RecordFields,
    fmt::{
        FormatFields, FormattedFields,
        format::{JsonFields, Writer},
    },
};

/// [`JsonFields`], with recording on a live span an append instead of a rewrite.
#[derive(Debug, Default)]
pub struct AppendJsonFields(JsonFields);

impl<'w> FormatFields<'w> for AppendJsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        self.0.format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        self.0.format_fields(Writer::new(&mut added), fields)?;
        append_object(&mut current.fields, &added);
        Ok(())
    }
}

/// Appends the members of the JSON object `added` to the JSON object `current`
/// (either may be empty: no fields yet).
fn append_object(current: &mut String, added: &str) {
    let members = added
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_default();
    if members.is_empty() {
        return;
    }
    match current.strip_suffix('}') {
        Some(open) if open.len() > 1 => {
            current.truncate(open.len());
            current.push(',');
        }
        // `{}` or nothing yet.
        _ => {
            current.clear();
            current.push('{');
        }
    }
    current.push_str(members);
    current.push('}');
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing::field::Empty;
    use tracing_subscriber::{fmt::MakeWriter, layer::SubscriberExt};

    use super::*;

    #[test]
    fn members_are_appended_to_an_object_or_start_one() {
        let mut fields = String::new();
        append_object(&mut fields, "{}");
        assert_eq!(fields, "");
        append_object(&mut fields, r#"{"a":1}"#);
        assert_eq!(fields, r#"{"a":1}"#);
        append_object(&mut fields, r#"{"b":"x","c":true}"#);
        assert_eq!(fields, r#"{"a":1,"b":"x","c":true}"#);
        let mut empty_object = "{}".to_owned();
        append_object(&mut empty_object, r#"{"a":1}"#);
        assert_eq!(empty_object, r#"{"a":1}"#);
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Lines {
        type Writer = Lines;
        fn make_writer(&self) -> Lines {
            self.clone()
        }
    }

    /// The log lines `work` writes through the services' JSON layer.
    fn log_lines(work: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(crate::json_logs(lines.clone()));
        tracing::subscriber::with_default(subscriber, work);
        let bytes = lines.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn a_log_line_shows_the_span_fields_as_last_recorded() {
        let lines = log_lines(|| {
            let request = tracing::info_span!("request", rpc = "CreatePayment");
            let _request = request.enter();
            let span = tracing::info_span!("webhook", event_id = Empty, outcome = Empty, n = 1);
            let _entered = span.enter();
            tracing::info!("before");
            span.record("event_id", "evt_1");
            span.record("outcome", "stored").record("n", 2);
            span.record("outcome", "duplicate");
            tracing::info!(state = "applied", "after");
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0]["span"],
            serde_json::json!({"name": "webhook", "n": 1})
        );
        let webhook = serde_json::json!(
            {"name": "webhook", "event_id": "evt_1", "outcome": "duplicate", "n": 2}
        );
        assert_eq!(lines[1]["span"], webhook);
        assert_eq!(lines[1]["fields"]["state"], "applied");
        // The parent's fields stay on a nested span's lines.
        assert_eq!(
            lines[1]["spans"],
            serde_json::json!([{"name": "request", "rpc": "CreatePayment"}, webhook])
        );
    }
}
