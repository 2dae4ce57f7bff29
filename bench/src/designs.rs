//! Candidate designs of the ingestor's per-event transaction, as pgbench scripts against
//! the real schema (`migrations/` applied to a database of their own, rows pre-inserted as
//! for the ingestor), measured with the same per-event work as the anchor. Evidence for
//! issue 20's redesign; nothing here is used by the services.
//!
//! Each design handles a `payment_intent.succeeded` for a CREATED payment of a user with a
//! wallet (as every benchmark event is): the event stored, the transaction moved with its
//! audit row, the ledger credited (the trigger moves the balance), a trial ended if one
//! was active, the doorbell rung (the trigger on `transactions`). They run against the
//! schema as migrated (the ingestor's own, since migration 0025, lean: settling is a HOT
//! update); designs run in order, and a later one may change the schema first
//! ([`Design::alter`]), so each step shows what one feature costs.

use serde::{Deserialize, Serialize};

use crate::pgbench::{self, TX_ID};

/// One candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Design {
    /// The ingestor's statement (`pgbench::script(1)`): one, guarded by the rules'
    /// answer, committing on its own.
    Today,
    /// One data-modifying CTE: the event inserted once in its final state.
    Cte,
    /// The same work in a plpgsql function called with one prepared statement.
    Function,
    /// [`Design::Cte`] after `stripe_events.payload` became `text` (stored as received).
    CtePayloadText,
}

pub const ALL: [Design; 4] = [
    Design::Today,
    Design::Cte,
    Design::Function,
    Design::CtePayloadText,
];

/// The function of [`Design::Function`], created in the designs' database only.
pub fn function_sql() -> String {
    FUNCTION.replace("'__API__'", &format!("'{}'", stripe_sim::API_VERSION))
}

const FUNCTION: &str = r#"
CREATE FUNCTION bench_ingest_succeeded(p_event text, p_payload jsonb, p_tx uuid, p_charge text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t record;
    v bigint;
BEGIN
    -- No FOR UPDATE (a lock is a WAL record): the update below re-checks the status it read.
    SELECT status, user_id, amount, currency INTO t FROM transactions WHERE id = p_tx;
    IF FOUND AND t.status IN ('created', 'pending', 'requires_action') THEN
        UPDATE transactions SET status = 'succeeded', amount_refunded = 0, failure_code = NULL,
               failure_message = NULL, stripe_charge_id = COALESCE(stripe_charge_id, p_charge)
         WHERE id = p_tx AND status = t.status
        RETURNING version INTO v;
    END IF;
    IF v IS NULL THEN
        INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source,
                                   state, attempts, last_error, next_attempt_at)
        VALUES (p_event, 'payment_intent.succeeded', '__API__', now(), false, p_payload, 'webhook',
                'unmatched', 1, 'no transaction matches the event yet', now() + interval '1 second');
        RETURN 'unmatched';
    END IF;
    -- A repeated event id fails here, rolling the whole call back (the caller answers 200).
    INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source,
                               state, attempts, transaction_id, processed_at)
    VALUES (p_event, 'payment_intent.succeeded', '__API__', now(), false, p_payload, 'webhook',
            'applied', 1, p_tx, now());
    INSERT INTO transaction_transitions (transaction_id, from_status, to_status, version, cause, stripe_event_id)
    VALUES (p_tx, t.status, 'succeeded', v, 'stripe_event', p_event);
    INSERT INTO wallets (user_id, currency) VALUES (t.user_id, t.currency) ON CONFLICT DO NOTHING;
    INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency, stripe_event_id)
    VALUES (t.user_id, p_tx, 'payment_credit', '', t.amount, t.currency, p_event)
    ON CONFLICT (transaction_id, kind, movement_key) DO NOTHING;
    UPDATE wallets SET trial_state = 'ended', trial_ended_at = now(), updated_at = now()
     WHERE user_id = t.user_id AND trial_state = 'active';
    RETURN 'applied';
END $$;
"#;

const HEADER: &str = "\\set i :i + 1\n\\set n :base + :client_id * :stride + :i\n";

