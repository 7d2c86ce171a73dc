//! The bureau's Cedar vocabulary, named once: the actions ([`Action`]) and
//! entity types ([`EntityKind`]) the code asks about, the key of a staff
//! member ([`StaffKey`]), the kinds of session principal ([`PrincipalKind`])
//! and the verified credentials policies read ([`Factor`]). Each gives
//! today's exact strings, so the schema, the policies and stored records
//! read as before; a name the code uses and the schema lacks is a load
//! error (see [`crate::policy`]), not a deny at run time.

mod names;
mod principal;
mod staff_key;

pub(crate) use names::qualified_type;
pub use names::{uid_text, Action, EntityKind, UnknownName};
pub use principal::{Factor, PrincipalKind};
pub use staff_key::{StaffKey, StaffKeyError};

/// The Cedar namespace of the bureau's model.
pub const NAMESPACE: &str = "Etax";
