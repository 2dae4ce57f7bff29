//! [`Connection`] (a channel, a token provider and a retry policy) and the two clients
//! on it: [`PaymentsClient`] for PaymentsService and [`AdminClient`] for PaymentsAdmin.
//! Every call carries a fresh bearer token and goes through the retry policy.

use std::{fmt, future::Future, sync::Arc};

use payments_proto::payments::v1::{
    self as pb, payments_admin_client::PaymentsAdminClient,
    payments_service_client::PaymentsServiceClient,
};
use tonic::{Request, Response, Status, metadata::MetadataValue, transport::Channel};

use crate::{
    Endpoint, Error, RetryPolicy,
    auth::{TokenError, TokenProvider},
    retry::retrying,
};

/// A channel to payments-api, the identity its calls are made as, and how they are
/// retried. Cheap to clone; clones share the HTTP/2 connection.
#[derive(Clone)]
pub struct Connection {
    channel: Channel,
    token: Arc<dyn TokenProvider>,
    retry: RetryPolicy,
    endpoint: Arc<Endpoint>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.endpoint.url())
            .field("token", &self.token)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects now: an unreachable endpoint is an error here.
    pub async fn connect(
        endpoint: &Endpoint,
        token: impl TokenProvider + 'static,
    ) -> Result<Connection, Error> {
        let channel = endpoint.connect().await?;
        Ok(Self::on(channel, endpoint, token))
    }

    /// Connects at the first call; until the server answers, calls fail UNAVAILABLE
    /// (and are retried).
    pub fn lazy(
        endpoint: &Endpoint,
        token: impl TokenProvider + 'static,
    ) -> Result<Connection, Error> {
        let channel = endpoint.connect_lazy()?;
        Ok(Self::on(channel, endpoint, token))
    }

    fn on(
        channel: Channel,
        endpoint: &Endpoint,
        token: impl TokenProvider + 'static,
    ) -> Connection {
        Connection {
            channel,
            token: Arc::new(token),
            retry: RetryPolicy::default(),
            endpoint: Arc::new(endpoint.clone()),
        }
    }

    /// The same connection with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Connection {
        self.retry = retry;
        self
    }

    /// The same connection, calling as another identity.
    pub fn with_token(mut self, token: impl TokenProvider + 'static) -> Connection {
        self.token = Arc::new(token);
        self
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn payments(&self) -> PaymentsClient {
        PaymentsClient {
            grpc: PaymentsServiceClient::new(self.channel.clone()),
            connection: self.clone(),
        }
    }

    pub fn admin(&self) -> AdminClient {
        AdminClient {
            grpc: PaymentsAdminClient::new(self.channel.clone()),
            connection: self.clone(),
        }
    }

    /// `message` with `authorization: Bearer …` and, for unary calls, the deadline.
    pub(crate) async fn request<T>(&self, message: T, unary: bool) -> Result<Request<T>, Error> {
        let token = self.token.token().await?;
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| TokenError::Provider("the token is not a valid header value".into()))?;
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", value);
        if let (true, Some(timeout)) = (unary, self.endpoint.unary_timeout()) {
            request.set_timeout(timeout);
        }
        Ok(request)
    }

    /// One unary call, retried by the policy with the same message.
    /// `call` gets its own handle of the generated client (`grpc`) for each attempt.
    async fn unary<G, Req, Resp, Fut>(
        &self,
        what: &str,
        grpc: &G,
        message: Req,
        call: impl Fn(G, Request<Req>) -> Fut,
    ) -> Result<Resp, Error>
    where
        G: Clone,
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        retrying(&self.retry, what, || async {
            let request = self.request(message.clone(), true).await?;
            Ok(call(grpc.clone(), request).await?.into_inner())
        })
        .await
    }
}

/// What a mutation answers: the transaction it created (or the one the same
/// idempotency key created before), and the client secret when the card needs 3DS.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub transaction: pb::Transaction,
    /// For `stripe.confirmCardPayment` in the customer's browser.
    pub client_secret: Option<String>,
    /// StartTrial only: the wallet as the trial starts.
    pub wallet: Option<pb::Wallet>,
}

impl Started {
    fn new(
        transaction: Option<pb::Transaction>,
        client_secret: String,
        wallet: Option<pb::Wallet>,
    ) -> Result<Started, Error> {
        Ok(Started {
            transaction: transaction.ok_or(Error::Incomplete("transaction"))?,
            client_secret: Some(client_secret).filter(|s| !s.is_empty()),
            wallet,
        })
    }
}

/// PaymentsService: the calls a backend service makes for its users.
#[derive(Debug, Clone)]
pub struct PaymentsClient {
    grpc: PaymentsServiceClient<Channel>,
    pub(crate) connection: Connection,
}

impl PaymentsClient {
    /// Tops up a wallet with a card. Keep the idempotency key with the user's intent
    /// (a retry after a crash must send it again); retries here reuse it.
    pub async fn create_payment(
        &self,
        request: pb::CreatePaymentRequest,
    ) -> Result<Started, Error> {
        let answer = self
            .connection
            .unary(
                "CreatePayment",
                &self.grpc,
                request,
                |mut c, r| async move { c.create_payment(r).await },
            )
            .await?;
        Started::new(answer.transaction, answer.client_secret, None)
    }

    pub async fn apply_coupon(&self, request: pb::ApplyCouponRequest) -> Result<Started, Error> {
        let answer = self
            .connection
            .unary("ApplyCoupon", &self.grpc, request, |mut c, r| async move {
                c.apply_coupon(r).await
            })
            .await?;
        Started::new(answer.transaction, String::new(), None)
    }

