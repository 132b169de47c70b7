//! JSON written the way PHP's `json_encode` (and so WordPress's `wp_json_encode`) writes it with
//! default flags: `/` escaped as `\/` and every non-ASCII character as `\uXXXX` (UTF-16),
//! API_FACTS §2.3. WooCommerce's REST answers and webhook bodies are written this way.

use serde_json::Value;

/// The PHP-style encoding of a JSON value.
pub(crate) fn encode(value: &Value) -> String {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len() + 16);
    for ch in plain.chars() {
        match ch {
            // `/` and non-ASCII characters only ever occur inside JSON strings.
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_like_php() {
        let value =
            serde_json::json!({"url": "https://a.example/x", "name": "Caf\u{e9} \u{1F600}"});
        let text = super::encode(&value);
        assert_eq!(
            text,
            r#"{"name":"Caf\u00e9 \ud83d\ude00","url":"https:\/\/a.example\/x"}"#
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}
