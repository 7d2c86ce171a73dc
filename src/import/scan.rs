//! Reading an import document a section at a time, a record at a time.
//!
//! A first, cheap pass ([`Layout::scan`]) walks the top-level object byte by
//! byte and notes where each section's array starts and ends, without
//! decoding any record. Each later pass seeks to one section and streams its
//! records through serde_json over a `BufReader`. So memory does not grow
//! with the file, and sections are visited in the order the importer needs
//! (functions before the permission identities that name them) whatever
//! their order in the file.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};

use super::document::Section;
use super::ImportError;

/// Where a section's value lies in the file: bytes `start..end`, and the
/// line and column (1-based, in bytes) of its first byte, so that errors
/// inside it name the position in the whole file.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    start: u64,
    end: u64,
    line: usize,
    column: usize,
}

/// The sections present in a document.
#[derive(Debug, Default)]
pub struct Layout {
    spans: Vec<(Section, Span)>,
}

/// A syntax error with its position in the whole file.
fn syntax(message: impl std::fmt::Display, line: usize, column: usize) -> ImportError {
    ImportError::Syntax(format!("{message} at line {line} column {column}"))
}

/// A byte cursor over the file that knows its line and column.
struct Cursor<R> {
    inner: BufReader<R>,
    pos: u64,
    line: usize,
    column: usize,
}

impl<R: Read> Cursor<R> {
    fn peek(&mut self) -> Result<Option<u8>, ImportError> {
        let buf = self.inner.fill_buf().map_err(ImportError::read)?;
        Ok(buf.first().copied())
    }

    fn bump(&mut self) -> Result<Option<u8>, ImportError> {
        let b = self.peek()?;
        if let Some(b) = b {
            self.inner.consume(1);
            self.advance(b);
        }
        Ok(b)
    }

    fn advance(&mut self, b: u8) {
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
            self.column = 0;
        } else {
            self.column += 1;
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> ImportError {
        syntax(message, self.line, self.column)
    }

    fn skip_ws(&mut self) -> Result<Option<u8>, ImportError> {
        while let Some(b) = self.peek()? {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Ok(Some(b));
            }
            self.bump()?;
        }
        Ok(None)
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<(), ImportError> {
        match self.skip_ws()? {
            Some(b) if b == want => {
                self.bump()?;
                Ok(())
            }
            Some(_) => {
                self.bump()?;
                Err(self.error(format!("expected {what}")))
            }
            None => Err(self.error("EOF while parsing an object")),
        }
    }

    /// A string's raw bytes (escapes kept), the opening quote already read.
    fn string(&mut self) -> Result<Vec<u8>, ImportError> {
        let mut out = Vec::new();
        let mut escaped = false;
        loop {
            let b = self
                .bump()?
                .ok_or_else(|| self.error("EOF while parsing a string"))?;
            match b {
                b'"' if !escaped => return Ok(out),
                b'\\' if !escaped => escaped = true,
                _ => escaped = false,
            }
            out.push(b);
        }
    }

    /// Skips one JSON value without decoding it: strings and nesting are
    /// tracked only far enough to find where it ends. serde_json checks it
    /// properly when the section is read.
    fn skip_value(&mut self) -> Result<(), ImportError> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let buf = self.inner.fill_buf().map_err(ImportError::read)?;
            if buf.is_empty() {
                return Err(self.error("EOF while parsing a value"));
            }
            let mut used = 0;
            let mut done = false;
            for &b in buf {
                used += 1;
                if in_string {
                    match b {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => in_string = false,
                        _ => {}
                    }
                } else {
                    match b {
                        b'"' => in_string = true,
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
                if depth == 0 && !in_string {
                    done = true;
                    break;
                }
            }
            let (lines, last_nl) = count_lines(&buf[..used]);
            self.inner.consume(used);
            self.pos += used as u64;
            self.line += lines;
            self.column = match last_nl {
                Some(i) => used - i - 1,
                None => self.column + used,
            };
            if done {
                return Ok(());
            }
        }
    }

    /// Skips a scalar (number, `true`, `null`, …): up to the next delimiter.
    fn skip_scalar(&mut self) -> Result<(), ImportError> {
        while let Some(b) = self.peek()? {
            if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.bump()?;
        }
        Ok(())
    }
}

fn count_lines(bytes: &[u8]) -> (usize, Option<usize>) {
    let mut lines = 0;
    let mut last = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            lines += 1;
            last = Some(i);
        }
    }
    (lines, last)
}

impl Layout {
    /// Finds the sections of the document in `file`: the top level must be
    /// one object whose keys are section names, each at most once.
    pub fn scan<R: Read>(file: R) -> Result<Self, ImportError> {
        let mut c = Cursor {
            inner: BufReader::with_capacity(1 << 18, file),
            pos: 0,
            line: 1,
            column: 0,
        };
        match c.skip_ws()? {
            Some(b'{') => {
                c.bump()?;
            }
            Some(_) => {
                c.bump()?;
                return Err(c.error("expected an import document (a JSON object of sections)"));
            }
            None => return Err(c.error("EOF while parsing a value")),
        }
        let mut layout = Layout::default();
        if c.skip_ws()? == Some(b'}') {
            c.bump()?;
        } else {
            loop {
                layout.member(&mut c)?;
                match c.skip_ws()? {
                    Some(b',') => {
                        c.bump()?;
                    }
                    Some(b'}') => {
                        c.bump()?;
                        break;
                    }
                    Some(_) => {
                        c.bump()?;
                        return Err(c.error("expected `,` or `}`"));
                    }
                    None => return Err(c.error("EOF while parsing an object")),
                }
            }
        }
        if c.skip_ws()?.is_some() {
            c.bump()?;
            return Err(c.error("trailing characters"));
        }
        Ok(layout)
    }

