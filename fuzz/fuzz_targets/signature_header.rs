//! `Stripe-Signature` parsing and verification (webhook-ingestor's `signature`).
//!
//! Each input drives three checks. Arbitrary header bytes never panic the parser, and
//! the verifier accepts them only if they really carry the MAC of the body for every
//! reading of `t` (so acceptance is checked against an oracle, not against the code
//! under test). A header we sign ourselves, among items the parser must ignore (other
//! schemes, padded or empty items), verifies anywhere within the tolerance. And any change
//! to that body, its timestamp or the secret is refused as unsigned, whatever the clock
//! says, while a signed body outside the tolerance is refused for its time.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use webhook_ingestor::signature::{
    Rejection, SignatureHeader, Verifier, parse_header, sign, signature_header, verify,
};

const SECRET: &str = "whsec_fuzz_current";
const PREVIOUS: &str = "whsec_fuzz_previous";
const TOLERANCE: u64 = 300;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    body: &'a [u8],
    timestamp: i64,
    /// Clock skew within the tolerance, applied ahead or behind.
    skew: u16,
    behind: bool,
    /// Items Stripe may send besides ours, and where each goes among them.
    extra: Vec<(Extra<'a>, u8)>,
    pad: Padding,
    tamper: Tamper,
    /// An arbitrary `Stripe-Signature` value and the clock it arrives at. `$T` and
    /// `$MAC` in it stand for `timestamp` and our signature of `body` at that time, so
    /// the fuzzer can reach acceptance through headers shaped in any way.
    raw_header: &'a [u8],
    now: i64,
}

#[derive(Debug, Arbitrary)]
enum Extra<'a> {
    /// An old-scheme signature, ignored.
    V0([u8; 32]),
    /// A signature under a secret we do not hold (Stripe rolling its secret).
    V1([u8; 32]),
    /// A scheme we do not know yet.
    Other { key: &'a str, value: &'a str },
}

/// What surrounds the items Stripe's libraries ignore: a space or tab before a key hides
/// the item (Stripe's libraries do not trim), and empty items are skipped.
#[derive(Debug, Arbitrary)]
enum Padding {
    None,
    Spaces,
    Tabs,
    EmptyItems,
}

#[derive(Debug, Arbitrary)]
enum Tamper {
    FlipByte { at: usize, mask: u8 },
    Append(u8),
    Truncate { by: usize },
}

fuzz_target!(|input: Input<'_>| {
    arbitrary_header_is_accepted_only_with_the_mac(&input);
    our_signature_verifies_within_tolerance(&input);
    any_change_is_refused(&input);
});

fn verifier(secrets: &[SecretString]) -> Verifier<'_> {
    Verifier {
        secrets,
        tolerance: Duration::from_secs(TOLERANCE),
    }
}

fn secrets(names: &[&str]) -> Vec<SecretString> {
    names.iter().map(|s| SecretString::from(*s)).collect()
}

fn arbitrary_header_is_accepted_only_with_the_mac(input: &Input<'_>) {
    let held = secrets(&[PREVIOUS, SECRET]);
    let raw_header = substituted(input);
    let parsed = std::str::from_utf8(&raw_header).map(parse_header);
    if let Ok(Ok(header)) = &parsed {
        assert!(header.v1.iter().all(|mac| mac.len() == 32));
    }
    let expected = match parsed {
        Err(_) => Err(Rejection::MalformedHeader),
        Ok(Err(rejection)) => Err(rejection),
        Ok(Ok(header)) => {
            let readings = [header.timestamp, header.last_timestamp];
            let carries_mac = |t: i64| {
                [PREVIOUS, SECRET].iter().any(|secret| {
                    let mac = hex_bytes(&sign(secret, t, input.body));
                    header.v1.contains(&mac)
                })
            };
            if !readings.iter().all(|t| carries_mac(*t)) {
                Err(Rejection::NoMatchingSignature)
            } else if readings.iter().any(|t| t.abs_diff(input.now) > TOLERANCE) {
                Err(Rejection::TimestampOutsideTolerance)
            } else {
                Ok(header.timestamp)
            }
        }
    };
    let outcome = verify(verifier(&held), Some(&raw_header), input.body, input.now);
    assert_eq!(
        outcome,
        expected,
        "{:?}",
        String::from_utf8_lossy(&raw_header)
    );
    // No secret configured must never mean "anything goes".
    assert!(verify(verifier(&[]), Some(&raw_header), input.body, input.now).is_err());
}

fn our_signature_verifies_within_tolerance(input: &Input<'_>) {
    let t = input.timestamp;
    let skew = i64::from(input.skew) % (TOLERANCE as i64 + 1);
    let Some(now) = shifted(t, skew, input.behind) else {
        return;
    };
    let ours = secrets(&[SECRET]);
    let rolling = secrets(&[PREVIOUS, SECRET]);
    let exact = signature_header(SECRET, t, input.body);
    let mac = hex_bytes(&sign(SECRET, t, input.body));
    assert_eq!(
        parse_header(&exact),
        Ok(SignatureHeader {
            timestamp: t,
            last_timestamp: t,
            v1: vec![mac.clone()]
        })
    );
    assert_eq!(
        verify(verifier(&ours), Some(exact.as_bytes()), input.body, now),
        Ok(t)
    );
    assert_eq!(
        verify(verifier(&rolling), Some(exact.as_bytes()), input.body, now),
        Ok(t)
    );
    assert_eq!(
        verify(verifier(&ours), None, input.body, now),
        Err(Rejection::MissingSignature)
    );

    let padded = padded_header(input, t);
    let parsed = parse_header(&padded).unwrap_or_else(|e| panic!("{padded:?}: {e}"));
    assert_eq!(parsed.timestamp, t);
    assert!(parsed.v1.contains(&mac), "{padded:?}");
    assert_eq!(
        verify(verifier(&rolling), Some(padded.as_bytes()), input.body, now),
        Ok(t)
    );
}

