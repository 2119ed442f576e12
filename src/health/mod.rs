//! Load and health → answer, delay or drop. Plain Rust with no nginx
//! symbols: the glue gathers raw inputs (files, probe responses, upstream
//! peers) and the shared-memory table; everything that decides lives here.

pub mod address_slot;
pub mod chart;
pub mod history;
pub mod html;
pub mod policy;
pub mod rrl;
pub mod settings;
pub mod shared;
pub mod sources;
pub mod state;
pub mod status;
