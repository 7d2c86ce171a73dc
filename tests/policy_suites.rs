//! The bundled policy suites pass and cover every bundled policy with an
//! allow and a deny case (what `etax-authz test --require-coverage` checks).

use etax_authz::decision::fixture::{bundled_policies, root};
use etax_authz::policy::testing::{run_files, suite_files};

#[test]
fn bundled_suites_pass_with_full_coverage() {
    let snap = bundled_policies();
    let files = suite_files(&root().join("policies/tests")).unwrap();
    assert!(!files.is_empty());
    let report = run_files(&snap, &files, None, |_| {});
    let failures: Vec<String> = report
        .cases
        .iter()
        .filter_map(|c| {
            c.failure
                .as_ref()
                .map(|f| format!("{} :: {}: {f}", c.suite, c.name))
        })
        .chain(report.errors.iter().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let gaps: Vec<String> = report
        .gaps()
        .map(|(id, _, gap)| format!("{id}: {gap}"))
        .collect();
    assert!(gaps.is_empty(), "{gaps:#?}");
}
