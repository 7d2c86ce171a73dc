//! `etax-authz fmt`: policy files in the layout Cedar's own formatter
//! (`cedar format`, the `cedar-policy-formatter` crate) produces, so every
//! author's diff shows only what changed in meaning.

use std::path::{Path, PathBuf};

use cedar_policy_formatter::{policies_str_to_pretty, Config};

/// Cedar's default layout: 80 columns, two-space indent.
pub fn format_policies(src: &str) -> Result<String, String> {
    let config = Config {
        line_width: 80,
        indent_width: 2,
    };
    policies_str_to_pretty(src, &config).map_err(|e| format!("{e:?}"))
}

/// One file the formatter would change, or could not format.
#[derive(Debug)]
pub enum FileOutcome {
    Unchanged(PathBuf),
    /// Reformatted (or, with `check`, would be).
    Changed(PathBuf),
    Failed(PathBuf, String),
}

/// Formats every file of `files`; writes them back unless `check`.
pub fn format_files(files: &[PathBuf], check: bool) -> Vec<FileOutcome> {
    files
        .iter()
        .map(|path| match format_file(path, check) {
            Ok(true) => FileOutcome::Changed(path.clone()),
            Ok(false) => FileOutcome::Unchanged(path.clone()),
            Err(e) => FileOutcome::Failed(path.clone(), e),
        })
        .collect()
}

fn format_file(path: &Path, check: bool) -> Result<bool, String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let pretty = format_policies(&src)?;
    if pretty == src {
        return Ok(false);
    }
    if !check {
        // Write beside and rename, so a reloading server never reads half a file.
        let tmp = path.with_extension("cedar.fmt-tmp");
        std::fs::write(&tmp, &pretty).map_err(|e| format!("cannot write: {e}"))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace: {e}"))?;
    }
    Ok(true)
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
    fn syntax_errors_are_reported() {
        assert!(format_policies("permit(principal,").is_err());
    }
}
