//! Which policies a reload added, removed or changed, by id: what
//! `/v1/status` and the reload log line say, so an operator sees what went
//! live without diffing the files.

use std::collections::BTreeMap;

use super::PolicySnapshot;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PolicyChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same id, different text (a change of layout or comments counts:
    /// the policy's text is what is archived and shown).
    pub changed: Vec<String>,
}

impl PolicyChanges {
    /// From `old` to `new`, each list sorted.
    pub fn between(old: &PolicySnapshot, new: &PolicySnapshot) -> Self {
        let texts = |s: &PolicySnapshot| -> BTreeMap<String, String> {
            s.policies()
                .policies()
                .map(|p| (p.id().to_string(), p.to_string()))
                .collect()
        };
        let (old, new) = (texts(old), texts(new));
        let mut c = Self::default();
        for (id, text) in &new {
            match old.get(id) {
                None => c.added.push(id.clone()),
                Some(before) if before != text => c.changed.push(id.clone()),
                Some(_) => {}
            }
        }
        c.removed = old
            .keys()
            .filter(|id| !new.contains_key(*id))
            .cloned()
            .collect();
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(policies: &str) -> PolicySnapshot {
        PolicySnapshot::from_sources(
            "s",
            "entity U; action a appliesTo { principal: U, resource: U };",
            &[("p.cedar".into(), policies.into())],
        )
        .unwrap()
    }

    #[test]
    fn added_removed_and_changed_are_told_apart() {
        let old = snap(
            r#"@id("keep") permit(principal, action, resource);
                          @id("edit") permit(principal, action, resource);
                          @id("gone") permit(principal, action, resource);"#,
        );
        let new = snap(
            r#"@id("keep") permit(principal, action, resource);
                          @id("edit") permit(principal, action, resource) when { false };
                          @id("new") permit(principal, action, resource);"#,
        );
        let c = PolicyChanges::between(&old, &new);
        assert_eq!(c.added, ["new"]);
        assert_eq!(c.removed, ["gone"]);
        assert_eq!(c.changed, ["edit"]);
        assert!(PolicyChanges::between(&new, &new).is_empty());
    }
}
