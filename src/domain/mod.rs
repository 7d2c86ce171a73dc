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

/// The longest entity id a question may name, in bytes: three times the
/// longest a stored identity can have (a permission identity's: credit
/// code, `/`, 64 characters), so nothing stored is out of reach. Longer
/// ids — the body limit allows 64 KiB — are refused where a question is
/// read (`http::authorize`, `decision::context`) instead of being carried
/// through the decision, its caches and its record: a few thousand such
/// questions grew the server by a gigabyte.
pub const MAX_ID_BYTES: usize = 256;

/// The most members an array of a question's context may have. The
/// vocabulary's largest set is a login step's factors (six kinds) or a
/// permission identity's other holders (the identity types): a few
/// thousand members were only ever a way to grow the decision log by the
/// body limit per question.
pub const MAX_CONTEXT_SET: usize = 64;

/// Why an entity id of `len` bytes names no identity, if it is longer
/// than [`MAX_ID_BYTES`], without the id. (A context's ids are strings of
/// its JSON, which `decision::context` bounds by the same length.)
pub fn id_too_long(len: usize) -> Option<String> {
    (len > MAX_ID_BYTES).then(|| {
        format!(
            "an entity id of {len} bytes; no identity has one over {MAX_ID_BYTES} \
             (the value is not repeated)"
        )
    })
}
