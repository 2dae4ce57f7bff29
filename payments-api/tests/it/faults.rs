//! Process-level faults: PostgreSQL restarted in the middle of a burst, Stripe failing
//! and timing out, webhooks lost, and two instances of each service on one database.
//! Every test ends with exact balances, a clean CheckLedger and the Stripe-side objects
//! counted at stripe-sim.
//!
//! - [`stack`]: the services started in-process against one database, typed calls and
//!   the end-of-test checks; [`relay`]: the HTTP relay that spreads webhooks over
//!   ingestors and records calls; [`postgres`]: a private cluster a test may restart.
//! - One module per fault: [`database_restart`], [`stripe_errors`], [`lost_webhooks`],
//!   [`two_of_each`], and [`tls`]: PostgreSQL over TLS, and a server whose certificate
//!   does not verify.

mod postgres;
mod relay;
mod stack;

mod database_restart;
mod lost_webhooks;
mod stripe_errors;
mod tls;
mod two_of_each;

use std::time::Duration;

use payments_proto::payments::v1::{self as pb, TransactionStatus as S};

use stack::{Paid, Payment, Stack};

/// How long any one transaction may take to settle.
const SETTLE: Duration = Duration::from_secs(20);

/// Attaches `cards` for each of `users` users and returns their ids, by user.
async fn attach_cards(stack: &Stack, users: usize, cards: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut attached = Vec::new();
    for u in 0..users {
        let user = format!("user-{u}");
        let mut ids = Vec::new();
        for card in cards {
            ids.push(stack.attach(u, &user, card).await.id);
        }
        attached.push((user, ids));
    }
    attached
}

/// `count` top-ups, round-robin over the users, with distinct amounts; `card(i)` picks
/// which of the user's cards the `i`th one uses.
fn top_ups(
    users: &[(String, Vec<String>)],
    count: usize,
    tag: &str,
    card: impl Fn(usize) -> usize,
) -> Vec<Payment> {
    (0..count)
        .map(|i| {
            let (user, cards) = &users[i % users.len()];
            Payment {
                user: user.clone(),
                card: cards[card(i)].clone(),
                amount: 500 + 10 * i64::try_from(i).unwrap_or(0),
                key: format!("{tag}-{i}"),
            }
        })
        .collect()
}

/// Waits for each payment's transaction to settle and returns the final versions.
async fn all_settled(
    stack: &Stack,
    payments: &[Payment],
    paid: &[Paid],
    within: Duration,
) -> Vec<pb::Transaction> {
    let mut settled = Vec::with_capacity(paid.len());
    for (payment, paid) in payments.iter().zip(paid) {
        settled.push(
            stack
                .settled(&payment.user, &paid.transaction.id, within)
                .await,
        );
    }
    settled
}

fn assert_all(txs: &[pb::Transaction], status: S) {
    for tx in txs {
        assert_eq!(tx.status(), status, "{tx:?}");
    }
}
