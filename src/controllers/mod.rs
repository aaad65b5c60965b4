//! The three reconcilers, one folder each with the same files: `observe` (reads), `plan`
//! (pure decisions), `act` (writes) and `status`, dispatched from the folder's `mod.rs`.

pub mod barrier_segment;
pub mod pacer;
pub mod reconcile;
pub mod refusal;
pub mod remote_assist_license;
pub mod vendor_tenant;
