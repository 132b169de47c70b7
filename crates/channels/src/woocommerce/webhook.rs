//! WooCommerce webhook deliveries: the signature, the permanent identity, and what a delivery
//! means for stock.
//!
//! - Signature: `X-WC-Webhook-Signature` = base64(HMAC-SHA256(exact body, webhook secret)),
//!   checked in constant time over the raw bytes. The one unsigned request WooCommerce sends is
//!   the ping on a webhook's creation: a form-encoded `webhook_id=<id>` body with no signature
//!   header; it is a `Ping`. Anything else unsigned, or signed wrongly, is `Invalid`.
//! - Identity: `X-WC-Webhook-Delivery-ID` is a hash of the webhook id and the current SECOND, so
//!   two deliveries in the same second share it; it is kept as `delivery_id` and never used as the
//!   identity alone. A resource delivery is identified by
//!   `<resource>/<id>/<date_modified_gmt>/<sha256 of the body's content>`: the same state
//!   delivered twice dedupes, two states in the same second do not. The content hash is over the
//!   JSON with its keys sorted and PHP's escaping undone, so that the same state reads the same
//!   whichever way it was encoded. A deletion (`{"id": …}` only) adds its delivery id, so that an
//!   order deleted, restored and deleted again is deleted twice.
//! - Meaning: `order.created`, `order.updated` and `order.restored` carry the whole order (REST v3
//!   shape, built when sent) and become a snapshot; `order.deleted` releases the whole order; every
//!   other topic is recorded and ignored.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::orders;
use crate::connection::Secret;
use crate::connector::{Delivery, Intake, Verdict};
use crate::error::ParseError;
use crate::signature;

pub const SIGNATURE: &str = "x-wc-webhook-signature";
pub const TOPIC: &str = "x-wc-webhook-topic";
pub const DELIVERY_ID: &str = "x-wc-webhook-delivery-id";
/// The topic stockhub gives WooCommerce's creation ping, which has none.
pub const PING: &str = "ping";

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The webhook id of a creation ping body (`webhook_id=<id>`), if the body is one.
fn ping_webhook_id(body: &[u8]) -> Option<&str> {
    let body = std::str::from_utf8(body).ok()?.trim();
    let id = body.strip_prefix("webhook_id=")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// Whether a request is WooCommerce's unsigned creation ping.
fn is_ping(headers: &http::HeaderMap, body: &[u8]) -> bool {
    headers
        .get(SIGNATURE)
        .is_none_or(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace))
        && ping_webhook_id(body).is_some()
}

pub fn verify(secret: &Secret, headers: &http::HeaderMap, body: &[u8]) -> Verdict {
    if is_ping(headers, body) {
        return Verdict::Ping;
    }
    let Some(signature) = headers.get(SIGNATURE) else {
        return Verdict::Invalid("missing X-WC-Webhook-Signature");
    };
    let Ok(signature) = signature.to_str() else {
        return Verdict::Invalid("unreadable X-WC-Webhook-Signature");
    };
    if secret.expose().is_empty() {
        return Verdict::Invalid("no webhook secret is configured for this channel");
    }
    if signature::verify(secret.expose().as_bytes(), body, signature) {
        Verdict::Valid
    } else {
        Verdict::Invalid("X-WC-Webhook-Signature does not match the body")
    }
}

