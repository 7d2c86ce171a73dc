//! [`Action`] and [`EntityKind`]: Cedar names as enums, each with its
//! parsed `EntityUid` / `EntityTypeName` made once (parsing runs Cedar's
//! parser, and a decision names a few dozen entities).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};

use super::NAMESPACE;

/// A string that names no variant of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// An enum of Cedar names: `ALL`, `as_str`, `Display`, `FromStr`.
macro_rules! cedar_names {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order (`self as usize` indexes it).
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The name as the schema and policies spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(UnknownName { what: $what, name: s.to_owned() }),
                }
            }
        }
    };
}

cedar_names! {
    /// The actions of the schema, every one (groups included): policy load
    /// checks that the schema declares exactly these.
    Action, "action" {
        /// Group of every login action.
        Login => "login",
        EnterpriseAccountLogin => "enterpriseAccountLogin",
        LoginSocialSecurityOnly => "loginSocialSecurityOnly",
        LoginNormal => "loginNormal",
        LoginQuick => "loginQuick",
        LoginNaturalPerson => "loginNaturalPerson",
        AgencyAccountLogin => "agencyAccountLogin",
        LoginAgentStaff => "loginAgentStaff",
        ActForClient => "actForClient",
        SetOwnPassword => "setOwnPassword",
        RecoverPassword => "recoverPassword",
        /// Group of the maintenance actions that change staff or grants.
        MaintainStaff => "maintainStaff",
        ViewStaff => "viewStaff",
        AddStaff => "addStaff",
        RemoveStaff => "removeStaff",
        DefinePermissionIdentity => "definePermissionIdentity",
        EditStaff => "editStaff",
        ResetStaffPassword => "resetStaffPassword",
        RecognizeAgency => "recognizeAgency",
        CancelAgency => "cancelAgency",
        UseFunction => "useFunction",
    }
}

cedar_names! {
    /// The entity types of the model (`Etax::<kind>`), `Action` included.
    EntityKind, "entity type" {
        Action => "Action",
        Agency => "Agency",
        AgentStaff => "AgentStaff",
        Enterprise => "Enterprise",
        Function => "Function",
        IdentityType => "IdentityType",
        PayerCategory => "PayerCategory",
        PermissionIdentity => "PermissionIdentity",
        Person => "Person",
        Staff => "Staff",
    }
}

static TYPE_NAMES: LazyLock<Vec<EntityTypeName>> = LazyLock::new(|| {
    EntityKind::ALL
        .iter()
        .map(|k| qualified_type(k.as_str()))
        .collect()
});

static ACTION_UIDS: LazyLock<Vec<EntityUid>> = LazyLock::new(|| {
    Action::ALL
        .iter()
        .map(|a| EntityKind::Action.uid(a.as_str()))
        .collect()
});

/// `Etax::<ty>`; any name the caller makes up parses or it is a bug.
pub(crate) fn qualified_type(ty: &str) -> EntityTypeName {
    EntityTypeName::from_str(&format!("{NAMESPACE}::{ty}")).expect("entity type names parse")
}

impl EntityKind {
    /// `Etax::<kind>`.
    pub fn type_name(self) -> &'static EntityTypeName {
        &TYPE_NAMES[self as usize]
    }

    /// `Etax::<kind>::"<id>"`.
    pub fn uid(self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.type_name().clone(), EntityId::new(id))
    }

    /// The kind of a uid of the bureau's namespace.
    pub fn of(uid: &EntityUid) -> Option<Self> {
        let ty = uid.type_name();
        // Compared component by component: `namespace()` joins them into a
        // new String, and this runs several times a question.
        let mut namespace = ty.namespace_components();
        if namespace.next() != Some(NAMESPACE) || namespace.next().is_some() {
            return None;
        }
        ty.basename().parse().ok()
    }

    /// Stored, but with no attributes and no parents (`entity Function;`
    /// in the schema): an entity of this kind tells a decision nothing but
    /// that the store holds it, and `in` reads only the left side's
    /// ancestors, so a request's entities need not hold it as a resource
    /// (`decision::Engine`). `tests/slices.rs` holds the schema to this.
    pub fn is_bare(self) -> bool {
        matches!(self, Self::Function)
    }

    /// Actions and enum entities: the schema defines them, the store holds
    /// none of them.
    pub fn is_schema_defined(self) -> bool {
        matches!(
            self,
            Self::Action | Self::IdentityType | Self::PayerCategory
        )
    }
}

