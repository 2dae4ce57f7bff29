use std::collections::HashMap;

use super::*;

fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

const MINIMAL: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://localhost/payments"),
    ("STRIPE_SECRET_KEY", "sk_test_1"),
    (
        "PAYMENTS_JWT_SECRET",
        "jwt-secret-of-at-least-thirty-two-bytes",
    ),
];

#[test]
fn the_three_secrets_are_enough_and_the_rest_defaults() {
    let config = from(MINIMAL).expect("valid");
    assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
    assert_eq!(config.stripe.api_base, DEFAULT_STRIPE_API_BASE);
    assert_eq!(config.wallet.currency, Currency::USD);
    assert_eq!(config.wallet.validation_amount, 100);
    assert_eq!(config.cors, CorsOrigins::List(Vec::new()));
    assert!(matches!(config.jwt.key, Some(JwtKey::Hs256(_))));
    assert!(config.jwt.jwks.is_none());
    assert_eq!(
        (
            config.jwt.role_claim.as_str(),
            config.jwt.service_role.as_str()
        ),
        ("role", "service")
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = from(&[
        ("PAYMENTS_API_ADDR", "nowhere"),
        ("PAYMENTS_WALLET_CURRENCY", "USD"),
        ("PAYMENTS_MIN_TOPUP", "-5"),
        ("PAYMENTS_CORS_ORIGINS", "https://ok.example, not-an-origin"),
    ])
    .expect_err("invalid");
    let text = err.to_string();
    for needle in [
        "PAYMENTS_API_ADDR",
        "DATABASE_URL",
        "STRIPE_SECRET_KEY",
        "PAYMENTS_JWT_SECRET",
        "PAYMENTS_WALLET_CURRENCY",
        "PAYMENTS_MIN_TOPUP",
        "not-an-origin",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert_eq!(err.problems.len(), 7, "{text}");
}

#[test]
fn both_jwt_keys_at_once_are_refused() {
    let mut vars = MINIMAL.to_vec();
    vars.push(("PAYMENTS_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem"));
    let err = from(&vars).expect_err("ambiguous");
    assert!(err.to_string().contains("only one"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let config = from(MINIMAL).expect("valid");
    let debug = format!("{config:?}");
    assert!(!debug.contains("sk_test_1"), "{debug}");
    assert!(!debug.contains("jwt-secret"), "{debug}");
}

#[test]
fn cors_origins_are_a_list_or_a_star() {
    let mut vars = MINIMAL.to_vec();
    vars.push((
        "PAYMENTS_CORS_ORIGINS",
        "https://app.example.com, http://localhost:5173/",
    ));
    let config = from(&vars).expect("valid");
    assert_eq!(
        config.cors,
        CorsOrigins::List(vec![
            HeaderValue::from_static("https://app.example.com"),
            HeaderValue::from_static("http://localhost:5173"),
        ])
    );
    let mut vars = MINIMAL.to_vec();
    vars.push(("PAYMENTS_CORS_ORIGINS", "*"));
    assert_eq!(from(&vars).expect("valid").cors, CorsOrigins::Any);
}

#[test]
fn the_watch_coalescing_window_is_milliseconds_up_to_a_second() {
    let default = from(MINIMAL).expect("valid").watch.coalesce;
    assert_eq!(default, WatchConfig::default().coalesce);
    let mut vars = MINIMAL.to_vec();
    vars.push(("PAYMENTS_WATCH_COALESCE_MS", "0"));
    assert_eq!(from(&vars).expect("valid").watch.coalesce, Duration::ZERO);
    for bad in ["1001", "-1", "soon"] {
        let mut vars = MINIMAL.to_vec();
        vars.push(("PAYMENTS_WATCH_COALESCE_MS", bad));
        let err = from(&vars).expect_err(bad);
        assert!(
            err.to_string().contains("PAYMENTS_WATCH_COALESCE_MS"),
            "{err}"
        );
    }
}

#[test]
fn limits_are_read_and_a_zero_rate_turns_the_mutation_limit_off() {
    let defaults = from(MINIMAL).expect("valid");
    assert_eq!(defaults.limits, LimitsConfig::default());
    let mut vars = MINIMAL.to_vec();
    vars.extend([
        ("PAYMENTS_WATCH_MAX_PER_USER", "4"),
        ("PAYMENTS_WATCH_MAX_STREAMS", "100"),
        ("PAYMENTS_WATCH_MAX_LIFETIME_SECS", "60"),
        ("PAYMENTS_RATE_LIMIT_PER_SEC", "0"),
        ("PAYMENTS_HTTP2_MAX_CONCURRENT_STREAMS", "64"),
        ("PAYMENTS_HTTP2_KEEPALIVE_SECS", "20"),
    ]);
    let config = from(&vars).expect("valid");
    assert_eq!(config.limits.watches_per_user, 4);
    assert_eq!(config.limits.watches_per_instance, 100);
    assert_eq!(config.watch.max_lifetime, Duration::from_secs(60));
    assert_eq!(config.limits.mutations, None);
    assert_eq!(config.limits.max_concurrent_streams, 64);
    assert_eq!(config.limits.keepalive_interval, Duration::from_secs(20));

    let mut vars = MINIMAL.to_vec();
    vars.extend([
        ("PAYMENTS_WATCH_MAX_PER_USER", "0"),
        ("PAYMENTS_RATE_LIMIT_BURST", "0"),
        ("PAYMENTS_WATCH_MAX_LIFETIME_SECS", "0"),
    ]);
    let text = from(&vars).expect_err("invalid").to_string();
    for name in [
        "PAYMENTS_WATCH_MAX_PER_USER",
        "PAYMENTS_RATE_LIMIT_BURST",
        "PAYMENTS_WATCH_MAX_LIFETIME_SECS",
    ] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn an_hs256_secret_shorter_than_32_bytes_is_refused() {
    let mut vars: Vec<_> = MINIMAL
        .iter()
        .filter(|(k, _)| *k != "PAYMENTS_JWT_SECRET")
        .copied()
        .collect();
    vars.push(("PAYMENTS_JWT_SECRET", "only-thirty-one-bytes-long-here"));
    let err = from(&vars).expect_err("too short");
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
    vars.pop();
    vars.push(("PAYMENTS_JWT_SECRET", "exactly-thirty-two-bytes-long-ok"));
    from(&vars).expect("32 bytes are enough");
}

#[test]
fn a_jwks_url_needs_an_issuer_and_an_audience_and_reads_the_oidc_settings() {
    let mut vars: Vec<_> = MINIMAL
        .iter()
        .filter(|(k, _)| *k != "PAYMENTS_JWT_SECRET")
        .copied()
        .collect();
    vars.push(("PAYMENTS_JWT_JWKS_URL", "https://idp.example.com/jwks"));
    let err = from(&vars).expect_err("no issuer or audience");
    assert!(
        err.to_string()
            .contains("PAYMENTS_JWT_ISSUER and PAYMENTS_JWT_AUDIENCE"),
        "{err}"
    );
    vars.extend([
        ("PAYMENTS_JWT_ISSUER", "https://idp.example.com/"),
        ("PAYMENTS_JWT_AUDIENCE", "payments, payments-admin"),
        ("PAYMENTS_JWT_LEEWAY_SECS", "5"),
        ("PAYMENTS_JWT_ROLE_CLAIM", "scope"),
        ("PAYMENTS_JWT_SERVICE_ROLE", "payments:service"),
        ("PAYMENTS_JWKS_MIN_REFRESH_SECS", "10"),
    ]);
    let config = from(&vars).expect("valid");
    let jwt = config.jwt;
    assert!(jwt.key.is_none());
    let jwks = jwt.jwks.expect("jwks");
    assert_eq!(jwks.url, "https://idp.example.com/jwks");
    assert_eq!(jwks.min_refresh, Duration::from_secs(10));
    assert_eq!(jwt.issuer.as_deref(), Some("https://idp.example.com/"));
    assert_eq!(jwt.audience, vec!["payments", "payments-admin"]);
    assert_eq!(jwt.leeway, Duration::from_secs(5));
    assert_eq!(
        (jwt.role_claim.as_str(), jwt.service_role.as_str()),
        ("scope", "payments:service")
    );
}

#[test]
fn the_admin_port_and_migrating_at_start_are_settings() {
    let defaults = from(MINIMAL).expect("valid");
    assert_eq!(defaults.admin_addr.to_string(), "0.0.0.0:50052");
    assert!(defaults.database.migrate_at_start);
    let mut vars = MINIMAL.to_vec();
    vars.extend([
        ("PAYMENTS_ADMIN_ADDR", "127.0.0.1:9443"),
        ("PAYMENTS_MIGRATE_AT_START", "false"),
    ]);
    let config = from(&vars).expect("valid");
    assert_eq!(config.admin_addr.to_string(), "127.0.0.1:9443");
    assert!(!config.database.migrate_at_start);
}

#[test]
fn amounts_are_capped_at_stripes_ceiling_or_lower() {
    let config = from(MINIMAL).expect("valid");
    assert_eq!(config.wallet.max_amount, STRIPE_MAX_AMOUNT);
    let mut vars = MINIMAL.to_vec();
    vars.push(("PAYMENTS_MAX_AMOUNT", "10000"));
    assert_eq!(from(&vars).expect("valid").wallet.max_amount, 10_000);
    let mut vars = MINIMAL.to_vec();
    vars.push(("PAYMENTS_MAX_AMOUNT", "100000000"));
    let err = from(&vars).expect_err("above Stripe's ceiling");
    assert!(err.to_string().contains("PAYMENTS_MAX_AMOUNT"), "{err}");
}

#[test]
fn the_stripe_key_says_which_modes_events_are_applied() {
    assert_eq!(
        from(MINIMAL).expect("valid").stripe.mode(),
        StripeMode::Test
    );
    for (key, mode) in [
        ("sk_live_1", StripeMode::Live),
        ("rk_live_1", StripeMode::Live),
        ("rk_test_1", StripeMode::Test),
    ] {
        let mut vars = MINIMAL.to_vec();
        vars[1] = ("STRIPE_SECRET_KEY", key);
        assert_eq!(from(&vars).expect("valid").stripe.mode(), mode, "{key}");
    }
    let mut vars = MINIMAL.to_vec();
    vars[1] = ("STRIPE_SECRET_KEY", "pk_live_1");
    let err = from(&vars).expect_err("a publishable key");
    assert!(
        err.to_string().contains("STRIPE_SECRET_KEY must start"),
        "{err}"
    );
}
