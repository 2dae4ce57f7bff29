use super::*;

const SECRET: &str = "whsec_test_secret";
const OTHER: &str = "whsec_other_secret";
const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

fn secrets(list: &[&str]) -> Vec<SecretString> {
    list.iter().map(|s| SecretString::from(*s)).collect()
}

fn check(secrets: &[SecretString], header: Option<&str>, body: &[u8]) -> Result<i64, Rejection> {
    let verifier = Verifier {
        secrets,
        tolerance: Duration::from_secs(300),
    };
    verify(verifier, header.map(str::as_bytes), body, NOW)
}

#[test]
fn a_correctly_signed_body_is_accepted() {
    let header = signature_header(SECRET, NOW, BODY);
    assert_eq!(check(&secrets(&[SECRET]), Some(&header), BODY), Ok(NOW));
}

#[test]
fn the_key_is_the_whole_secret_including_its_prefix() {
    // Computed independently with Python's hmac module over b'1700000000.' + BODY.
    let expected = "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd";
    assert_eq!(sign(SECRET, NOW, BODY), expected);
    assert_ne!(sign("test_secret", NOW, BODY), expected);
}

#[test]
fn a_missing_header_is_refused() {
    assert_eq!(
        check(&secrets(&[SECRET]), None, BODY),
        Err(Rejection::MissingSignature)
    );
}

#[test]
fn headers_without_t_or_v1_are_malformed() {
    let sig = sign(SECRET, NOW, BODY);
    for header in [
        format!("v1={sig}"),
        format!("t={NOW}"),
        format!("t={NOW},v0={sig}"),
        format!("t=soon,v1={sig}"),
        format!("t={NOW};v1={sig}"),
        format!("t={NOW},t,v1={sig}"),
        format!("t={NOW},v1=,v1={sig}"),
        String::new(),
    ] {
        assert_eq!(
            check(&secrets(&[SECRET]), Some(&header), BODY),
            Err(Rejection::MalformedHeader),
            "{header:?}"
        );
    }
}

#[test]
fn a_header_that_is_not_utf8_is_malformed() {
    let verifier = Verifier {
        secrets: &secrets(&[SECRET]),
        tolerance: Duration::from_secs(300),
    };
    assert_eq!(
        verify(verifier, Some(&[0xff, 0xfe]), BODY, NOW),
        Err(Rejection::MalformedHeader)
    );
}

#[test]
fn other_schemes_are_ignored_and_any_v1_may_match() {
    let good = sign(SECRET, NOW, BODY);
    let wrong = sign(OTHER, NOW, BODY);
    let header = format!("t={NOW},v0={wrong},v1={wrong},v1={good},v9=whatever");
    assert_eq!(check(&secrets(&[SECRET]), Some(&header), BODY), Ok(NOW));
}

#[test]
fn a_v1_that_cannot_be_a_signature_is_ignored_not_fatal() {
    let good = sign(SECRET, NOW, BODY);
    for junk in ["nothex", &good[..10], &good.to_uppercase()] {
        let with_ours = format!("t={NOW},v1={junk},v1={good}");
        assert_eq!(
            check(&secrets(&[SECRET]), Some(&with_ours), BODY),
            Ok(NOW),
            "{junk}"
        );
        let alone = format!("t={NOW},v1={junk}");
        assert_eq!(
            check(&secrets(&[SECRET]), Some(&alone), BODY),
            Err(Rejection::NoMatchingSignature),
            "{junk}"
        );
    }
}

#[test]
fn a_space_before_a_key_hides_the_item() {
    let good = sign(SECRET, NOW, BODY);
    assert_eq!(
        check(
            &secrets(&[SECRET]),
            Some(&format!("t={NOW}, v1={good}")),
            BODY
        ),
        Err(Rejection::MalformedHeader),
        "no v1 left"
    );
    let wrong = sign(OTHER, NOW, BODY);
    assert_eq!(
        check(
            &secrets(&[SECRET]),
            Some(&format!("t={NOW},v1={wrong}, v1={good}")),
            BODY
        ),
        Err(Rejection::NoMatchingSignature)
    );
}

