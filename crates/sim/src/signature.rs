//! Webhook signatures as both channels compute them: base64 of the binary HMAC-SHA256 of the
//! exact body bytes (Shopify `X-Shopify-Hmac-Sha256`, API_FACTS §1.6; WooCommerce
//! `X-WC-Webhook-Signature`, §2.3).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// base64(HMAC-SHA256(body, secret)).
pub(crate) fn sign(body: &[u8], secret: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A lower-case hex SHA-256, used for WooCommerce's delivery ids and default secrets.
pub(crate) fn sha256_hex(input: &str) -> String {
    use sha2::Digest;
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::sign(b"what do ya want for nothing?", "Jefe"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
    }
}
