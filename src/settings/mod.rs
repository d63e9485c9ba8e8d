//! Power Snitch's own settings: the model, its stored form, the crash-safe file, and the sync
//! with NUT's files.

pub mod fingerprint;
pub mod frame;
pub mod model;
pub mod store;
pub mod stored;
pub mod sync;
