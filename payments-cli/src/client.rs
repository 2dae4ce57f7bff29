//! The connection to payments-api and the bearer tokens sent with each call.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use payments_proto::payments::v1::{
    payments_admin_client::PaymentsAdminClient, payments_service_client::PaymentsServiceClient,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

pub struct Api {
    pub payments: PaymentsServiceClient<Channel>,
    pub admin: PaymentsAdminClient<Channel>,
    auth: Auth,
}

/// A fixed token, or a development secret to mint one per call.
pub struct Auth {
    pub token: Option<String>,
    pub jwt_secret: Option<String>,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
}

/// Mints an HS256 token valid for an hour (development and demo only).
pub fn mint(secret: &str, user: &str, service: bool) -> anyhow::Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3_600;
    let claims = Claims {
        sub: user,
        exp,
        role: service.then_some("service"),
    };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}

impl Api {
    /// `url` serves PaymentsService; `admin_url`, PaymentsAdmin (connected on first use,
    /// so user commands do not need the operators' port).
    pub async fn connect(url: &str, admin_url: &str, auth: Auth) -> anyhow::Result<Api> {
        let channel = Channel::from_shared(url.to_owned())
            .context("bad --api URL")?
            .connect()
            .await
            .with_context(|| format!("cannot reach payments-api at {url}"))?;
        let admin = Channel::from_shared(admin_url.to_owned())
            .context("bad --admin URL")?
            .connect_lazy();
        Ok(Api {
            payments: PaymentsServiceClient::new(channel),
            admin: PaymentsAdminClient::new(admin),
            auth,
        })
    }

    /// A request carrying a token: the user's own when minting, else the configured one.
    /// Without a user (operator calls), a minted token is a service token.
    pub fn request<T>(&self, user: Option<&str>, message: T) -> anyhow::Result<Request<T>> {
        let token = match (&self.auth.token, &self.auth.jwt_secret) {
            (Some(token), _) => token.clone(),
            (None, Some(secret)) => match user {
                Some(user) => mint(secret, user, false)?,
                None => mint(secret, "operator", true)?,
            },
            (None, None) => anyhow::bail!("no credentials: pass --token or --jwt-secret"),
        };
        let mut request = Request::new(message);
        let value =
            MetadataValue::try_from(format!("Bearer {token}")).context("token is not ASCII")?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}
