//! The schema's actions against the ones the code names
//! ([`crate::domain::Action`]). A policy set the code cannot use whole —
//! an action it asks about that the schema lacks would make every such
//! question a request error, and an action it never asks about is a rule
//! nobody can reach — is refused at load (server start, reload, `check`),
//! not discovered at run time.
//!
//! Only a schema of the bureau's namespace (`Etax`) is held to it: the
//! loader also serves the authoring tools' small example schemas.

use std::collections::BTreeSet;

use cedar_policy::Schema;

use super::diagnostics::{Diagnostic, Severity};
use crate::domain::{Action, EntityKind, NAMESPACE};

/// A diagnostic for every action the code names and `schema` does not
/// declare, and every action `schema` declares that the code does not name.
pub(super) fn check(schema_file: &str, schema_src: &str, schema: &Schema) -> Vec<Diagnostic> {
    let bureau = schema.entity_types().any(|t| t.namespace() == NAMESPACE)
        || schema
            .actions()
            .any(|a| a.type_name().namespace() == NAMESPACE);
    if !bureau {
        return Vec::new();
    }
    let declared: BTreeSet<String> = schema
        .actions()
        .filter(|a| EntityKind::of(a) == Some(EntityKind::Action))
        .map(|a| a.id().unescaped().to_owned())
        .collect();
    let named: BTreeSet<String> = Action::ALL.iter().map(|a| a.to_string()).collect();
    let problem = |offset: usize, message: String| {
        Diagnostic::at_offset(
            schema_file,
            schema_src,
            offset,
            Severity::Error,
            None,
            message,
        )
    };
    let missing = named.difference(&declared).map(|name| {
        problem(
            0,
            format!("the code asks about action `{name}` (domain::Action), but the schema does not declare it"),
        )
    });
    let unnamed = declared.difference(&named).map(|name| {
        problem(
            schema_src.find(name.as_str()).unwrap_or(0),
            format!("the schema declares action `{name}`, which the code never names: add it to domain::Action or remove it"),
        )
    });
    missing.chain(unnamed).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{LoadError, PolicySnapshot};
    use crate::decision::fixture::root;

    fn load_with_schema(schema: &str) -> Result<PolicySnapshot, LoadError> {
        let sources = super::super::Sources::read(
            &root().join("policies"),
            &root().join("schemas/etax.cedarschema"),
        )
        .unwrap();
        PolicySnapshot::from_sources("etax.cedarschema", schema, &sources.policy_files)
    }

    fn bundled_schema() -> String {
        std::fs::read_to_string(root().join("schemas/etax.cedarschema")).unwrap()
    }

    fn messages(result: Result<PolicySnapshot, LoadError>) -> Vec<String> {
        match result {
            Err(LoadError::Invalid(d)) => d.into_iter().map(|d| d.message).collect(),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("loaded"),
        }
    }

    #[test]
    fn the_bundled_schema_declares_exactly_the_named_actions() {
        load_with_schema(&bundled_schema()).unwrap();
    }

    #[test]
    fn a_schema_missing_a_named_action_does_not_load() {
        // Its policies fail validation too; the vocabulary diagnostic is
        // the one that says the code still asks about it.
        let schema = bundled_schema();
        let start = schema.find("  action recoverPassword").unwrap();
        let end = start + schema[start..].find("};").unwrap() + 2;
        let without = format!("{}{}", &schema[..start], &schema[end..]);
        assert!(!without.contains("recoverPassword"));
        let messages = messages(load_with_schema(&without));
        assert!(
            messages
                .iter()
                .any(|m| m.contains("`recoverPassword`") && m.contains("does not declare")),
            "{messages:?}"
        );
    }

    #[test]
    fn a_schema_action_the_code_never_names_does_not_load() {
        let schema = bundled_schema();
        let close = schema.rfind('}').unwrap();
        let extra = format!(
            "{}  action fileAppeal;\n{}",
            &schema[..close],
            &schema[close..]
        );
        let messages = messages(load_with_schema(&extra));
        assert!(
            messages
                .iter()
                .any(|m| m.contains("`fileAppeal`") && m.contains("never names")),
            "{messages:?}"
        );
    }
}
