//! Each request's id: the caller's `X-Request-Id` when it is sane, else a
//! new one. It is echoed in the answer, carried by the request's log span
//! and written into its decision records, so a caller's ticket, the
//! service's log lines and the audit trail meet on one value.

use hyper::HeaderMap;

pub const HEADER: &str = "x-request-id";

/// The longest id accepted from a caller.
pub const MAX_LEN: usize = 128;

/// An id holds fewer digits than this: a mainland phone has 11 and an ID
/// number 18, so neither can be written in it however it is separated
/// (`138.1234.5678`, `210102_19900101_5035`) or glued into a longer run.
const DIGITS_LIMIT: usize = 11;

/// The caller's id if [`acceptable`]; else a new one.
pub fn of(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(generate)
}

/// 1 to [`MAX_LEN`] characters of `A-Z a-z 0-9 . _ : / -` with fewer than
/// [`DIGITS_LIMIT`] digits in all. The id goes into every log line of the
/// request and into its decision records, which show ID numbers and phones
/// only masked; a charset and a digit count are checked rather than
/// asking the masker, which cannot know every separator a caller may use.
pub fn acceptable(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
        && few_digits(id)
}

/// Whether `text` holds fewer digits than a phone (11), so no phone or ID
/// number can be spelled in it with any separators. Key ids share the rule.
pub fn few_digits(text: &str) -> bool {
    text.bytes().filter(u8::is_ascii_digit).count() < DIGITS_LIMIT
}

/// A new id: 128 random bits as 32 letters `a`–`p` (one a nibble). Hex
/// would put a phone-shaped digit run in about one id in 200; letters
/// hold none, and the id passes [`acceptable`], so a proxy that sends it
/// back keeps it.
pub fn generate() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0f])
        .map(|nibble| char::from(b'a' + nibble))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &[u8]) -> String {
        let mut h = HeaderMap::new();
        h.insert(HEADER, hyper::header::HeaderValue::from_bytes(id).unwrap());
        of(&h)
    }

    fn generated(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| (b'a'..=b'p').contains(&b))
    }

    #[test]
    fn keeps_a_sane_id_and_replaces_others() {
        assert_eq!(with(b"req-42.abc_DEF"), "req-42.abc_DEF");
        assert_eq!(with(b"svc:42/7"), "svc:42/7");
        for bad in [
            &b"has space"[..],
            "café".as_bytes(),
            &[b'a'; MAX_LEN + 1][..],
            b"id-210102199001015035",
            b"tel-13800138000",
            b"138.1234.5678",
            b"210102_19900101_5035",
            b"110105_1949_1231_002X",
            b"9913812345678",
            b"a,b",
        ] {
            let got = with(bad);
            assert!(generated(&got), "{bad:?} gave {got}");
        }
        assert!(generated(&of(&HeaderMap::new())));
    }

    proptest::proptest! {
        /// However a phone's or ID number's digits are separated or
        /// padded, the id is not kept.
        #[test]
        fn no_phone_or_id_number_is_kept(
            digits in "[0-9]{11,18}",
            seps in proptest::collection::vec("[._:/-]{0,2}", 18),
            prefix in "[A-Za-z0-9]{0,5}",
        ) {
            let mut id = prefix;
            for (d, sep) in digits.chars().zip(&seps) {
                id.push(d);
                id.push_str(sep);
            }
            proptest::prop_assert!(!acceptable(&id), "{id}");
        }

        /// Every generated id is acceptable and holds no digit at all.
        #[test]
        fn generated_ids_are_acceptable_and_digit_free(_seed in 0u32..1000) {
            let id = generate();
            proptest::prop_assert!(acceptable(&id) && generated(&id), "{id}");
        }
    }
}
