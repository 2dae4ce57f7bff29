//! Real Stripe payloads from many API versions are all accepted and stored as sent.
//! Some recorded files reuse an event id (dashboard samples), and a reused id is a
//! duplicate by design, so those go to a fresh instance and database.

use std::{collections::HashSet, path::PathBuf};

use anyhow::Context as _;

use crate::helpers::{Result, SECRET, TestApp, now};
use webhook_ingestor::signature::signature_header;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_stripe_event_is_accepted_and_stored() -> Result {
    let mut app = TestApp::start().await?;
    let mut seen = HashSet::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/stripe-events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the recorded events in {}",
        dir.display()
    );

    for path in &files {
        let raw = std::fs::read(path)?;
        let sent: serde_json::Value = serde_json::from_slice(&raw)?;
        let id = sent["id"].as_str().context("fixture has no id")?.to_owned();
        if !seen.insert(id.clone()) {
            app = TestApp::start().await?;
            seen = HashSet::from([id.clone()]);
        }
        // Signed over the file's exact bytes, as Stripe signs what it sends.
        let header = signature_header(SECRET, now(), &raw);
        let (status, text) = app.post_raw(raw, Some(header)).await?;
        assert_eq!(status, 200, "{}: {text}", path.display());

        let stored: (serde_json::Value, String) =
            sqlx::query_as("SELECT payload, type FROM stripe_events WHERE id = $1")
                .bind(&id)
                .fetch_one(app.pool())
                .await
                .with_context(|| format!("{} not stored", path.display()))?;
        assert_eq!(stored.0, sent, "{}: payload changed", path.display());
        assert_eq!(Some(stored.1.as_str()), sent["type"].as_str());
    }
    Ok(())
}
