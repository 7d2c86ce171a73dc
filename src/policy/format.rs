//! `etax-authz fmt`: policy files in the layout Cedar's own formatter
//! (`cedar format`, the `cedar-policy-formatter` crate) produces, so every
//! author's diff shows only what changed in meaning.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy_formatter::{policies_str_to_pretty, Config};

use super::{Diagnostic, Severity};

/// Cedar's default layout: 80 columns, two-space indent.
pub fn format_policies(src: &str) -> Result<String, String> {
    let config = Config {
        line_width: 80,
        indent_width: 2,
    };
    policies_str_to_pretty(src, &config).map_err(|e| format!("{e:?}"))
}

/// Why a file cannot be formatted, as `file:line:col: error: message`
/// lines. The formatter's own error is a wrapped report whose positions are
/// bare byte offsets; Cedar's parser says the same at a place, so a text
/// that does not parse is reported by the parser, the way `check` reports.
pub fn format_errors(file: &str, src: &str, formatter_error: &str) -> Vec<String> {
    match cedar_policy::PolicySet::from_str(src) {
        Err(e) => vec![Diagnostic::from_cedar(file, src, &e, Severity::Error, None).to_string()],
        // Parses, yet the formatter refused: say so at the start of the file.
        Ok(_) => vec![Diagnostic::at_offset(
            file,
            src,
            0,
            Severity::Error,
            None,
            format!("cannot format: {formatter_error}"),
        )
        .to_string()],
    }
}

/// One file the formatter would change, or could not format.
#[derive(Debug)]
pub enum FileOutcome {
    Unchanged(PathBuf),
    /// Reformatted (or, with `check`, would be): the unified diff from the
    /// file as it is to the formatted text.
    Changed(PathBuf, String),
    /// `file:line:col: error: …` lines.
    Failed(PathBuf, Vec<String>),
}

/// Formats every file of `files`; writes them back unless `check`.
pub fn format_files(files: &[PathBuf], check: bool) -> Vec<FileOutcome> {
    files
        .iter()
        .map(|path| match format_file(path, check) {
            Ok(None) => FileOutcome::Unchanged(path.clone()),
            Ok(Some(diff)) => FileOutcome::Changed(path.clone(), diff),
            Err(e) => FileOutcome::Failed(path.clone(), e),
        })
        .collect()
}

/// The diff the formatting makes (`None`: already formatted).
fn format_file(path: &Path, check: bool) -> Result<Option<String>, Vec<String>> {
    let name = path.display().to_string();
    let src = super::read_regular(path).map_err(|e| vec![format!("{name}: cannot read: {e}")])?;
    let pretty = format_policies(&src).map_err(|e| format_errors(&name, &src, &e))?;
    if pretty == src {
        return Ok(None);
    }
    if !check {
        // Write beside and rename, so a reloading server never reads half a file.
        let tmp = path.with_extension("cedar.fmt-tmp");
        std::fs::write(&tmp, &pretty).map_err(|e| vec![format!("{name}: cannot write: {e}")])?;
        std::fs::rename(&tmp, path).map_err(|e| vec![format!("{name}: cannot replace: {e}")])?;
    }
    Ok(Some(super::diff::unified(&name, &src, &pretty)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_keeps_comments() {
        let src = "// why\n@id(\"a\")\npermit(principal,action,resource) when {   true };\n";
        let out = format_policies(src).unwrap();
        assert!(out.contains("// why"), "{out}");
        assert!(
            out.contains("permit (principal, action, resource)"),
            "{out}"
        );
        assert_eq!(
            format_policies(&out).unwrap(),
            out,
            "formatting is idempotent"
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_a_line_and_column() {
        let src = "@id(\"a\")\npermit(principal, action, resource);\n@id(\"b\")\npermit(principal,, action, resource);\n";
        let e = format_policies(src).unwrap_err();
        let lines = format_errors("p.cedar", src, &e);
        assert!(!lines.is_empty());
        assert!(lines[0].starts_with("p.cedar:4:"), "{lines:?}");
        assert!(!lines[0].contains("SourceOffset"), "{lines:?}");
    }
}