pub fn identify(headers: &http::HeaderMap, body: &[u8]) -> Result<Delivery, ParseError> {
    let delivery_id = header(headers, DELIVERY_ID).map(str::to_owned);
    if is_ping(headers, body) {
        let webhook = ping_webhook_id(body).unwrap_or_default();
        return Ok(Delivery {
            topic: PING.into(),
            dedupe_key: format!("ping/{webhook}"),
            delivery_id,
        });
    }
    let topic = header(headers, TOPIC)
        .ok_or_else(|| ParseError("missing X-WC-Webhook-Topic".into()))?
        .to_owned();
    let (resource, event) = topic.split_once('.').unwrap_or((topic.as_str(), ""));
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let content = json.as_ref().map_or_else(|| sha256_hex(body), content_hash);
    let id = json
        .as_ref()
        .and_then(|j| j.get("id"))
        .and_then(super::wire::uint);
    let delivery = delivery_id.as_deref().unwrap_or("-");
    let dedupe_key = match id {
        Some(id) if event == "deleted" => format!("{resource}/{id}/deleted/{delivery}/{content}"),
        Some(id) => {
            let modified = json
                .as_ref()
                .and_then(|j| j.get("date_modified_gmt"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            format!("{resource}/{id}/{modified}/{content}")
        }
        None if resource == "order" => {
            return Err(ParseError(format!(
                "a {topic} delivery without an order id"
            )))
        }
        None => format!("{topic}/{delivery}/{content}"),
    };
    Ok(Delivery {
        topic,
        dedupe_key,
        delivery_id,
    })
}

pub fn interpret(delivery: &Delivery, body: &[u8], now_ms: i64) -> Result<Intake, ParseError> {
    let order = |body: &[u8]| -> Result<Value, ParseError> {
        serde_json::from_slice(body)
            .map_err(|e| ParseError(format!("{} body is not JSON: {e}", delivery.topic)))
    };
    match delivery.topic.as_str() {
        "order.created" | "order.updated" | "order.restored" => {
            Ok(Intake::Order(orders::parse_order(order(body)?)?))
        }
        "order.deleted" => Ok(Intake::Order(orders::deleted_order(order(body)?, now_ms)?)),
        other => Ok(Intake::Ignore(other.to_owned())),
    }
}

/// SHA-256 (hex) of a JSON value's content: keys sorted at every level, strings and numbers in
/// one canonical spelling.
pub fn content_hash(value: &Value) -> String {
    let mut canonical = Vec::new();
    write_canonical(value, &mut canonical);
    sha256_hex(&canonical)
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    const SECRET: &str = "wc-webhook-secret";

    fn headers(topic: &str, delivery: &str, signature: Option<String>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("X-WC-Webhook-Topic", HeaderValue::from_str(topic).unwrap());
        h.insert(
            "X-WC-Webhook-Delivery-ID",
            HeaderValue::from_str(delivery).unwrap(),
        );
        h.insert("X-WC-Webhook-ID", HeaderValue::from_static("12"));
        if let Some(s) = signature {
            h.insert("X-WC-Webhook-Signature", HeaderValue::from_str(&s).unwrap());
        }
        h
    }

    fn signed(topic: &str, delivery: &str, body: &[u8]) -> HeaderMap {
        headers(
            topic,
            delivery,
            Some(signature::sign(SECRET.as_bytes(), body)),
        )
    }

    fn order_body(status: &str, modified: &str) -> Vec<u8> {
        format!(
            r#"{{"id":727,"status":"{status}","date_created_gmt":"2017-03-22T19:28:02","date_modified_gmt":"{modified}","line_items":[{{"id":315,"product_id":93,"variation_id":0,"quantity":2,"sku":"","meta_data":[]}}],"refunds":[]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_valid_signature_is_valid() {
        let body = order_body("processing", "2017-03-22T19:28:08");
        assert_eq!(
            verify(
                &Secret::new(SECRET),
                &signed("order.created", "d1", &body),
                &body
            ),
            Verdict::Valid
        );
    }

    #[test]
    fn a_tampered_body_or_wrong_secret_is_invalid() {
        let body = order_body("processing", "2017-03-22T19:28:08");
        let h = signed("order.created", "d1", &body);
        let tampered = order_body("completed", "2017-03-22T19:28:08");
        assert!(matches!(
            verify(&Secret::new(SECRET), &h, &tampered),
            Verdict::Invalid(_)
        ));
        assert!(matches!(
            verify(&Secret::new("other"), &h, &body),
            Verdict::Invalid(_)
        ));
        assert!(matches!(
            verify(&Secret::new(""), &h, &body),
            Verdict::Invalid(_)
        ));
        let garbage = headers("order.created", "d1", Some("not base64!".into()));
        assert!(matches!(
            verify(&Secret::new(SECRET), &garbage, &body),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn a_missing_signature_is_invalid() {
        let body = order_body("processing", "2017-03-22T19:28:08");
        assert_eq!(
            verify(
                &Secret::new(SECRET),
                &headers("order.created", "d1", None),
                &body
            ),
            Verdict::Invalid("missing X-WC-Webhook-Signature")
        );
        // A ping-looking body with extra fields is not a ping.
        assert!(matches!(
            verify(
                &Secret::new(SECRET),
                &HeaderMap::new(),
                b"webhook_id=12&x=1"
            ),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn the_creation_ping_is_a_ping() {
        let mut h = HeaderMap::new();
        h.insert(
            "Content-Type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            verify(&Secret::new(SECRET), &h, b"webhook_id=12"),
            Verdict::Ping
        );
        let delivery = identify(&h, b"webhook_id=12").unwrap();
        assert_eq!(delivery.topic, "ping");
        assert_eq!(delivery.dedupe_key, "ping/12");
        assert_eq!(
            interpret(&delivery, b"webhook_id=12", 0).unwrap(),
            Intake::Ignore("ping".into())
        );
        // A signed ping-shaped body is checked like any other.
        let h = signed("order.created", "d", b"webhook_id=12");
        assert_eq!(
            verify(&Secret::new(SECRET), &h, b"webhook_id=12"),
            Verdict::Valid
        );
    }

    #[test]
    fn the_same_content_twice_has_the_same_key() {
        let body = order_body("processing", "2017-03-22T19:28:08");
        let first = identify(&signed("order.updated", "aaa", &body), &body).unwrap();
        let again = identify(&signed("order.updated", "bbb", &body), &body).unwrap();
        assert_eq!(first.dedupe_key, again.dedupe_key);
        assert_eq!(first.delivery_id.as_deref(), Some("aaa"));
        assert_eq!(again.delivery_id.as_deref(), Some("bbb"));
        assert!(first
            .dedupe_key
            .starts_with("order/727/2017-03-22T19:28:08/"));
        // The same content, encoded the way PHP does (`\/`, other key order), is the same state.
        let a: &[u8] =
            br#"{"id":1,"date_modified_gmt":"2026-01-01T00:00:00","note":"a/b","total":"1.00"}"#;
        let b: &[u8] =
            br#"{"total":"1.00","note":"a\/b","date_modified_gmt":"2026-01-01T00:00:00","id":1}"#;
        let ka = identify(&signed("order.updated", "x", a), a)
            .unwrap()
            .dedupe_key;
        let kb = identify(&signed("order.updated", "y", b), b)
            .unwrap()
            .dedupe_key;
        assert_eq!(ka, kb);
    }

    #[test]
    fn two_states_in_the_same_second_with_the_same_delivery_id_differ() {
        let processing = order_body("processing", "2017-03-22T19:28:08");
        let completed = order_body("completed", "2017-03-22T19:28:08");
        let a = identify(
            &signed("order.updated", "same-second", &processing),
            &processing,
        )
        .unwrap();
        let b = identify(
            &signed("order.updated", "same-second", &completed),
            &completed,
        )
        .unwrap();
        assert_eq!(a.delivery_id, b.delivery_id);
        assert_ne!(a.dedupe_key, b.dedupe_key);
    }

    #[test]
    fn deletions_are_keyed_by_delivery_too() {
        let body = br#"{"id":727}"#;
        let a = identify(&signed("order.deleted", "one", body), body).unwrap();
        let b = identify(&signed("order.deleted", "two", body), body).unwrap();
        assert_ne!(a.dedupe_key, b.dedupe_key);
        assert!(a.dedupe_key.starts_with("order/727/deleted/one/"));
        let Intake::Order(order) = interpret(&a, body, 42).unwrap() else {
            panic!("an order")
        };
        assert!(
            !order.open
                && order.lines.is_empty()
                && crate::connector::version_time_ms(order.version) == 42
        );
    }

    #[test]
    fn topics_are_interpreted() {
        let body = order_body("on-hold", "2017-03-22T19:28:08");
        for topic in ["order.created", "order.updated", "order.restored"] {
            let d = identify(&signed(topic, "d", &body), &body).unwrap();
            assert_eq!(d.topic, topic);
            let Intake::Order(order) = interpret(&d, &body, 0).unwrap() else {
                panic!("an order for {topic}")
            };
            assert!(order.open);
        }
        let product = br#"{"id":93,"date_modified_gmt":"2017-03-22T19:28:08","stock_quantity":3}"#;
        let d = identify(&signed("product.updated", "d", product), product).unwrap();
        assert!(d.dedupe_key.starts_with("product/93/"));
        assert_eq!(
            interpret(&d, product, 0).unwrap(),
            Intake::Ignore("product.updated".into())
        );
        let action = br#"{"action":"woocommerce_x","arg":5}"#;
        let d = identify(&signed("action.woocommerce_x", "d", action), action).unwrap();
        assert!(d.dedupe_key.starts_with("action.woocommerce_x/d/"));
        assert!(identify(&HeaderMap::new(), b"{}").is_err());
        let no_id = br#"{"status":"processing"}"#;
        assert!(identify(&signed("order.updated", "d", no_id), no_id).is_err());
    }

    #[test]
    fn canonical_hash_ignores_key_order_and_escaping_only() {
        let a: Value =
            serde_json::from_str(r#"{"b":[1,{"y":"\u00e9","x":null}],"a":"x\/y"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"x/y","b":[1,{"x":null,"y":"é"}]}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":"x/y","b":[{"x":null,"y":"é"},1]}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
        assert_eq!(content_hash(&a).len(), 64);
    }
}
