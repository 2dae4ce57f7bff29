//! A whole-ledger audit: what must hold of the money whatever path wrote it. The test
//! harness runs it after every test that used a database; an operator can run the
//! same queries. Each finding is one line naming the wallet, transaction or Stripe
//! object at fault.
//!
//! - every wallet's balance is the sum of its ledger;
//! - a transaction is credited at most once, with its own amount (a trial: its credit);
//! - a Stripe refund or dispute moves money on one transaction only;
//! - a transaction's refunds, and its disputes, never take more than it brought, and
//!   never give back more than they took;
//! - a reversal gives back exactly its debit (same key, opposite amount);
//! - a transaction's `amount_refunded` is what its refund movements took.

use sqlx::PgConnection;

use super::{StoreError, check_ledger};

/// Each check: a query whose rows are findings (one text column), and what they mean.
const CHECKS: &[(&str, &str)] = &[
    (
        "credited more than once",
        "SELECT transaction_id::text FROM ledger_entries \
         WHERE kind IN ('payment_credit', 'coupon_credit') \
         GROUP BY transaction_id HAVING count(*) > 1",
    ),
    (
        "credited another amount than the transaction's",
        "SELECT l.transaction_id::text FROM ledger_entries l \
         JOIN transactions t ON t.id = l.transaction_id \
         WHERE (l.kind IN ('payment_credit', 'coupon_credit') AND l.amount <> t.amount) \
            OR (l.kind = 'trial_grant' AND l.amount IS DISTINCT FROM t.trial_credit)",
    ),
    (
        "one Stripe refund or dispute moved money on several transactions",
        "SELECT kind || ' ' || movement_key FROM ledger_entries \
         WHERE kind IN ('refund_debit', 'refund_reversal', 'dispute_debit', 'dispute_reversal') \
           AND movement_key !~ '^[0-9]+$' \
         GROUP BY kind, movement_key HAVING count(DISTINCT transaction_id) > 1",
    ),
    (
        "refunds or disputes took more than the transaction brought, or gave back more than they took",
        "SELECT n.transaction_id::text || ' ' || n.family || ' ' || n.net FROM ( \
           SELECT transaction_id, split_part(kind, '_', 1) AS family, sum(amount) AS net \
           FROM ledger_entries \
           WHERE kind IN ('refund_debit', 'refund_reversal', 'dispute_debit', 'dispute_reversal') \
           GROUP BY 1, 2) n \
         JOIN transactions t ON t.id = n.transaction_id \
         WHERE n.net > 0 OR n.net < -t.amount",
    ),
    (
        "a reversal without the debit it gives back",
        "SELECT r.transaction_id::text || ' ' || r.kind || ' ' || r.movement_key \
         FROM ledger_entries r \
         WHERE r.kind IN ('refund_reversal', 'dispute_reversal') AND NOT EXISTS ( \
           SELECT 1 FROM ledger_entries d WHERE d.transaction_id = r.transaction_id \
             AND d.kind = replace(r.kind, '_reversal', '_debit') \
             AND d.movement_key = r.movement_key AND d.amount = -r.amount)",
    ),
    (
        "amount_refunded differs from what the refund movements took",
        "SELECT t.id::text || ' ' || t.amount_refunded || ' ' || COALESCE(-r.net, 0) \
         FROM transactions t LEFT JOIN ( \
           SELECT transaction_id, sum(amount) AS net FROM ledger_entries \
           WHERE kind IN ('refund_debit', 'refund_reversal') GROUP BY 1) r \
           ON r.transaction_id = t.id \
         WHERE t.amount_refunded <> COALESCE(-r.net, 0)",
    ),
];

/// Everything wrong with the ledger, one line per finding; empty when it is sound.
/// Reads one snapshot (the caller may run it while others write).
pub async fn audit_ledger(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    use sqlx::Connection as _;

    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut findings: Vec<String> = check_ledger(&mut tx)
        .await?
        .mismatches
        .into_iter()
        .map(|m| {
            format!(
                "wallet {} holds {} but its ledger sums to {}",
                m.user_id, m.balance, m.ledger_sum
            )
        })
        .collect();
    for (what, sql) in CHECKS {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(*sql))
            .fetch_all(&mut *tx)
            .await?;
        findings.extend(rows.into_iter().map(|row| format!("{what}: {row}")));
    }
    tx.rollback().await?;
    Ok(findings)
}
