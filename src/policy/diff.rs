//! A line-based unified diff (`fmt --check` shows what the formatter would
//! change). Policy files are a few hundred lines, so the plain
//! longest-common-subsequence table is small; no diff crate is in the
//! dependency set, and this is shorter than the reason to add one.

/// Lines of context around each change, as `diff -u` shows.
const CONTEXT: usize = 3;

/// `old` → `new` as a unified diff with `--- name` / `+++ name (formatted)`
/// headers; empty when they are equal.
pub fn unified(name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    if ops.iter().all(|op| matches!(op, Op::Same(..))) {
        return String::new();
    }
    let mut out = format!("--- {name}\n+++ {name} (formatted)\n");
    let mut i = 0;
    while let Some(first) = (i..ops.len()).find(|&k| !matches!(ops[k], Op::Same(..))) {
        let start = first.saturating_sub(CONTEXT);
        // A hunk runs until CONTEXT*2 unchanged lines separate it from the next change.
        let mut end = first;
        let mut same_run = 0;
        for (k, op) in ops.iter().enumerate().skip(first) {
            if matches!(op, Op::Same(..)) {
                same_run += 1;
                if same_run > CONTEXT * 2 {
                    break;
                }
            } else {
                same_run = 0;
                end = k;
            }
        }
        let stop = (end + CONTEXT + 1).min(ops.len());
        out.push_str(&hunk(&ops[start..stop]));
        i = stop;
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    /// Unchanged: the line, and its 1-based numbers in old and new.
    Same(&'a str, usize, usize),
    Del(&'a str, usize, usize),
    Add(&'a str, usize, usize),
}

fn hunk(ops: &[Op<'_>]) -> String {
    let (mut old_start, mut new_start, mut old_len, mut new_len) = (0, 0, 0, 0);
    let mut body = String::new();
    for op in ops {
        let (mark, line, o, n) = match *op {
            Op::Same(l, o, n) => (' ', l, o, n),
            Op::Del(l, o, n) => ('-', l, o, n),
            Op::Add(l, o, n) => ('+', l, o, n),
        };
        if old_start == 0 {
            (old_start, new_start) = (o, n);
        }
        old_len += usize::from(mark != '+');
        new_len += usize::from(mark != '-');
        body.push_str(&format!("{mark}{line}\n"));
    }
    format!("@@ -{old_start},{old_len} +{new_start},{new_len} @@\n{body}")
}

/// The edit script from a longest-common-subsequence table. Each op
/// carries the line numbers it sits at, so a hunk can name its start even
/// when it begins with an insertion.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::with_capacity(n + m));
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(a[i], i + 1, j + 1));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Deletions first, as `diff -u` shows a replaced line.
            ops.push(Op::Del(a[i], i + 1, j + 1));
            i += 1;
        } else {
            ops.push(Op::Add(b[j], i + 1, j + 1));
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("f", "a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn a_change_is_shown_with_context_and_line_numbers() {
        let old = "1\n2\n3\n4\nx\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\ny\n6\n7\n8\n9\n";
        assert_eq!(
            unified("p.cedar", old, new),
            "--- p.cedar\n+++ p.cedar (formatted)\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-x\n+y\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn distant_changes_are_separate_hunks() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=20)
            .map(|i| match i {
                2 => "two\n".to_owned(),
                19 => "nineteen\n".to_owned(),
                i => format!("{i}\n"),
            })
            .collect();
        let d = unified("f", &old, &new);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(
            d.contains("-2\n+two\n") && d.contains("-19\n+nineteen\n"),
            "{d}"
        );
    }
}
