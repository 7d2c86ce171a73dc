//! Percent-decoding of request paths and query strings, and the form of a
//! path that goes to the request log.

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

/// The path as the request log shows it: its route words, with every other
/// segment shown as `*`. A segment that is not a lowercase route word
/// (`staff`, `core-officers`) is an identifier someone sent — a person key,
/// a credit code, a token, or anything pasted into a 404 — and masking
/// cannot recognise every spelling of an ID number or phone (full-width
/// digits, separators, letters glued to it, escapes), so none is logged.
pub fn log_path(path: &str) -> String {
    path.split('/')
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
        .join("/")
}

#[cfg(test)]
mod tests {
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
    fn log_paths_keep_route_words_only() {
        assert_eq!(
            log_path("/v1/maintenance/staff/resident_id%3A210102199001015035/reset-password"),
            "/v1/maintenance/staff/*/reset-password"
        );
        assert_eq!(
            log_path("/v1/admin/enterprises/91210102MA0TAX001F/core-officers"),
            "/v1/admin/enterprises/*/core-officers"
        );
        for path in [
            "/v1/maintenance/staff/resident_id%253A210102199001015035",
            "/v1/maintenance/staff/ID210102199001015035",
            "/v1/maintenance/staff/resident_id:２１０１０２１９９００１０１５０３５",
            "/v1/x/+8613800000003",
            "/v1/x/138-0000-0003",
            "/v1/maintenance/staff/PASSPORT:E12345678",
        ] {
            let logged = log_path(path);
            assert!(logged.ends_with("/*"), "{logged}");
        }
        assert_eq!(log_path("/v1/authorize/batch"), "/v1/authorize/batch");
        assert_eq!(log_path("/healthz"), "/healthz");
    }
}