    /// One `"name": value` of the top-level object.
    fn member<R: Read>(&mut self, c: &mut Cursor<R>) -> Result<(), ImportError> {
        c.expect(b'"', "a section name")?;
        let raw = c.string()?;
        let name = String::from_utf8_lossy(&raw);
        let Some(section) = Section::from_name(&name) else {
            let known: Vec<String> = Section::ALL
                .iter()
                .map(|s| format!("`{}`", s.name()))
                .collect();
            return Err(c.error(format!(
                "unknown field `{name}`, expected one of {}",
                known.join(", ")
            )));
        };
        if self.spans.iter().any(|(s, _)| *s == section) {
            return Err(c.error(format!("duplicate field `{name}`")));
        }
        c.expect(b':', "`:`")?;
        let first = c
            .skip_ws()?
            .ok_or_else(|| c.error("EOF while parsing a value"))?;
        let (start, line, column) = (c.pos, c.line, c.column + 1);
        if matches!(first, b'[' | b'{' | b'"') {
            c.skip_value()?;
        } else {
            c.skip_scalar()?;
        }
        let span = Span {
            start,
            end: c.pos,
            line,
            column,
        };
        self.spans.push((section, span));
        Ok(())
    }

    pub fn span(&self, section: Section) -> Option<Span> {
        self.spans
            .iter()
            .find(|(s, _)| *s == section)
            .map(|(_, span)| *span)
    }
}

/// Reads the records of one section from `file` and hands each, with its
/// index, to `each`; stops at the first error `each` returns. A section
/// the document does not have has no records.
pub fn each_record<R, T, F>(
    file: &mut R,
    layout: &Layout,
    section: Section,
    mut each: F,
) -> Result<(), ImportError>
where
    R: Read + Seek,
    T: DeserializeOwned,
    F: FnMut(usize, T) -> Result<(), ImportError>,
{
    let Some(span) = layout.span(section) else {
        return Ok(());
    };
    file.seek(SeekFrom::Start(span.start))
        .map_err(ImportError::read)?;
    let reader = BufReader::with_capacity(1 << 18, file.take(span.end - span.start));
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut stopped = None;
    let seed = EachSeed {
        each: &mut each,
        stopped: &mut stopped,
        _t: PhantomData,
    };
    let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
    match (stopped, parsed) {
        (Some(e), _) => Err(e),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(relocate(&e, span)),
    }
}

/// serde_json's error, its position moved from the section to the file.
fn relocate(e: &serde_json::Error, span: Span) -> ImportError {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    if e.line() == 0 {
        return ImportError::Syntax(message.to_owned());
    }
    let line = span.line + e.line() - 1;
    let column = if e.line() == 1 {
        span.column - 1 + e.column()
    } else {
        e.column()
    };
    syntax(message, line, column)
}

struct EachSeed<'a, T, F> {
    each: &'a mut F,
    stopped: &'a mut Option<ImportError>,
    _t: PhantomData<T>,
}

impl<'de, T, F> DeserializeSeed<'de> for EachSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(usize, T) -> Result<(), ImportError>,
{
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T, F> Visitor<'de> for EachSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(usize, T) -> Result<(), ImportError>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(record) = seq.next_element::<T>()? {
            if let Err(e) = (self.each)(i, record) {
                *self.stopped = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor as Bytes;

    fn names(text: &str) -> Result<Vec<&'static str>, String> {
        Layout::scan(text.as_bytes())
            .map(|l| l.spans.iter().map(|(s, _)| s.name()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn finds_sections_in_any_order_and_refuses_strangers() {
        assert_eq!(
            names(r#"{ "staff": [{"a": "]"}], "functions":[] }"#).unwrap(),
            ["staff", "functions"]
        );
        assert_eq!(names("{}").unwrap(), Vec::<&str>::new());
        assert!(names(r#"{"nmae": []}"#)
            .unwrap_err()
            .contains("unknown field `nmae`"));
        assert!(names(r#"{"staff": [], "staff": []}"#)
            .unwrap_err()
            .contains("duplicate field `staff`"));
        assert!(names(r#"{"staff": [1, 2"#).unwrap_err().contains("EOF"));
        assert!(names("[]").unwrap_err().contains("JSON object"));
    }

    #[test]
    fn a_record_error_names_its_line_and_column_in_the_file() {
        let text = "{\n  \"functions\": [\n    {\"code\": \"a\", \"nmae\": \"x\"}\n  ]\n}";
        let layout = Layout::scan(text.as_bytes()).unwrap();
        let mut file = Bytes::new(text.as_bytes());
        let err = each_record::<_, super::super::document::FunctionIn, _>(
            &mut file,
            &layout,
            Section::Functions,
            |_, _| Ok(()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `nmae`"), "{err}");
        assert!(err.contains("at line 3 column"), "{err}");
    }
}