fn any_change_is_refused(input: &Input<'_>) {
    let t = input.timestamp;
    let ours = secrets(&[SECRET]);
    let header = signature_header(SECRET, t, input.body);
    let unsigned = Err(Rejection::NoMatchingSignature);

    let tampered = tampered_body(input.body, &input.tamper);
    if tampered != input.body {
        let result = verify(
            verifier(&ours),
            Some(header.as_bytes()),
            &tampered,
            input.now,
        );
        assert_eq!(result, unsigned, "a tampered body verified");
    }
    let other_time = t.wrapping_add(1 + i64::from(input.skew));
    let moved = format!("t={other_time},v1={}", sign(SECRET, t, input.body));
    let result = verify(
        verifier(&ours),
        Some(moved.as_bytes()),
        input.body,
        input.now,
    );
    assert_eq!(result, unsigned, "timestamp swapped under a valid MAC");
    let spaced = format!("t={t}, v1={}", sign(SECRET, t, input.body));
    let result = verify(
        verifier(&ours),
        Some(spaced.as_bytes()),
        input.body,
        input.now,
    );
    assert_eq!(
        result,
        Err(Rejection::MalformedHeader),
        "a space before the key hides our v1"
    );
    let theirs = secrets(&[PREVIOUS]);
    let result = verify(
        verifier(&theirs),
        Some(header.as_bytes()),
        input.body,
        input.now,
    );
    assert_eq!(result, unsigned, "signed under another secret");

    let late = TOLERANCE as i64 + 1 + i64::from(input.skew);
    let outside = shifted(t, late, input.behind);
    if let Some(now) = outside {
        let result = verify(verifier(&ours), Some(header.as_bytes()), input.body, now);
        assert_eq!(result, Err(Rejection::TimestampOutsideTolerance));
    }
}

fn substituted(input: &Input<'_>) -> Vec<u8> {
    let t = input.timestamp.to_string();
    let mac = sign(SECRET, input.timestamp, input.body);
    let mut out = Vec::with_capacity(input.raw_header.len());
    let mut rest = input.raw_header;
    while let Some(&first) = rest.first() {
        if let Some(after) = rest.strip_prefix(b"$MAC") {
            out.extend_from_slice(mac.as_bytes());
            rest = after;
        } else if let Some(after) = rest.strip_prefix(b"$T") {
            out.extend_from_slice(t.as_bytes());
            rest = after;
        } else {
            out.push(first);
            rest = &rest[1..];
        }
    }
    out
}

/// `t` moved by `by` seconds into the past or the future, unless that overflows.
fn shifted(t: i64, by: i64, behind: bool) -> Option<i64> {
    if behind {
        t.checked_sub(by)
    } else {
        t.checked_add(by)
    }
}

/// Our `t` and `v1` among the extra items, which are padded, or among empty items.
fn padded_header(input: &Input<'_>, t: i64) -> String {
    let mut items = vec![
        format!("t={t}"),
        format!("v1={}", sign(SECRET, t, input.body)),
    ];
    let pad = match input.pad {
        Padding::None | Padding::EmptyItems => "",
        Padding::Spaces => "  ",
        Padding::Tabs => "\t",
    };
    for (extra, position) in &input.extra {
        let item = match extra {
            Extra::V0(mac) => format!("v0={}", hex_string(mac)),
            Extra::V1(mac) => format!("v1={}", hex_string(mac)),
            Extra::Other { key, value } => format!("{key}={value}"),
        };
        let item = format!("{pad}{item}{pad}");
        let item = match input.pad {
            Padding::EmptyItems => String::new(),
            _ => item,
        };
        if is_ignored(&item) {
            items.insert(usize::from(*position) % (items.len() + 1), item);
        }
    }
    items.join(",")
}

/// Whether an extra item is one the parser must skip: a single item whose key (up to its
/// first `=`, untrimmed) is neither `t` nor `v1`.
fn is_ignored(item: &str) -> bool {
    !item.contains(',') && !matches!(item.split('=').next(), Some("t" | "v1"))
}

fn tampered_body(body: &[u8], tamper: &Tamper) -> Vec<u8> {
    let mut tampered = body.to_vec();
    match *tamper {
        Tamper::FlipByte { at, mask } if !tampered.is_empty() => {
            let at = at % tampered.len();
            tampered[at] ^= mask;
        }
        Tamper::FlipByte { mask, .. } => tampered.push(mask),
        Tamper::Append(byte) => tampered.push(byte),
        Tamper::Truncate { by } => {
            let keep = tampered.len().saturating_sub(by.max(1));
            tampered.truncate(keep);
        }
    }
    tampered
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|e| panic!("{hex}: {e}")))
        .collect()
}
