//! Power Snitch: keeps a UPS + Network UPS Tools setup on a small Linux appliance correct and
//! observable. See ARCHITECTURE.md for the map.

pub mod agent;
pub mod cli;
pub mod inspect;
pub mod json;
pub mod manage;
pub mod notify;
pub mod nut;
pub mod probe;
pub mod report;
pub mod settings;
pub mod state;
pub mod upsd;
#[cfg(feature = "web")]
pub mod web;
