//! Percent-decoding of request paths and query strings, and the form of a
//! path that goes to the request log and the metrics.

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it
/// is. Bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            // from_str_radix alone would take a sign (`%+5`).
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The label of a path no route matches (`routes::Lookup::label`).
pub const UNMATCHED: &str = "unmatched";

/// How much of an unmatched path the request log and a refusal's decision
/// record show: enough to recognise a probe, too little to carry a payload.
const UNMATCHED_SHOWN: usize = 48;

/// The path as the request log and a refusal's decision record show it: a
/// matched route's pattern (its `label`), else [`log_path`].
pub fn shown_path(label: &'static str, path: &str) -> String {
    match label {
        UNMATCHED => log_path(path),
        pattern => pattern.to_owned(),
    }
}

/// An unmatched path as it may be shown (logs, error messages): the first
/// [`UNMATCHED_SHOWN`] characters of its route words, with every other
/// segment as `*`. A segment that is not a lowercase route word is an
/// identifier someone sent — a person key, a credit code, a token, or
/// anything pasted into a 404 — and masking cannot recognise every
/// spelling of an ID number or phone (full-width digits, separators,
/// letters glued to it, escapes), so none is shown.
pub fn log_path(path: &str) -> String {
    let words = path
        .split('/')
        .map(|segment| {
            let route_word = segment == "v1"
                || segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_');
            if route_word {
                segment
            } else {
                "*"
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    match words.char_indices().nth(UNMATCHED_SHOWN) {
        Some((cut, _)) => format!("{}…", &words[..cut]),
        None => words,
    }
}

#[cfg(test)]
mod tests {
    use hyper::Method;

    use super::super::routes;
    use super::*;

    #[test]
    fn decodes_escapes() {
        assert_eq!(percent_decode("Etax%3A%3AStaff"), "Etax::Staff");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+5"), "%+5");
        assert_eq!(percent_decode("%E7%A8%8E"), "税");
    }

    #[test]
    fn log_paths_show_patterns_or_a_short_prefix_of_route_words() {
        let get = Method::GET;
        let route_label = |method: &Method, path: &str| routes::lookup(method, path).label();
        let shown_path = |method: &Method, path: &str| shown_path(route_label(method, path), path);
        assert_eq!(
            shown_path(
                &Method::POST,
                "/v1/maintenance/staff/resident_id%3A210102199001015035/reset-password"
            ),
            "/v1/maintenance/staff/{person}/reset-password"
        );
        assert_eq!(
            shown_path(&get, "/v1/maintenance/staff/qqqqqqqqqqqqqqqqqqqq"),
            "/v1/maintenance/staff/{person}"
        );
        for path in [
            "/v1/nope/resident_id%253A210102199001015035",
            "/v1/nope/ID210102199001015035",
            "/v1/nope/resident_id:２１０１０２１９９００１０１５０３５",
            "/v1/x/+8613800000003",
            "/v1/x/138-0000-0003",
            "/v1/nope/PASSPORT:E12345678",
        ] {
            let logged = shown_path(&get, path);
            assert!(logged.ends_with("/*"), "{logged}");
        }
        let long = format!("/{}", "q".repeat(65_000));
        let logged = shown_path(&get, &long);
        assert_eq!(logged.chars().count(), UNMATCHED_SHOWN + 1, "{logged}");
        assert_eq!(route_label(&get, &long), UNMATCHED);
        assert_eq!(
            shown_path(&Method::POST, "/v1/authorize/batch"),
            "/v1/authorize/batch"
        );
        assert_eq!(route_label(&get, "/v1/authorize"), "/v1/authorize");
        assert_eq!(shown_path(&get, "/healthz"), "/healthz");
    }
}
