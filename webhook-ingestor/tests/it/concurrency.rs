//! Several instances on one database: the unique index decides, not the instance.

use payments_core::TransactionStatus as Status;
use webhook_ingestor::Config;

use crate::{
    events::Pi,
    helpers::{Instance, NO_STRIPE, Result, SECRET, TestApp},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_to_two_instances_credits_once() -> Result {
    let app = TestApp::start().await?;
    let second = Instance::start(Config::for_tests(&app.db.url, NO_STRIPE, SECRET)).await?;
    for round in 0..10 {
        let user = format!("twin-{round}");
        let pi_id = format!("pi_twin_{round}");
        let tx = app.payment(&user, 250, &pi_id).await?;
        let event = Pi {
            id: &pi_id,
            tx: Some(tx.id),
            amount: 250,
            currency: "usd",
        }
        .succeeded();

        let (a, b) = tokio::join!(app.deliver(&event), second.deliver(&event));
        let mut answers = [a?, b?];
        answers.sort();
        assert_eq!(answers, ["duplicate".to_owned(), "stored".to_owned()]);
        assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
        assert_eq!(app.balance(&user).await?, 250);
        assert_eq!(app.ledger_entries(tx.id).await?.len(), 1);
    }
    second.stop().await?;
    Ok(())
}
