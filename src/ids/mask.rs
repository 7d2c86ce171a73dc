//! Masking: the one rule by which ID numbers, phones and names appear in
//! logs, decision records, HTTP answers and CLI output, for typed keys and
//! free text alike.

use super::IdType;

/// Masks an ID number: the one rule every log line, decision record, HTTP
/// answer and CLI output follows, so one person's number always reads the
/// same and records can be matched by it. By length, which is what the
/// number's type decides:
///
/// - 15 or more characters — resident IDs (18, or 15 for the first
///   generation), foreign permanent resident IDs (18), long permits: the
///   first four and last four kept, as the bureau prints them
///   (`2101**********1234`);
/// - 9 to 14 — passports (`E12345678`), Hong Kong/Macao and Taiwan permits:
///   the first two and last two kept (`E1*****78`), so at least half is
///   hidden;
/// - 8 or fewer: all hidden.
///
/// Kept characters are upper-cased (a resident ID's check character `x` is
/// `X`, as [`PersonKey`] stores it), and a masked number masks to itself,
/// so masking text twice changes nothing.
pub fn mask_id_number(n: &str) -> String {
    let len = n.chars().count();
    let kept = match len {
        15.. => 4,
        9..=14 => 2,
        _ => 0,
    };
    // One allocation: this runs on every decision's log record.
    let mut out = String::with_capacity(n.len());
    for (i, c) in n.chars().enumerate() {
        out.push(if i < kept || i >= len - kept {
            c.to_ascii_uppercase()
        } else {
            '*'
        });
    }
    out
}

/// Masks every ID number and phone number inside free text (entity ids,
/// Cedar error messages, audit queries) exactly as [`mask_id_number`] and
/// [`Phone::masked`] mask them, whatever surrounds them:
///
/// - the number after an ID-type prefix (`resident_id:…`, `passport:…`);
/// - any run of 18 digits (or 17 and `X`), 15, or 19 and more — glued to
///   letters or not (`a210102…`, `ID210102…`): a number is a person's
///   whatever is typed next to it;
/// - a resident ID number written in groups, `210102-19800312-4011` or with
///   spaces, masked as the one mask `2101**********4011`;
/// - an 11-digit mobile number (`138****5678`), also with `+86`/`86`/`0086`
///   before it and spaces or hyphens between its groups (`+86-138-****-5678`).
///
/// Full-width digits (`２１０１…`, U+FF10–U+FF19) and `Ｘ` are read as their
/// ASCII forms first, so the text comes back with ASCII digits. One
/// exception keeps hashes readable: in a token of exactly 32 or 64 lower-case
/// hex digits (a pseudonym, a policy version, a chain hash), a digit run
/// shorter than an ID number (a phone-like run) is left whole.
/// Already-masked text comes back unchanged.
pub fn mask_text(text: &str) -> String {
    mask_changed(text).unwrap_or_else(|| text.to_owned())
}

/// [`mask_text`], or `None` when it would give `text` back unchanged: a
/// record's fields are masked in place, and most hold no number to mask.
pub fn mask_changed(text: &str) -> Option<String> {
    // Every full-width digit or X starts with the byte 0xEF in UTF-8: a
    // byte search first spares decoding every record's text char by char.
    if text.as_bytes().contains(&0xEF) && text.contains(|c| full_width_ascii(c).is_some()) {
        let normalized = text
            .chars()
            .map(|c| full_width_ascii(c).unwrap_or(c))
            .collect::<String>();
        return Some(mask_ascii(&normalized).unwrap_or(normalized));
    }
    mask_ascii(text)
}

