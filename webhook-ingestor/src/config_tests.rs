use secrecy::ExposeSecret;

use super::*;

fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(vars)
}

const MINIMAL: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://u:pw@db/payments"),
    ("STRIPE_SECRET_KEY", "sk_test_1"),
    ("STRIPE_WEBHOOK_SECRETS", "whsec_a"),
];

#[test]
fn defaults_fill_everything_but_the_secrets() -> Result<(), ConfigError> {
    let config = load(MINIMAL)?;
    assert_eq!(
        config.addr,
        std::net::SocketAddr::from(([0, 0, 0, 0], 8080))
    );
    assert_eq!(config.stripe_api_base, "https://api.stripe.com");
    assert_eq!(config.signature_tolerance, Duration::from_secs(300));
    assert_eq!(config.body_limit, 1024 * 1024);
    assert_eq!(config.webhook_secrets.len(), 1);
    assert_eq!(config.reconcile_interval, Some(Duration::from_secs(60)));
    assert_eq!(config.retry, RetryPolicy::DEFAULT);
    assert_eq!(config.group_commit, GroupCommitConfig::DEFAULT);
    assert!(config.group_commit.enabled());
    Ok(())
}

#[test]
fn group_commit_is_turned_off_by_a_group_of_one() -> Result<(), ConfigError> {
    let mut vars = MINIMAL.to_vec();
    vars.push(("INGESTOR_GROUP_COMMIT_MAX_EVENTS", "1"));
    let config = load(&vars)?;
    assert!(!config.group_commit.enabled());
    Ok(())
}

#[test]
fn group_commit_is_sized_by_its_settings() -> Result<(), ConfigError> {
    let mut vars = MINIMAL.to_vec();
    vars.push(("INGESTOR_GROUP_COMMIT_MAX_EVENTS", "16"));
    vars.push(("INGESTOR_GROUP_COMMIT_COMMITTERS", "3"));
    let config = load(&vars)?;
    assert!(config.group_commit.enabled());
    assert_eq!(
        config.group_commit,
        GroupCommitConfig {
            max_events: 16,
            committers: 3
        }
    );
    Ok(())
}

#[test]
fn the_doorbell_rings_after_the_commit_unless_turned_off() -> Result<(), ConfigError> {
    assert!(load(MINIMAL)?.doorbell_after_commit);
    let mut vars = MINIMAL.to_vec();
    vars.push(("INGESTOR_DOORBELL_AFTER_COMMIT", "false"));
    assert!(!load(&vars)?.doorbell_after_commit);
    Ok(())
}

#[test]
fn missing_secrets_are_all_reported_together() {
    let err = load(&[]).err().map(|e| e.problems).unwrap_or_default();
    assert_eq!(
        err,
        [
            "DATABASE_URL is required",
            "STRIPE_SECRET_KEY is required",
            "STRIPE_WEBHOOK_SECRETS is required",
        ]
    );
}

#[test]
fn bad_values_are_reported_with_the_missing_ones() {
    let err = load(&[
        ("INGESTOR_ADDR", "nowhere"),
        ("INGESTOR_SIGNATURE_TOLERANCE_SECS", "0"),
        ("INGESTOR_BODY_LIMIT_BYTES", "lots"),
        ("STRIPE_API_BASE", "api.stripe.com"),
        ("STRIPE_WEBHOOK_SECRETS", "whsec_a,,whsec_b"),
    ])
    .err()
    .map(|e| e.problems)
    .unwrap_or_default();
    assert_eq!(err.len(), 7, "{err:#?}");
    assert!(err.iter().any(|p| p.starts_with("INGESTOR_ADDR")));
    assert!(err.iter().any(|p| p.contains("greater than zero")));
    assert!(
        err.iter()
            .any(|p| p.starts_with("INGESTOR_BODY_LIMIT_BYTES"))
    );
    assert!(err.iter().any(|p| p.starts_with("STRIPE_API_BASE")));
    assert!(err.iter().any(|p| p.contains("empty entry")));
}

#[test]
fn several_webhook_secrets_allow_rotation() -> Result<(), ConfigError> {
    let mut vars = MINIMAL.to_vec();
    vars.push(("STRIPE_WEBHOOK_SECRETS", " whsec_old , whsec_new "));
    let config = load(&vars)?;
    let secrets: Vec<&str> = config
        .webhook_secrets
        .iter()
        .map(|s| s.expose_secret())
        .collect();
    assert_eq!(secrets, ["whsec_old", "whsec_new"]);
    Ok(())
}

#[test]
fn zero_turns_the_sweepers_off() -> Result<(), ConfigError> {
    let mut vars = MINIMAL.to_vec();
    vars.push(("INGESTOR_RECONCILE_INTERVAL_SECS", "0"));
    vars.push(("INGESTOR_CATCH_UP_INTERVAL_SECS", "0"));
    let config = load(&vars)?;
    assert_eq!(config.reconcile_interval, None);
    assert_eq!(config.catch_up_interval, None);
    Ok(())
}

#[test]
fn debug_output_hides_secrets_and_the_database_password() -> Result<(), ConfigError> {
    let config = load(MINIMAL)?;
    let shown = format!("{config:?}");
    assert!(!shown.contains("pw"), "{shown}");
    assert!(!shown.contains("whsec_a"), "{shown}");
    assert!(!shown.contains("sk_test_1"), "{shown}");
    assert!(shown.contains("postgres://u:***@db/payments"), "{shown}");
    Ok(())
}

#[test]
fn migrating_at_start_is_on_unless_turned_off() -> Result<(), ConfigError> {
    assert!(load(MINIMAL)?.migrate_at_start);
    let mut vars = MINIMAL.to_vec();
    vars.push(("INGESTOR_MIGRATE_AT_START", "false"));
    assert!(!load(&vars)?.migrate_at_start);
    vars.pop();
    vars.push(("INGESTOR_MIGRATE_AT_START", "sometimes"));
    let err = load(&vars).expect_err("not a boolean");
    assert!(
        err.to_string().contains("INGESTOR_MIGRATE_AT_START"),
        "{err}"
    );
    Ok(())
}

#[test]
fn only_events_of_the_keys_mode_are_applied() -> Result<(), ConfigError> {
    assert_eq!(load(MINIMAL)?.inbox_rules().mode, StripeMode::Test);
    let mut vars = MINIMAL.to_vec();
    vars[1] = ("STRIPE_SECRET_KEY", "rk_live_1");
    assert_eq!(load(&vars)?.inbox_rules().mode, StripeMode::Live);
    vars[1] = ("STRIPE_SECRET_KEY", "pk_test_1");
    let err = load(&vars).expect_err("a publishable key");
    assert!(
        err.to_string().contains("STRIPE_SECRET_KEY must start"),
        "{err}"
    );
    Ok(())
}
