//! Each request's id: the caller's `X-Request-Id` when it is sane, else a
//! new one. It is echoed in the answer, carried by the request's log span
//! and written into its decision records, so a caller's ticket, the
//! service's log lines and the audit trail meet on one value.

use hyper::HeaderMap;

pub const HEADER: &str = "x-request-id";

/// The longest id accepted from a caller.
pub const MAX_LEN: usize = 128;

/// The caller's id if it is 1 to [`MAX_LEN`] printable ASCII characters
/// without spaces and names no ID number or phone (it goes into every log
/// line of the request, which show those only masked); else a new random
/// one.
pub fn of(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(crate::random_id)
}

fn acceptable(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_graphic())
        && crate::ids::mask_text(id) == id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &[u8]) -> String {
        let mut h = HeaderMap::new();
        h.insert(HEADER, hyper::header::HeaderValue::from_bytes(id).unwrap());
        of(&h)
    }

    #[test]
    fn keeps_a_sane_id_and_replaces_others() {
        assert_eq!(with(b"req-42.abc_DEF"), "req-42.abc_DEF");
        for bad in [
            &b"has space"[..],
            "café".as_bytes(),
            &[b'a'; MAX_LEN + 1][..],
            b"id-210102199001015035",
            b"tel-13800138000",
        ] {
            let got = with(bad);
            assert_eq!(got.len(), 32, "{bad:?} gave {got}");
            assert!(got.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(of(&HeaderMap::new()).len(), 32);
    }
}