impl Action {
    /// `Etax::Action::"<name>"`.
    pub fn uid(self) -> EntityUid {
        ACTION_UIDS[self as usize].clone()
    }

    /// The action a uid names, if it is one of the bureau's.
    pub fn of(uid: &EntityUid) -> Option<Self> {
        (EntityKind::of(uid) == Some(EntityKind::Action))
            .then(|| uid.id().unescaped().parse().ok())
            .flatten()
    }
}

/// `uid` as Cedar displays it (`Etax::Staff::"…"`), for the record of
/// every decision. Cedar's formatter writes the type name segment by
/// segment and escapes the id character by character through `fmt`:
/// three uids a question cost 5 % of a batch's instructions
/// (BENCHMARKS.md, session 9). The bureau's ids are plain ASCII, which
/// needs no escaping; anything else is left to Cedar.
pub fn uid_text(uid: &EntityUid) -> String {
    let id = uid.id().unescaped();
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/:_-.".contains(&b);
    match EntityKind::of(uid) {
        Some(kind) if id.bytes().all(plain) => {
            let kind = kind.as_str();
            let mut text = String::with_capacity(NAMESPACE.len() + kind.len() + id.len() + 6);
            for part in [NAMESPACE, "::", kind, "::\"", id, "\""] {
                text.push_str(part);
            }
            text
        }
        _ => uid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bureau_namespace_names_a_kind() {
        let kind = |ty: &str| EntityKind::of(&format!(r#"{ty}::"x""#).parse().unwrap());
        assert_eq!(kind("Etax::Staff"), Some(EntityKind::Staff));
        assert_eq!(kind("Etax::Function"), Some(EntityKind::Function));
        for foreign in [
            "Staff",
            "Other::Staff",
            "Etax::Etax::Staff",
            "Other::Etax::Staff",
            "Etax::Nope",
        ] {
            assert_eq!(kind(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn uid_text_is_what_cedar_displays() {
        let ids = [
            "91210102MA0TAX001F/resident_id:210102199001015035",
            "vat_filing",
            "a-b.c",
            "",
            "quote\"d",
            "back\\slash",
            "new\nline\ttab",
            "张三",
            "it's",
            "\u{7f}",
        ];
        for &kind in EntityKind::ALL {
            for id in ids {
                let uid = kind.uid(id);
                assert_eq!(uid_text(&uid), uid.to_string(), "{kind} {id:?}");
            }
        }
        let other_namespace = EntityUid::from_str(r#"Other::Staff::"x""#).unwrap();
        assert_eq!(uid_text(&other_namespace), other_namespace.to_string());
    }

    #[test]
    fn names_round_trip_and_uids_are_namespaced() {
        for &a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert_eq!(a.uid().to_string(), format!("Etax::Action::\"{a}\""));
            assert_eq!(Action::of(&a.uid()), Some(a));
        }
        for &k in EntityKind::ALL {
            assert_eq!(k.to_string().parse::<EntityKind>(), Ok(k));
            assert_eq!(EntityKind::of(&k.uid("x")), Some(k));
        }
        assert_eq!(Action::ALL.len(), 21);
        assert_eq!(
            EntityKind::Staff.uid("a/b").to_string(),
            "Etax::Staff::\"a/b\""
        );
        let err = "fly".parse::<Action>().unwrap_err();
        assert_eq!(err.to_string(), "unknown action `fly`");
        let other_namespace = EntityUid::from_str(r#"Other::Staff::"x""#).unwrap();
        assert_eq!(EntityKind::of(&other_namespace), None);
        assert_eq!(Action::of(&EntityKind::Staff.uid("useFunction")), None);
    }
}