    /// Safe to retry without a key: payments-api derives one from the user and the card.
    pub async fn validate_payment_method(
        &self,
        request: pb::ValidatePaymentMethodRequest,
    ) -> Result<Started, Error> {
        let answer = self
            .connection
            .unary(
                "ValidatePaymentMethod",
                &self.grpc,
                request,
                |mut c, r| async move { c.validate_payment_method(r).await },
            )
            .await?;
        Started::new(answer.transaction, answer.client_secret, None)
    }

    pub async fn start_trial(&self, request: pb::StartTrialRequest) -> Result<Started, Error> {
        let answer = self
            .connection
            .unary("StartTrial", &self.grpc, request, |mut c, r| async move {
                c.start_trial(r).await
            })
            .await?;
        Started::new(answer.transaction, answer.client_secret, answer.wallet)
    }

    pub async fn get_transaction(&self, id: &str) -> Result<pb::Transaction, Error> {
        let request = pb::GetTransactionRequest {
            transaction_id: id.to_owned(),
        };
        self.connection
            .unary(
                "GetTransaction",
                &self.grpc,
                request,
                |mut c, r| async move { c.get_transaction(r).await },
            )
            .await
    }

    pub async fn list_transactions(
        &self,
        request: pb::ListTransactionsRequest,
    ) -> Result<pb::ListTransactionsResponse, Error> {
        self.connection
            .unary(
                "ListTransactions",
                &self.grpc,
                request,
                |mut c, r| async move { c.list_transactions(r).await },
            )
            .await
    }

    /// An empty `user_id` means the token's own user.
    pub async fn get_wallet(&self, user_id: &str) -> Result<pb::Wallet, Error> {
        let request = pb::GetWalletRequest {
            user_id: user_id.to_owned(),
        };
        self.connection
            .unary("GetWallet", &self.grpc, request, |mut c, r| async move {
                c.get_wallet(r).await
            })
            .await
    }

    pub async fn attach_payment_method(
        &self,
        request: pb::AttachPaymentMethodRequest,
    ) -> Result<pb::PaymentMethod, Error> {
        self.connection
            .unary(
                "AttachPaymentMethod",
                &self.grpc,
                request,
                |mut c, r| async move { c.attach_payment_method(r).await },
            )
            .await
    }

    pub async fn list_payment_methods(
        &self,
        user_id: &str,
    ) -> Result<Vec<pb::PaymentMethod>, Error> {
        let request = pb::ListPaymentMethodsRequest {
            user_id: user_id.to_owned(),
        };
        let answer = self
            .connection
            .unary(
                "ListPaymentMethods",
                &self.grpc,
                request,
                |mut c, r| async move { c.list_payment_methods(r).await },
            )
            .await?;
        Ok(answer.payment_methods)
    }

    pub async fn detach_payment_method(
        &self,
        request: pb::DetachPaymentMethodRequest,
    ) -> Result<pb::PaymentMethod, Error> {
        self.connection
            .unary(
                "DetachPaymentMethod",
                &self.grpc,
                request,
                |mut c, r| async move { c.detach_payment_method(r).await },
            )
            .await
    }

    /// One WatchTransaction stream as the server sends it: no reconnection, no
    /// filtering (for measuring the stream itself). Use
    /// [`PaymentsClient::watch_transaction`] or [`PaymentsClient::await_transaction`].
    pub async fn open_watch(
        &self,
        id: &str,
        await_status: Option<pb::TransactionStatus>,
    ) -> Result<tonic::Streaming<pb::TransactionUpdate>, Error> {
        let request = pb::WatchTransactionRequest {
            transaction_id: id.to_owned(),
            await_status: await_status.map(|s| s as i32),
        };
        let request = self.connection.request(request, false).await?;
        Ok(self
            .grpc
            .clone()
            .watch_transaction(request)
            .await?
            .into_inner())
    }
}

/// PaymentsAdmin: operator calls; they need a service token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    grpc: PaymentsAdminClient<Channel>,
    connection: Connection,
}

impl AdminClient {
    pub async fn list_dead_events(&self, page_size: i32) -> Result<Vec<pb::StripeEvent>, Error> {
        let request = pb::ListDeadEventsRequest { page_size };
        let answer = self
            .connection
            .unary(
                "ListDeadEvents",
                &self.grpc,
                request,
                |mut c, r| async move { c.list_dead_events(r).await },
            )
            .await?;
        Ok(answer.events)
    }

    /// Applies a stored event again now, with a fresh retry budget (a replay of an
    /// applied event changes nothing, so a retry is harmless).
    pub async fn replay_event(&self, event_id: &str) -> Result<pb::StripeEvent, Error> {
        let request = pb::ReplayEventRequest {
            event_id: event_id.to_owned(),
        };
        let answer = self
            .connection
            .unary("ReplayEvent", &self.grpc, request, |mut c, r| async move {
                c.replay_event(r).await
            })
            .await?;
        answer.event.ok_or(Error::Incomplete("event"))
    }

    pub async fn reconcile_transaction(&self, id: &str) -> Result<pb::Transaction, Error> {
        let request = pb::ReconcileTransactionRequest {
            transaction_id: id.to_owned(),
        };
        self.connection
            .unary(
                "ReconcileTransaction",
                &self.grpc,
                request,
                |mut c, r| async move { c.reconcile_transaction(r).await },
            )
            .await
    }

    pub async fn check_ledger(&self) -> Result<pb::CheckLedgerResponse, Error> {
        self.connection
            .unary(
                "CheckLedger",
                &self.grpc,
                pb::CheckLedgerRequest {},
                |mut c, r| async move { c.check_ledger(r).await },
            )
            .await
    }
}
