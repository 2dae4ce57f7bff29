//! Values stored (and sent) as text, behind one mechanism, so that a row, a wire
//! message or a JSON document holds the type and never a `String` to be parsed later:
//!
//! - [`text_enum!`] declares an enum with its stored names: `ALL`, `as_str`, `parse`,
//!   `Display`, `FromStr`, serde, and sqlx's `Type`/`Encode`/`Decode` as `text`.
//! - [`stored_as_text!`] gives a validated newtype (an id, a currency) sqlx's
//!   `Type`/`Encode`/`Decode` as `text` through its own `parse` and `as_str`.
//! - [`serde_via_parse!`] gives it serde through the same `parse`, so deserializing
//!   can never build a value `parse` refuses.
//!
//! A stored value the type refuses is a decode error, which the store reports as
//! [`StoreError::Corrupt`](crate::store::StoreError::Corrupt).

/// A text that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {what}: {value:?}")]
pub struct UnknownText {
    pub what: &'static str,
    pub value: String,
}

/// sqlx's `Type`, `Encode` and `Decode` for Postgres `text`, through the type's
/// `as_str()` and `parse(&str) -> Result<Self, impl Display>`.
macro_rules! stored_as_text {
    ($name:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                <$name>::parse(text).map_err(|e| e.to_string().into())
            }
        }
    };
}

/// serde through the type's `Display` and `parse(&str) -> Result<Self, impl Display>`.
macro_rules! serde_via_parse {
    ($name:ty) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$name>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An enum stored as text: each variant with its stored name.
macro_rules! text_enum {
    (
        $(#[$doc:meta])*
        $name:ident as $what:literal {
            $( $(#[$vdoc:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $( $(#[$vdoc])* $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as stored.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Result<Self, $crate::text::UnknownText> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::text::UnknownText { what: $what, value: text.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::text::UnknownText;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::parse(text)
            }
        }

        $crate::text::serde_via_parse!($name);
        $crate::text::stored_as_text!($name);
    };
}

pub(crate) use {serde_via_parse, stored_as_text, text_enum};

/// `'a', 'b'`: a set of stored names for `IN (…)`. The sets of statuses and states
/// the queries filter on are written from their one Rust definition with this, and
/// `tests/schema.rs` checks the migration's partial indexes against the same sets.
pub(crate) fn sql_list<T: Copy + std::fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    text_enum!(
        /// A test enum.
        Fruit as "fruit" {
            Apple = "apple",
            /// With a doc.
            BloodOrange = "blood_orange",
        }
    );

    #[test]
    fn every_value_round_trips_through_its_text() {
        for fruit in Fruit::ALL {
            assert_eq!(Fruit::parse(fruit.as_str()), Ok(*fruit));
            assert_eq!(fruit.to_string(), fruit.as_str());
        }
        assert_eq!(
            Fruit::parse("pear"),
            Err(super::UnknownText {
                what: "fruit",
                value: "pear".into()
            })
        );
    }

    #[test]
    fn serde_uses_the_stored_text_and_refuses_anything_else() {
        assert_eq!(
            serde_json::to_string(&Fruit::BloodOrange).ok(),
            Some("\"blood_orange\"".into())
        );
        assert_eq!(
            serde_json::from_str::<Fruit>("\"apple\"").ok(),
            Some(Fruit::Apple)
        );
        assert!(serde_json::from_str::<Fruit>("\"Apple\"").is_err());
    }

    #[test]
    fn a_sql_list_quotes_each_stored_name() {
        assert_eq!(super::sql_list(Fruit::ALL), "'apple', 'blood_orange'");
    }
}
