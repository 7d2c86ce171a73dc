//! Which stored identities a set of policies can read beyond the request's
//! own principal and resource: what a question's entities must hold.
//!
//! Cedar reads an entity's data in four places only: its attributes
//! (`e.a`, `e has a`), its ancestors (`e in …`) and its tags (`e.getTag(…)`,
//! `e.hasTag(…)`). When in every policy Cedar evaluates for a question each
//! of those is taken of `principal` or `resource` itself (or an attribute
//! of `context`, which is a record the caller sent), no evaluation can
//! reach another entity's data, so the question needs only its roots: a
//! clerk's business question needs the clerk (with its ancestry) and not
//! its enterprise, person or their agencies, which the validator would
//! otherwise let a policy read (`super::MAX_DEREF_LEVEL`).
//!
//! Syntactic and conservative: anything else in that place — an attribute
//! of an attribute (`principal.person.realNameVerified`), an entity from
//! the context (`context.actingFor.recognizedAgencies`), a literal
//! (`Etax::Enterprise::"…".category`), `if … then … else`, a nested `has`
//! — makes the set read further, and its questions get every entity the
//! validator allows, as before. Leaving out an entity a policy reads would
//! not be caught by the fail-closed rule: `has` and `in` on an entity the
//! set lacks are false, not errors, so a `forbid` could be skipped.
//! `decision::tests` decides every question of the demo bureau both ways.

use cedar_policy::PolicySet;
use cedar_policy_core::ast::{self, BinaryOp, ExprKind, Var};

/// Whether evaluating `policies` reads no entity's data but the request's
/// principal's and resource's (see the module's doc).
pub fn only_roots(policies: &PolicySet) -> bool {
    policies.policies().all(|p| {
        let policy: &ast::Policy = p.as_ref();
        policy.condition().subexpressions().all(reads_only_roots)
    })
}

/// One expression (not its subexpressions): whether it reads an entity's
/// data other than the request's roots'.
fn reads_only_roots(e: &ast::Expr) -> bool {
    let is =
        |e: &ast::Expr, vars: &[Var]| matches!(e.expr_kind(), ExprKind::Var(v) if vars.contains(v));
    // `context` is a record: its attributes are what the caller sent.
    let attributes_of = [Var::Principal, Var::Resource, Var::Context];
    // `action in …` reads the action entity, which every set holds.
    let ancestors_of = [Var::Principal, Var::Resource, Var::Action];
    match e.expr_kind() {
        ExprKind::GetAttr { expr, .. } | ExprKind::HasAttr { expr, .. } => is(expr, &attributes_of),
        // `e has a.b` reads `e.a`'s data when `a` names an entity.
        ExprKind::ExtHasAttr { expr, attrs } => attrs.len() == 1 && is(expr, &attributes_of),
        ExprKind::BinaryApp {
            op: BinaryOp::In,
            arg1,
            ..
        } => is(arg1, &ancestors_of),
        ExprKind::BinaryApp {
            op: BinaryOp::GetTag | BinaryOp::HasTag,
            arg1,
            ..
        } => is(arg1, &[Var::Principal, Var::Resource]),
        ExprKind::Unknown(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(body: &str) -> PolicySet {
        format!("permit (principal, action, resource) {body};")
            .parse()
            .unwrap()
    }

    #[test]
    fn roots_own_attributes_ancestors_and_tags_read_only_roots() {
        for body in [
            "",
            "when { principal.passwordChangeRequired }",
            "when { principal has passwordChangeRequired && principal.passwordChangeRequired }",
            "when { principal in resource }",
            "when { resource in principal }",
            "when { action in Etax::Action::\"useFunction\" }",
            "when { principal.enterprise == Etax::Enterprise::\"x\" }",
            "when { principal.agency == context.actingFor }",
            "when { resource.recognizedAgencies.contains(principal.agency) }",
            "when { context.factors.contains(\"sms_otp\") }",
            "when { context has factors }",
            "when { principal is Etax::Staff }",
            "when { principal.hasTag(\"t\") && resource.getTag(\"t\") == 1 }",
            "when { principal.name like \"张*\" }",
        ] {
            assert!(only_roots(&set(body)), "{body}");
        }
    }

    #[test]
    fn anything_reaching_past_the_roots_reads_further() {
        for body in [
            "when { principal.person.realNameVerified }",
            "when { principal.person has realNameVerified }",
            "when { principal has person.realNameVerified }",
            "when { principal.enterprise in Etax::Agency::\"a\" }",
            "when { context.actingFor.recognizedAgencies.contains(principal.agency) }",
            "when { context.actingFor in principal }",
            "when { Etax::Enterprise::\"x\".category == \"c\" }",
            "when { Etax::Staff::\"s\" in resource }",
            "when { (if context.f then principal else resource).name == \"n\" }",
            "when { principal.enterprise.hasTag(\"t\") }",
            "when { principal.enterprise.getTag(\"t\") == 1 }",
        ] {
            assert!(!only_roots(&set(body)), "{body}");
        }
    }

    #[test]
    fn a_set_reads_further_when_any_policy_does() {
        let set: PolicySet = "permit (principal, action, resource) when { principal in resource };
             forbid (principal, action, resource) unless { principal.person.realNameVerified };"
            .parse()
            .unwrap();
        assert!(!only_roots(&set));
        assert!(only_roots(&PolicySet::new()));
    }
}
