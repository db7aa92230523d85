//! Whole numbers as JSON Schema means them: `6390` and `6390.0` are the same integer. serde reads
//! only the first as an `i64`; clients that compute prices in floating point send the second.

use serde::{Deserialize, Deserializer, de};

/// An `i64` written as an integer, or as a float with no fractional part within `i64`'s range.
pub(crate) fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match whole(deserializer)? {
        Whole::Int(value) => Ok(value),
        Whole::Float(value) => from_float(value).ok_or_else(|| {
            de::Error::invalid_value(de::Unexpected::Float(value), &"a whole number")
        }),
    }
}

/// Like [`number`], for an optional field (`null` or absent is `None`).
pub(crate) fn optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    match Option::<Whole>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Whole::Int(value)) => Ok(Some(value)),
        Some(Whole::Float(value)) => from_float(value).map(Some).ok_or_else(|| {
            de::Error::invalid_value(de::Unexpected::Float(value), &"a whole number")
        }),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Whole {
    Int(i64),
    Float(f64),
}

fn whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Whole, D::Error> {
    Whole::deserialize(deserializer)
        .map_err(|_: D::Error| de::Error::custom("invalid type: expected a whole number"))
}

fn from_float(value: f64) -> Option<i64> {
    // 2^63 is exactly representable; anything at or above it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (value.fract() == 0.0 && (-LIMIT..LIMIT).contains(&value)).then_some(value as i64)
}

#[cfg(test)]
mod tests {
    use crate::Product;

    fn price(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Product>(&format!(
            r#"{{"id":"p","name":"Tea","price_cents":{json}}}"#
        ))
        .map(|p| p.price_cents)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        assert_eq!(price("6390"), Ok(6390));
        assert_eq!(price("6390.0"), Ok(6390));
        assert_eq!(price("-5e2"), Ok(-500));
        assert!(price("6390.5").unwrap_err().contains("whole number"));
        assert!(price("1e19").is_err());
        assert!(price("\"6390\"").unwrap_err().contains("whole number"));
        assert_eq!(price("9223372036854775807"), Ok(i64::MAX));
    }
}
