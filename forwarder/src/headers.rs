//! Header rewriting shared by both directions of the proxy: hop-by-hop removal and
//! `x-forwarded-for`.

use std::cell::RefCell;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), plus `host`,
/// which the upstream request sets for itself. HTTP/2 forbids most of them outright.
/// Typed names, not strings: removing by `&str` parses the name again on every request.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDER_BACKEND: HeaderName = HeaderName::from_static("x-forwarder-backend");

/// Removes hop-by-hop headers, including any the `connection` header itself names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few names present instead of a lookup per hop-by-hop name: this runs
    // twice per proxied request.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name))
        .cloned()
        .collect();
    doomed.extend(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok()),
    );
    for name in doomed {
        headers.remove(name);
    }
}

/// Appends the client address to `x-forwarded-for`, keeping what earlier proxies wrote.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    if !headers.contains_key(&X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR, address_value(client));
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for v in headers.get_all(&X_FORWARDED_FOR) {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    let ip = client.to_string();
    joined.extend_from_slice(ip.as_bytes());
    let value = HeaderValue::from_bytes(&joined).unwrap_or_else(|_| address_value(client));
    headers.insert(X_FORWARDED_FOR, value);
}

thread_local! {
    /// The last client address written out: a connection's requests all come from one, and
    /// formatting an address is most of what `x-forwarded-for` costs.
    static LAST_ADDRESS: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
}

/// `client` as a header value.
fn address_value(client: IpAddr) -> HeaderValue {
    LAST_ADDRESS.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((ip, value)) if *ip == client => value.clone(),
            _ => {
                let value = HeaderValue::from_str(&client.to_string())
                    .expect("an IP address is a valid header value");
                *last = Some((client, value.clone()));
                value
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("host", HeaderValue::from_static("client.example"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        remove_hop_by_hop(&mut h);
        // The order of different field names carries no meaning (RFC 9110 5.3).
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type"]);
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1");
        append_forwarded_for(&mut h, "::1".parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1, ::1");
    }
}
