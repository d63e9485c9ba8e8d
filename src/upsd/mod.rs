//! Talking to upsd: the protocol (sans I/O), its errors, and the tokio client at the edge.

pub mod client;
pub mod command;
pub mod diagnose;
pub mod error;
pub mod proto;
pub mod target;
pub mod tls;
