//! Request parameters: the query string and the body (form-encoded, or JSON for the test
//! endpoints) merged into one JSON object, with typed accessors that produce Stripe's
//! `parameter_invalid_*` errors.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::form;

/// Parsed parameters of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Value);

impl Params {
    /// Query string first, then the body on top of it.
    pub fn from_parts(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut merged = match query {
            Some(query) => form::parse(query),
            None => Value::Object(Map::new()),
        };
        if !body.is_empty() {
            let is_json = content_type.is_some_and(|ct| ct.starts_with("application/json"));
            let parsed = if is_json {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::invalid(format!("Invalid JSON body: {e}")))?
            } else {
                let text = std::str::from_utf8(body)
                    .map_err(|_| ApiError::invalid("The body is not valid UTF-8."))?;
                form::parse(text)
            };
            if let (Value::Object(target), Value::Object(source)) = (&mut merged, parsed) {
                target.extend(source);
            }
        }
        Ok(Self(merged))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string parameter; an empty string counts as absent (Stripe uses it to unset a field).
    pub fn str(&self, name: &str) -> Option<&str> {
        Self::as_str(self.get(name)?)
    }

    /// The parameter as a string, whether it is one or a JSON number/bool (test endpoints).
    fn as_str(value: &Value) -> Option<&str> {
        match value {
            Value::String(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn required_str(&self, name: &str) -> Result<&str, ApiError> {
        self.str(name).ok_or_else(|| ApiError::missing_param(name))
    }

    /// Whether the parameter was sent at all, even empty (`description=` unsets).
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some()
    }

    pub fn i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid_integer(name, n)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_integer(name, s)),
            Some(other) => Err(ApiError::invalid_integer(name, other)),
        }
    }

    pub fn required_i64(&self, name: &str) -> Result<i64, ApiError> {
        self.i64(name)?.ok_or_else(|| ApiError::missing_param(name))
    }

    pub fn f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_param(name, format!("Invalid decimal: {s}"))),
            Some(other) => Err(ApiError::invalid_param(
                name,
                format!("Invalid decimal: {other}"),
            )),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                "" => Ok(None),
                _ => Err(ApiError::invalid_param(
                    name,
                    format!("Invalid boolean: {s}"),
                )),
            },
            Some(other) => Err(ApiError::invalid_param(
                name,
                format!("Invalid boolean: {other}"),
            )),
        }
    }

    /// A nested object parameter (`promotion[coupon]`), as its own `Params`.
    pub fn nested(&self, name: &str) -> Option<Params> {
        match self.get(name) {
            Some(value @ Value::Object(_)) => Some(Params(value.clone())),
            _ => None,
        }
    }

    /// A list parameter (`expand[]`, `discounts[0][coupon]`); a single value counts as a list of one.
    pub fn list(&self, name: &str) -> Vec<Value> {
        match self.get(name) {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::String(s)) if s.is_empty() => Vec::new(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        }
    }

    /// `list` restricted to string items.
    pub fn str_list(&self, name: &str) -> Vec<String> {
        self.list(name)
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// Applies `metadata[k]=v` to `target` the way Stripe does: an empty value removes the key.
    pub fn apply_metadata(&self, target: &mut BTreeMap<String, String>) -> Result<(), ApiError> {
        let Some(value) = self.0.get("metadata") else {
            return Ok(());
        };
        match value {
            Value::Object(entries) => {
                for (key, value) in entries {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    if value.is_empty() {
                        target.remove(key);
                    } else {
                        target.insert(key.clone(), value);
                    }
                }
                Ok(())
            }
            // `metadata=` clears all keys.
            Value::String(s) if s.is_empty() => {
                target.clear();
                Ok(())
            }
            Value::Null => Ok(()),
            _ => Err(ApiError::invalid_param(
                "metadata",
                "Invalid metadata: expected a hash.",
            )),
        }
    }

    /// The `expand[]` paths.
    pub fn expand(&self) -> Vec<String> {
        self.str_list("expand")
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(str::to_owned);
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(format!("Could not read the body: {e}")))?;
        Params::from_parts(query.as_deref(), content_type.as_deref(), &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_body_overrides_the_query() {
        let params = Params::from_parts(Some("limit=3&a=q"), None, b"a=b").expect("parses");
        assert_eq!(params.0, json!({"limit": "3", "a": "b"}));
    }

    #[test]
    fn json_bodies_are_accepted() {
        let params = Params::from_parts(
            None,
            Some("application/json"),
            br#"{"outcome":"fail","n":2}"#,
        )
        .expect("parses");
        assert_eq!(params.str("outcome"), Some("fail"));
        assert_eq!(params.i64("n").expect("integer"), Some(2));
    }

    #[test]
    fn integers_and_booleans_are_validated() {
        let params = Params(json!({"amount": "12x", "confirm": "yes"}));
        assert_eq!(
            params.i64("amount").expect_err("invalid").param.as_deref(),
            Some("amount")
        );
        assert!(params.bool("confirm").is_err());
    }

    #[test]
    fn empty_metadata_values_remove_keys() {
        let mut metadata = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        Params(json!({"metadata": {"a": "", "c": "3"}}))
            .apply_metadata(&mut metadata)
            .expect("valid");
        assert_eq!(
            metadata,
            BTreeMap::from([
                ("b".to_owned(), "2".to_owned()),
                ("c".to_owned(), "3".to_owned())
            ])
        );
    }
}