/// [`mask_changed`] of text whose digits are ASCII.
fn mask_ascii(text: &str) -> Option<String> {
    // Byte-wise, copying unmasked stretches whole: this runs on every
    // decision's log record. Every position sliced at is an ASCII byte, so
    // always a char boundary.
    let bytes = text.as_bytes();
    // Made at the first number masked.
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // An ID-type prefix: mask the alphanumeric run that follows it. A
        // `*` belongs to the run, so a number masked before is taken whole
        // and masks to itself (not its four kept leading characters alone).
        let may_start_code =
            CODE_STARTS[bytes[i] as usize] && !(i > 0 && bytes[i - 1].is_ascii_alphanumeric());
        let code = may_start_code
            .then(|| {
                IdType::ALL_CODES.iter().find(|c| {
                    bytes[i..].starts_with(c.as_bytes()) && bytes.get(i + c.len()) == Some(&b':')
                })
            })
            .flatten();
        if let Some(code) = code {
            let start = i + code.len() + 1;
            let (end, masked) = match grouped_id(bytes, start) {
                Some((end, number)) => (end, mask_id_number(&number)),
                None => {
                    let end = run_end(bytes, start, |b| b.is_ascii_alphanumeric() || b == b'*');
                    (end, mask_id_number(&text[start..end]))
                }
            };
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..start]);
            out.push_str(&masked);
            copied = end;
            i = end;
            continue;
        }
        let starts_number = !(i > 0 && bytes[i - 1].is_ascii_digit());
        if starts_number && (bytes[i].is_ascii_digit() || bytes[i] == b'+') {
            if let Some((end, masked)) = number_at(bytes, i) {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                out.push_str(&text[copied..i]);
                out.push_str(&masked);
                copied = end;
                i = end;
                continue;
            }
            // Not a number to mask: past its digits, never into them.
            i = run_end(bytes, i + 1, |b| b.is_ascii_digit());
            continue;
        }
        i += 1;
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    // A number already masked masks to itself.
    (out != text).then_some(out)
}

/// The first bytes of the ID-type codes: at any other byte no code starts,
/// and the codes are not tried there.
const CODE_STARTS: [bool; 256] = {
    let mut starts = [false; 256];
    let mut i = 0;
    while i < IdType::ALL_CODES.len() {
        starts[IdType::ALL_CODES[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    starts
};

/// The ASCII digit or `X` of a full-width one (`２` → `2`, `Ｘ` → `X`).
fn full_width_ascii(c: char) -> Option<char> {
    match c {
        '\u{FF10}'..='\u{FF19}' => char::from_digit(c as u32 - 0xFF10, 10),
        '\u{FF38}' | '\u{FF58}' => Some('X'),
        _ => None,
    }
}

/// The ID number or phone starting at `i` (the first digit of a run, or a
/// `+`), if any: where it ends and its mask.
fn number_at(bytes: &[u8], i: usize) -> Option<(usize, String)> {
    if let Some((end, number)) = grouped_id(bytes, i) {
        return Some((end, mask_id_number(&number)));
    }
    if let Some(found) = phone_at(bytes, i) {
        return Some(found);
    }
    let end = run_end(bytes, i, |b| b.is_ascii_digit());
    let run = std::str::from_utf8(&bytes[i..end]).ok()?;
    let (end, masked) = match run.len() {
        17 if matches!(bytes.get(end), Some(b'X' | b'x')) => {
            (end + 1, mask_id_number(&format!("{run}X")))
        }
        15 | 18 | 19.. => (end, mask_id_number(run)),
        11 if run.starts_with('1') => (end, mask_phone(run)),
        _ => return None,
    };
    (!in_hash(bytes, i, end)).then_some((end, masked))
}

/// A resident ID number written in groups, `210102-19800312-4011` (or with
/// spaces), at `i`: where it ends and its 18 characters.
fn grouped_id(bytes: &[u8], i: usize) -> Option<(usize, String)> {
    let digits = |from: usize, n: usize| {
        bytes
            .get(from..from + n)?
            .iter()
            .all(u8::is_ascii_digit)
            .then_some(from + n)
    };
    let sep = |at: usize| matches!(bytes.get(at), Some(b'-' | b' ')).then_some(at + 1);
    let j = sep(digits(i, 6)?)?;
    let j = sep(digits(j, 8)?)?;
    let j = digits(j, 3)?;
    let end = match bytes.get(j) {
        Some(b'0'..=b'9' | b'X' | b'x') => j + 1,
        _ => return None,
    };
    if bytes.get(end).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let number: String = bytes[i..end]
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|&b| b.to_ascii_uppercase() as char)
        .collect();
    Some((end, number))
}

/// A mobile number at `i` written with a country code (`+86`, `0086`,
/// `86`) or separators between its 3-4-4 groups (`138 0000 0001`,
/// `+86-138-0000-0001`): where it ends and its mask, the middle four
/// digits hidden and everything else kept. A bare 11-digit run is left to
/// the run rule of [`number_at`].
fn phone_at(bytes: &[u8], i: usize) -> Option<(usize, String)> {
    let digits = |from: usize, n: usize| {
        bytes
            .get(from..from + n)?
            .iter()
            .all(u8::is_ascii_digit)
            .then_some(from + n)
    };
    let skip_sep = |at: usize| match bytes.get(at) {
        Some(b'-' | b' ') => (at + 1, true),
        _ => (at, false),
    };
    for prefix in [&b"+86"[..], b"0086", b"86", b""] {
        if !bytes[i..].starts_with(prefix) {
            continue;
        }
        let (start, sep0) = if prefix.is_empty() {
            (i, false)
        } else {
            skip_sep(i + prefix.len())
        };
        let Some(a) = digits(start, 3) else { continue };
        let (b, sep1) = skip_sep(a);
        let Some(middle_end) = digits(b, 4) else {
            continue;
        };
        let (c, sep2) = skip_sep(middle_end);
        let Some(end) = digits(c, 4) else { continue };
        let plain = prefix.is_empty() && !sep0 && !sep1 && !sep2;
        let mobile = bytes[start] == b'1' && (b'3'..=b'9').contains(&bytes[start + 1]);
        if plain || !mobile || bytes.get(end).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let mut masked = String::from_utf8_lossy(&bytes[i..b]).into_owned();
        masked.push_str("****");
        masked.push_str(&String::from_utf8_lossy(&bytes[middle_end..end]));
        return Some((end, masked));
    }
    None
}

/// Whether `start..end` lies in a token of exactly 32 or 64 lower-case hex
/// digits: a pseudonym, policy version or hash. Only a run shorter than an
/// ID number, in a token with at least one letter, is spared: a caller can
/// write an ID inside a hex-looking token (the second red-team round did),
/// while a hash has 15 digits in a row only rarely, and then loses a few of
/// them to the mask in free text (its own fields are never masked).
fn in_hash(bytes: &[u8], start: usize, end: usize) -> bool {
    // `*` counts as part of the token, so a token whose long run a first
    // pass masked is still one the second pass spares: masking twice
    // changes nothing.
    let part = |b: u8| b.is_ascii_alphanumeric() || b == b'*';
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b) || *b == b'*';
    let from = bytes[..start]
        .iter()
        .rposition(|b| !part(*b))
        .map_or(0, |p| p + 1);
    let to = run_end(bytes, end, part);
    end - start < 15
        && matches!(to - from, 32 | 64)
        && bytes[from..to].iter().all(hex)
        && bytes[from..to].iter().any(u8::is_ascii_lowercase)
}

/// A mainland mobile number (11 ASCII digits) with its middle four hidden:
/// the first three (the carrier) and last four kept, `138****5678`.
pub(super) fn mask_phone(digits: &str) -> String {
    format!("{}****{}", &digits[..3], &digits[7..])
}

/// The end of the run of bytes from `start` that `keep` accepts.
fn run_end(bytes: &[u8], start: usize, keep: impl Fn(u8) -> bool) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| !keep(b))
        .map_or(bytes.len(), |n| start + n)
}

