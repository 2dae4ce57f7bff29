//! The per-user rate limit on mutations: a GCRA token bucket per user (governor's
//! keyed limiter), as a tower layer that sits between authentication and the
//! `PaymentsService` server. It keys on the verified [`Caller`] the interceptor put in
//! the request's extensions, never on an unverified header, so nobody can spend
//! another user's budget. A refused call never reaches the handler: it is answered
//! RESOURCE_EXHAUSTED (`RATE_LIMITED`) with a `RetryInfo` saying when the next call
//! is allowed. Reads are not limited (each is one short query); service tokens are
//! trusted backends acting for many users and are exempt.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::{Either, Ready, ready};
use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use tonic::{Status, server::NamedService};
use tower::{Layer, Service};

use crate::{
    auth::Caller,
    config::RateLimit,
    error::{ApiError, Reason, Refusal},
};

/// The `PaymentsService` methods that change something (and may call Stripe).
const MUTATIONS: &[&str] = &[
    "CreatePayment",
    "ApplyCoupon",
    "ValidatePaymentMethod",
    "StartTrial",
    "AttachPaymentMethod",
    "DetachPaymentMethod",
];

/// The shared buckets; cheap to clone.
#[derive(Clone)]
pub struct MutationLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl MutationLimit {
    /// `None` turns the limit off.
    pub fn new(limit: Option<RateLimit>) -> Self {
        let limiter = limit.map(|limit| {
            let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
            Arc::new(DefaultKeyedRateLimiter::keyed(quota))
        });
        MutationLimit { limiter }
    }

    /// Forgets the buckets of users that have been idle long enough to be full again,
    /// so memory follows the active users, not every user ever seen.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// The refusal for a call over its user's budget, if it is one.
    pub fn check<B>(&self, request: &http::Request<B>) -> Option<ApiError> {
        let limiter = self.limiter.as_ref()?;
        let method = request.uri().path().rsplit('/').next()?;
        if !MUTATIONS.contains(&method) {
            return None;
        }
        let Some(Caller::User(user)) = request.extensions().get::<Caller>() else {
            return None;
        };
        let not_until = limiter.check_key(&user.as_str().to_owned()).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Some(refusal(wait))
    }
}

fn refusal(wait: Duration) -> ApiError {
    // Rounded up to a millisecond, so a client waiting exactly this long gets through.
    let wait = Duration::from_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX) + 1);
    Refusal::new(
        Reason::RateLimited,
        format!(
            "too many calls that change something; retry in {} ms",
            wait.as_millis()
        ),
    )
    .retry_after(wait)
    .into()
}

impl<S> Layer<S> for MutationLimit {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limit: self.clone(),
        }
    }
}

/// A service behind the mutation limit.
#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    limit: MutationLimit,
}

impl<S: NamedService> NamedService for RateLimited<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for RateLimited<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.limit.check(&request) {
            Some(refused) => Either::Left(ready(Ok(Status::from(refused).into_http()))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use payments_core::UserId;
    use payments_proto::errors::ErrorDetail;

    use super::*;

    fn call(method: &str, caller: Caller) -> http::Request<()> {
        let mut request = http::Request::builder()
            .uri(format!("/payments.v1.PaymentsService/{method}"))
            .body(())
            .expect("request");
        request.extensions_mut().insert(caller);
        request
    }

    fn user(id: &str) -> Caller {
        Caller::User(UserId::parse(id).expect("id"))
    }

    fn limit(burst: u32) -> MutationLimit {
        MutationLimit::new(Some(RateLimit {
            per_second: NonZeroU32::MIN,
            burst: NonZeroU32::new(burst).expect("burst"),
        }))
    }

    #[test]
    fn a_user_past_its_burst_is_refused_with_the_wait_while_others_are_not() {
        let limit = limit(2);
        for _ in 0..2 {
            assert!(
                limit
                    .check(&call("CreatePayment", user("mallory")))
                    .is_none()
            );
        }
        let refused = limit
            .check(&call("ApplyCoupon", user("mallory")))
            .expect("over the burst");
        let status = Status::from(refused);
        let detail = ErrorDetail::of(&status).expect("ErrorInfo");
        assert_eq!(detail.reason, Reason::RateLimited);
        let wait = detail.retry_delay.expect("RetryInfo");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(1001),
            "{wait:?}"
        );
        assert!(limit.check(&call("CreatePayment", user("alice"))).is_none());
    }

    #[test]
    fn reads_services_and_a_disabled_limit_are_never_refused() {
        let limit = limit(1);
        let service = Caller::Service {
            subject: "backoffice".into(),
        };
        for _ in 0..5 {
            assert!(limit.check(&call("GetWallet", user("alice"))).is_none());
            assert!(
                limit
                    .check(&call("WatchTransaction", user("alice")))
                    .is_none()
            );
            assert!(
                limit
                    .check(&call("CreatePayment", service.clone()))
                    .is_none()
            );
        }
        let off = MutationLimit::new(None);
        for _ in 0..5 {
            assert!(off.check(&call("CreatePayment", user("alice"))).is_none());
        }
    }
}
