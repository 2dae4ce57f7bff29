//! Which browser origins may call grpc-web (`PAYMENTS_CORS_ORIGINS`).

use http::HeaderValue;
use payments_service_kit::Reader;

/// The origins allowed by CORS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin (development only; tokens are still required).
    Any,
    /// Exactly these origins; empty means no cross-origin browser calls.
    List(Vec<HeaderValue>),
}

/// `*`, or a comma-separated list of `http(s)://host[:port]` origins (a trailing `/`
/// is dropped); unset means none.
pub(super) fn read(env: &mut Reader<'_>) -> CorsOrigins {
    let Some(raw) = env.get("PAYMENTS_CORS_ORIGINS") else {
        return CorsOrigins::List(Vec::new());
    };
    if raw.trim() == "*" {
        return CorsOrigins::Any;
    }
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let origin = origin.trim_end_matches('/');
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let looks_like_origin = host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#']));
        match HeaderValue::from_str(origin) {
            Ok(value) if looks_like_origin => origins.push(value),
            _ => env.problem(format!(
                "PAYMENTS_CORS_ORIGINS: {origin:?} is not an origin like https://app.example.com"
            )),
        }
    }
    CorsOrigins::List(origins)
}
