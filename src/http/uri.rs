//! Percent-decoding of request paths and query strings, and the masked form
//! of a path that goes to the request log.

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

/// The path as the request log shows it: decoded until no escape is left
/// (so neither `resident_id%3A…` nor `%253A` hides an ID number from the
/// masking), then with every ID number and phone masked.
pub fn log_path(path: &str) -> String {
    let mut decoded = path.to_owned();
    // Each round that changes the text shortens it, so this ends.
    loop {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    crate::ids::mask_text(&decoded)
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
    fn log_paths_hide_encoded_id_numbers() {
        for path in [
            "/v1/maintenance/staff/resident_id%3A210102199001015035",
            "/v1/maintenance/staff/resident_id%253A210102199001015035",
            "/v1/maintenance/staff/%32%31%30%31%30%32%31%39%39%30%30%31%30%31%35%30%33%35",
        ] {
            let logged = log_path(path);
            assert!(!logged.contains("19900101"), "{logged}");
        }
    }
}
