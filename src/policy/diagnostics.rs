//! Policy and schema problems as `file:line:col: message`, from Cedar's own
//! diagnostics (miette labels carry byte offsets into the source).

use std::fmt;

use miette::Diagnostic as MietteDiagnostic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a policy or schema file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {sev}: ", self.file, self.line, self.col)?;
        if let Some(id) = &self.policy_id {
            write!(f, "[{id}] ")?;
        }
        f.write_str(&self.message)
    }
}

impl Diagnostic {
    /// A diagnostic at byte `offset` of `source` (the text of `file`).
    pub fn at_offset(
        file: &str,
        source: &str,
        offset: usize,
        severity: Severity,
        policy_id: Option<String>,
        message: String,
    ) -> Self {
        let (line, col) = line_col(source, offset);
        Self {
            file: file.to_owned(),
            line,
            col,
            severity,
            policy_id,
            message,
        }
    }

    /// From a Cedar error whose labels point into `source`: the message with
    /// its help and label texts, at the first label.
    pub fn from_cedar(
        file: &str,
        source: &str,
        err: &dyn MietteDiagnostic,
        severity: Severity,
        policy_id: Option<String>,
    ) -> Self {
        let mut message = err.to_string();
        let mut offset = 0;
        if let Some(labels) = err.labels() {
            for (i, label) in labels.enumerate() {
                if i == 0 {
                    offset = label.offset();
                }
                if let Some(text) = label.label() {
                    message.push_str(&format!(" ({text})"));
                }
            }
        }
        if let Some(help) = err.help() {
            message.push_str(&format!("; help: {help}"));
        }
        Self::at_offset(file, source, offset, severity, policy_id, message)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 3), (2, 1));
        assert_eq!(line_col(src, 7), (2, 4));
        assert_eq!(line_col(src, 8), (3, 1));
    }
}
