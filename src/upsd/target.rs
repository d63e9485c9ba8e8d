//! Where a UPS is: `UPS@HOST[:PORT]` (see [`crate::nut::target`], where NUT's files and the
//! client share it).

pub use crate::nut::target::Target;