/// Masks a person's name as the bureau shows it in staff lists: all but the
/// last character hidden (`*三`, `**明`).
pub fn mask_name(name: &str) -> String {
    let count = name.chars().count();
    match name.chars().last() {
        Some(last) if count > 1 => format!("{}{last}", "*".repeat(count - 1)),
        _ => "*".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PersonKey, Phone, RESIDENT_ID_CHECK, RESIDENT_ID_WEIGHTS};

    #[test]
    fn text_mask_hides_id_numbers_and_phones() {
        let t = r#"entity `Etax::Staff::"91210102MA0TAX001F/resident_id:210102199001015035"` and passport:E12345678, call 13812345678 or 210102199001015035"#;
        let m = mask_text(t);
        assert!(!m.contains("210102199001015035"), "{m}");
        assert!(!m.contains("E12345678"), "{m}");
        assert!(!m.contains("13812345678"), "{m}");
        assert!(
            m.contains("91210102MA0TAX001F/resident_id:2101**********5035"),
            "{m}"
        );
        assert!(m.contains("138****5678"), "{m}");
        // Credit codes and other numbers stay readable.
        assert_eq!(
            mask_text("order 12345 of 91210102MA0TAX001F"),
            "order 12345 of 91210102MA0TAX001F"
        );
    }

    #[test]
    fn text_mask_catches_the_red_team_forms() {
        for (text, masked) in [
            (
                "resident_id:２１０１０２１９８００３１２４０１１",
                "resident_id:2101**********4011",
            ),
            ("a210102198003124011", "a2101**********4011"),
            ("ID210102198003124011", "ID2101**********4011"),
            (
                "13800000001x210102198003124011",
                "138****0001x2101**********4011",
            ),
            (
                "resident_id:210102-19800312-4011",
                "resident_id:2101**********4011",
            ),
            ("210102 19800312 4011", "2101**********4011"),
            ("２１０１０２１９９２１１１１４０４Ｘ", "2101**********404X"),
            ("8613800000001", "86138****0001"),
            ("008613800000001", "0086138****0001"),
            ("138 0000 0001", "138 **** 0001"),
            ("+86-138-0000-0001", "+86-138-****-0001"),
            ("+86 13800000001", "+86 138****0001"),
            ("tel:+8613800000001;", "tel:+86138****0001;"),
            ("6222020200112233445566", "6222**************5566"),
        ] {
            assert_eq!(mask_text(text), masked, "{text}");
            assert_eq!(mask_text(masked), masked, "{masked}");
        }
        // Hashes and pseudonyms stay whole;
        // short numbers, dates and millisecond times stay readable.
        let version = "6a966f50c03bba5a2a41ad11bdaeb118365f2cf7f8497c25e005bba31493e9ac";
        assert_eq!(mask_text(version), version);
        let pseudonym = "3f1ace48239ce75ac11ede0c4cb57ea4";
        assert_eq!(mask_text(pseudonym), pseudonym);
        // But an ID written inside a hex-looking token is masked (second
        // red-team round), and 32 digits are no hash.
        assert_eq!(
            mask_text("abcdefab210102198003124011abcdef"),
            "abcdefab2101**********4011abcdef"
        );
        assert!(!mask_text("21010219800312401112345678901234").contains("198003124011"));
        for kept in [
            "2026-11-27 19:13",
            "1795807093972",
            "order 12345",
            "20261127",
        ] {
            assert_eq!(mask_text(kept), kept);
        }
    }

    /// A valid resident ID number from 17 digits: the check character
    /// appended, lower-case `x` when `lower` (as users type it).
    fn resident_id(digits: &[u32], lower: bool) -> String {
        let sum: u32 = digits
            .iter()
            .zip(RESIDENT_ID_WEIGHTS)
            .map(|(d, w)| d * w)
            .sum();
        let check = RESIDENT_ID_CHECK[(sum % 11) as usize] as char;
        let check = if lower {
            check.to_ascii_lowercase()
        } else {
            check
        };
        digits
            .iter()
            .map(|d| char::from_digit(*d, 10).unwrap())
            .chain([check])
            .collect()
    }

    /// Text around an ID number, never a letter or digit next to it.
    const BEFORE: &[&str] = &[
        "",
        "Staff::\"91210102MA0TAX001F/",
        "no person ",
        "证件号码 ",
        "`",
        "[\"",
    ];
    const AFTER: &[&str] = &[
        "",
        "\"",
        " is not real-name collected",
        "，已锁定",
        "`",
        "/x",
    ];

    proptest::proptest! {
        /// Whatever the text around it, prefixed or bare, an ID number in
        /// free text masks exactly as the typed key masks it.
        #[test]
        fn text_mask_is_the_typed_mask(
            digits in proptest::collection::vec(0u32..10, 17),
            lower in proptest::bool::ANY,
            other in "[A-Z0-9]{5,20}",
            other_type in proptest::sample::select(&IdType::ALL_CODES[1..]),
            before in proptest::sample::select(BEFORE),
            after in proptest::sample::select(AFTER),
        ) {
            let number = resident_id(&digits, lower);
            let key = PersonKey::new(IdType::ResidentId, &number).unwrap();
            let typed = key.masked();
            let bare_mask = mask_id_number(key.id_number());
            proptest::prop_assert_eq!(&typed, &format!("resident_id:{bare_mask}"));
            for (text, mask) in [
                (format!("{before}{}{after}", key.key()), format!("{before}{typed}{after}")),
                (format!("{before}resident_id:{number}{after}"), format!("{before}{typed}{after}")),
                (format!("{before}{number}{after}"), format!("{before}{bare_mask}{after}")),
            ] {
                proptest::prop_assert_eq!(mask_text(&text), mask.clone());
                // Masked text masks to itself: a record's reason or an
                // error message masked twice still shows the one mask.
                proptest::prop_assert_eq!(mask_text(&mask), mask);
            }
            let other = PersonKey::new(IdType::parse(other_type).unwrap(), &other).unwrap();
            let text = format!("{before}{}{after}", other.key());
            proptest::prop_assert_eq!(mask_text(&text), format!("{before}{}{after}", other.masked()));
            proptest::prop_assert!(!mask_text(&text).contains(other.id_number()));
        }

        #[test]
        fn masking_twice_changes_nothing(
            text in "((resident_id:|passport:|[0-9]{11}|[0-9]{17}[0-9Xx]|1[0-9]{10}|[0-9A-Za-z]{1,4}|[ /:\"`*]|张|伟|::))*"
        ) {
            let once = mask_text(&text);
            proptest::prop_assert_eq!(mask_text(&once), once.clone());
            // What a record's fields are masked in place by says "no
            // change" exactly when there is none.
            proptest::prop_assert_eq!(mask_changed(&once), None);
            match mask_changed(&text) {
                Some(masked) => proptest::prop_assert_ne!(masked, text),
                None => proptest::prop_assert_eq!(once, text),
            }
        }
    }

    proptest::proptest! {
        /// However an ID number is written — glued to letters, in groups,
        /// in full-width digits — free text shows only its one mask.
        #[test]
        fn every_written_form_of_an_id_masks_to_the_one_mask(
            digits in proptest::collection::vec(0u32..10, 17),
            lower in proptest::bool::ANY,
            before in "[A-Za-z]{0,3}",
            after in "[A-Za-z]{0,3}",
            sep in proptest::sample::select(&["-", " "][..]),
            form in 0usize..3,
        ) {
            let number = resident_id(&digits, lower);
            let mask = mask_id_number(&number);
            let written = match form {
                0 => number.clone(),
                1 => format!("{}{sep}{}{sep}{}", &number[..6], &number[6..14], &number[14..]),
                _ => number
                    .chars()
                    .map(|c| c.to_digit(10).map_or(c, |d| char::from_u32(0xFF10 + d).unwrap()))
                    .collect(),
            };
            let text = format!("{before}{written}{after}");
            let once = mask_text(&text);
            proptest::prop_assert_eq!(&once, &format!("{before}{mask}{after}"));
            proptest::prop_assert_eq!(mask_text(&once), once);
        }

        /// A mobile number with or without country code and separators:
        /// its middle four digits hidden, the rest as written.
        #[test]
        fn every_written_form_of_a_phone_is_masked(
            second in 3u32..10,
            rest in proptest::collection::vec(0u32..10, 9),
            prefix in proptest::sample::select(&["", "+86", "86", "0086", "+86-", "+86 "][..]),
            sep in proptest::sample::select(&["", "-", " "][..]),
        ) {
            let d: String = [1, second].iter().chain(&rest).map(|d| char::from_digit(*d, 10).unwrap()).collect();
            let written = format!("{prefix}{}{sep}{}{sep}{}", &d[..3], &d[3..7], &d[7..]);
            let once = mask_text(&format!("call {written}."));
            proptest::prop_assert_eq!(&once, &format!("call {prefix}{}{sep}****{sep}{}.", &d[..3], &d[7..]));
            proptest::prop_assert_eq!(mask_text(&once), once);
        }
    }

    #[test]
    fn mask_rule_by_length() {
        assert_eq!(mask_id_number("210102198003124011"), "2101**********4011");
        assert_eq!(mask_id_number("210102800312401"), "2101*******2401");
        assert_eq!(mask_id_number("E12345678"), "E1*****78");
        assert_eq!(mask_id_number("H1234567890"), "H1*******90");
        assert_eq!(mask_id_number("12345678"), "********");
        assert_eq!(mask_id_number("11010519491231002x"), "1101**********002X");
        // The masks of the issue (#11 item 4): one form, prefixed or not.
        let masked = mask_text("resident_id:210301199001010048");
        assert_eq!(masked, "resident_id:2103**********0048");
        assert_eq!(mask_text(&masked), masked);
        assert_eq!(mask_text("210301199001010048"), "2103**********0048");
        assert_eq!(
            mask_text("13800000001"),
            Phone::parse("13800000001").unwrap().masked()
        );
    }

    #[test]
    fn name_mask() {
        assert_eq!(mask_name("张三"), "*三");
        assert_eq!(mask_name("欧阳小明"), "***明");
    }
}