impl Design {
    pub fn label(self) -> &'static str {
        match self {
            Design::Today => "the ingestor: its one guarded statement",
            Design::Cte => "one CTE statement",
            Design::Function => "one call of a plpgsql function",
            Design::CtePayloadText => "one CTE, payload text",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Design::Today => "today",
            Design::Cte => "cte",
            Design::Function => "function",
            Design::CtePayloadText => "cte-text",
        }
    }

    /// Round trips per event.
    pub fn statements(self) -> usize {
        1
    }

    /// The schema change made before this design runs (kept for the designs after it).
    pub fn alter(self) -> Option<&'static str> {
        match self {
            Design::CtePayloadText => {
                Some("ALTER TABLE stripe_events ALTER COLUMN payload TYPE text USING payload::text")
            }
            _ => None,
        }
    }

    /// The pgbench script (one event per transaction; `-D i=0 -D base= -D stride=`).
    pub fn script(self) -> anyhow::Result<String> {
        let literal = pgbench::payload_literal()?;
        let payload =
            format!("replace(replace('{literal}', '__N__', :n::text), '__UUID__', {TX_ID}::text)");
        Ok(match self {
            Design::Today => pgbench::script(1)?,
            Design::Cte => format!("{HEADER}{};\n", cte(&format!("({payload})::jsonb"))),
            Design::CtePayloadText => format!("{HEADER}{};\n", cte(&payload)),
            Design::Function => format!(
                "{HEADER}SELECT bench_ingest_succeeded('evt_pgb' || :n::text, ({payload})::jsonb, \
                 {TX_ID}, 'ch_bench_' || :n::text);\n"
            ),
        })
    }
}

/// One statement for the whole event. The transaction is updated only from the status it
/// was read in (the self-join), which gives the audit row its `from_status` without a
/// lock; the event row is inserted once, already `applied` (or `unmatched`, to be retried,
/// when no payment matched); a repeated event id fails the statement and rolls it back.
fn cte(payload: &str) -> String {
    let event = "'evt_pgb' || :n::text";
    let api = stripe_sim::API_VERSION;
    format!(
        "WITH tx AS ( \
           UPDATE transactions t SET status = 'succeeded', amount_refunded = 0, \
             failure_code = NULL, failure_message = NULL, \
             stripe_charge_id = COALESCE(t.stripe_charge_id, 'ch_bench_' || :n::text) \
           FROM (SELECT id, status FROM transactions WHERE id = {TX_ID}) old \
           WHERE t.id = old.id AND t.status = old.status \
             AND old.status IN ('created', 'pending', 'requires_action') \
           RETURNING t.id, t.user_id, t.amount, t.currency, t.version, old.status AS from_status \
         ), ev AS ( \
           INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source, \
             state, attempts, transaction_id, processed_at, last_error, next_attempt_at) \
           SELECT {event}, 'payment_intent.succeeded', '{api}', now(), false, {payload}, 'webhook', \
             CASE WHEN tx.id IS NULL THEN 'unmatched' ELSE 'applied' END, 1, tx.id, \
             CASE WHEN tx.id IS NULL THEN NULL ELSE now() END, \
             CASE WHEN tx.id IS NULL THEN 'no transaction matches the event yet' END, \
             CASE WHEN tx.id IS NULL THEN now() + interval '1 second' END \
           FROM (SELECT 1) one LEFT JOIN tx ON true \
           RETURNING state \
         ), audit AS ( \
           INSERT INTO transaction_transitions (transaction_id, from_status, to_status, version, \
             cause, stripe_event_id) \
           SELECT id, from_status, 'succeeded', version, 'stripe_event', {event} FROM tx \
         ), wallet AS ( \
           INSERT INTO wallets (user_id, currency) SELECT user_id, currency FROM tx \
           ON CONFLICT DO NOTHING \
         ), credit AS ( \
           INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, \
             currency, stripe_event_id) \
           SELECT user_id, id, 'payment_credit', '', amount, currency, {event} FROM tx \
           ON CONFLICT (transaction_id, kind, movement_key) DO NOTHING \
         ), trial AS ( \
           UPDATE wallets SET trial_state = 'ended', trial_ended_at = now(), updated_at = now() \
           WHERE user_id = (SELECT user_id FROM tx) AND trial_state = 'active' \
         ) SELECT state FROM ev"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_one_statement_design_is_one_statement() {
        for design in ALL {
            let script = design.script().expect("script");
            let statements = script.lines().filter(|l| !l.starts_with('\\')).count();
            assert_eq!(statements, design.statements(), "{}", design.slug());
            // No JSON colon glued to a word pgbench would take for a variable.
            assert!(!script.contains("\":\""));
        }
        assert!(Design::Cte.script().expect("cte").contains("::jsonb"));
        assert!(
            !Design::CtePayloadText
                .script()
                .expect("cte")
                .contains("::jsonb")
        );
    }
}