#[test]
fn a_repeated_t_must_be_signed_under_its_first_and_its_last_value() {
    let s = secrets(&[SECRET]);
    let earlier = NOW - 60;
    let (now_sig, earlier_sig) = (sign(SECRET, NOW, BODY), sign(SECRET, earlier, BODY));
    let same = format!("t={NOW},t={NOW},v1={now_sig}");
    assert_eq!(check(&s, Some(&same), BODY), Ok(NOW));
    for header in [
        format!("t={NOW},t={earlier},v1={now_sig}"),
        format!("t={earlier},t={NOW},v1={now_sig}"),
    ] {
        assert_eq!(
            check(&s, Some(&header), BODY),
            Err(Rejection::NoMatchingSignature),
            "{header}"
        );
    }
    let both = format!("t={earlier},t={NOW},v1={earlier_sig},v1={now_sig}");
    assert_eq!(check(&s, Some(&both), BODY), Ok(earlier));
}

/// `testdata/stripe-signatures/verdicts.json`: each header form as stripe-python and
/// stripe-node judge it (scripts/signature-verdicts.sh regenerates it). We accept a form
/// exactly when both libraries do; where they disagree, we refuse (see the module comment).
#[test]
fn every_header_form_gets_the_verdict_of_stripes_own_libraries() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/stripe-signatures/verdicts.json"
    )))
    .expect("the verdicts fixture is JSON");
    let text = |key: &str| fixture[key].as_str().expect(key).to_owned();
    let number = |key: &str| fixture[key].as_i64().expect(key);
    let held = vec![SecretString::from(text("secret"))];
    let verifier = Verifier {
        secrets: &held,
        tolerance: Duration::from_secs(number("tolerance").unsigned_abs()),
    };
    let payload = text("payload");
    let forms = fixture["forms"].as_array().expect("forms");
    assert!(
        forms.len() >= 40,
        "the table covers the forms: {}",
        forms.len()
    );
    let mut disagreements = 0;
    for form in forms {
        let header = form["header"].as_str().expect("header");
        let python = form["python"]["accepted"]
            .as_bool()
            .expect("python verdict");
        let node = form["node"]["accepted"].as_bool().expect("node verdict");
        disagreements += usize::from(python != node);
        let ours = verify(
            verifier,
            Some(header.as_bytes()),
            payload.as_bytes(),
            number("now"),
        );
        assert_eq!(
            ours.is_ok(),
            python && node,
            "{}: {header:?} (python {python}, node {node}, ours {ours:?})",
            form["name"]
        );
    }
    assert!(
        disagreements > 0,
        "the table shows where the libraries differ"
    );
}

#[test]
fn a_signature_under_another_secret_is_refused() {
    let header = signature_header(OTHER, NOW, BODY);
    assert_eq!(
        check(&secrets(&[SECRET]), Some(&header), BODY),
        Err(Rejection::NoMatchingSignature)
    );
}

#[test]
fn a_changed_body_or_timestamp_breaks_the_signature() {
    let sig = sign(SECRET, NOW, BODY);
    let header = format!("t={NOW},v1={sig}");
    assert_eq!(
        check(&secrets(&[SECRET]), Some(&header), b"{}"),
        Err(Rejection::NoMatchingSignature)
    );
    let shifted = format!("t={},v1={sig}", NOW - 1);
    assert_eq!(
        check(&secrets(&[SECRET]), Some(&shifted), BODY),
        Err(Rejection::NoMatchingSignature)
    );
}

#[test]
fn during_rotation_either_secret_is_accepted() {
    let both = secrets(&[SECRET, OTHER]);
    for secret in [SECRET, OTHER] {
        let header = signature_header(secret, NOW, BODY);
        assert_eq!(check(&both, Some(&header), BODY), Ok(NOW), "{secret}");
    }
}

#[test]
fn no_secret_configured_accepts_nothing() {
    let header = signature_header(SECRET, NOW, BODY);
    assert_eq!(
        check(&[], Some(&header), BODY),
        Err(Rejection::NoMatchingSignature)
    );
}

#[test]
fn timestamps_beyond_the_tolerance_either_way_are_refused() {
    let s = secrets(&[SECRET]);
    for (t, expected) in [
        (NOW - 300, Ok(NOW - 300)),
        (NOW - 301, Err(Rejection::TimestampOutsideTolerance)),
        (NOW + 300, Ok(NOW + 300)),
        (NOW + 301, Err(Rejection::TimestampOutsideTolerance)),
        (0, Err(Rejection::TimestampOutsideTolerance)),
    ] {
        let header = signature_header(SECRET, t, BODY);
        assert_eq!(check(&s, Some(&header), BODY), expected, "t={t}");
    }
}

#[test]
fn an_unsigned_old_request_learns_only_that_the_signature_is_wrong() {
    let header = signature_header(OTHER, NOW - 10_000, BODY);
    assert_eq!(
        check(&secrets(&[SECRET]), Some(&header), BODY),
        Err(Rejection::NoMatchingSignature)
    );
}
