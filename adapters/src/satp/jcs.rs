//! RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of a JSON
//! value that SATP hashes (`hashPrevMessage`) and signs.
//!
//! - objects: members sorted by their names compared as UTF-16 code units,
//!   no whitespace;
//! - strings: the ECMAScript `JSON.stringify` escaping: `"` and `\`, the
//!   control characters as `\b \t \n \f \r` or `\u00xx` (lowercase hex),
//!   everything else as UTF-8, unescaped (including `/` and non-ASCII);
//! - numbers: RFC 8785 requires the ECMAScript number-to-string algorithm.
//!   This implementation accepts integers of magnitude at most 2^53 - 1 (whose
//!   ECMAScript form is the plain decimal) and refuses any other number with
//!   [`JcsError::Number`]: SATP messages as Lockgate writes them carry
//!   amounts and times as strings, so a non-integer number in a peer's message
//!   is refused rather than canonicalised wrongly.

use serde_json::Value;

/// Largest integer magnitude canonicalised (2^53 - 1, JavaScript's safe range).
pub const SAFE_INTEGER_MAX: u64 = (1 << 53) - 1;

/// A value this canonicaliser refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    /// A number that is not an integer within ±(2^53 - 1).
    #[error("number {0} is not an integer within ±(2^53 - 1); send it as a string")]
    Number(String),
}

/// The canonical bytes of `value`.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(number, out)?,
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write(member, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_number(number: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if let Some(n) = number.as_u64() {
        if n <= SAFE_INTEGER_MAX {
            out.extend_from_slice(n.to_string().as_bytes());
            return Ok(());
        }
    } else if let Some(n) = number.as_i64() {
        if n.unsigned_abs() <= SAFE_INTEGER_MAX {
            out.extend_from_slice(n.to_string().as_bytes());
            return Ok(());
        }
    } else if let Some(f) = number.as_f64() {
        // An integral float such as 5.0 is the integer 5 in ECMAScript.
        if f.fract() == 0.0 && f.abs() <= SAFE_INTEGER_MAX as f64 {
            let n = f as i64;
            let n = if n == 0 { 0 } else { n }; // -0 prints as 0
            out.extend_from_slice(n.to_string().as_bytes());
            return Ok(());
        }
    }
    Err(JcsError::Number(number.to_string()))
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buffer = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jcs(value: Value) -> String {
        String::from_utf8(canonicalize(&value).unwrap()).unwrap()
    }

    #[test]
    fn sorts_members_and_drops_whitespace() {
        assert_eq!(
            jcs(json!({"b": [1, {"z": null, "a": true}], "a": "x"})),
            r#"{"a":"x","b":[1,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn sorts_by_utf16_code_units() {
        // U+1F600 (surrogates D83D DE00) sorts before U+FFFD in UTF-16, after it in UTF-8/code points.
        assert_eq!(
            jcs(json!({"\u{fffd}": 1, "\u{1f600}": 2})),
            "{\"\u{1f600}\":2,\"\u{fffd}\":1}"
        );
    }

    #[test]
    fn escapes_like_ecmascript() {
        assert_eq!(
            jcs(json!("a\"b\\c/d\u{1}\u{1f}\n\té€")),
            "\"a\\\"b\\\\c/d\\u0001\\u001f\\n\\té€\""
        );
    }

    #[test]
    fn integers_in_the_safe_range_only() {
        assert_eq!(
            jcs(json!([
                0,
                -1,
                9007199254740991_u64,
                -9007199254740991_i64,
                5.0
            ])),
            "[0,-1,9007199254740991,-9007199254740991,5]"
        );
        assert!(canonicalize(&json!(9007199254740992_u64)).is_err());
        assert!(canonicalize(&json!(1.5)).is_err());
    }
}
