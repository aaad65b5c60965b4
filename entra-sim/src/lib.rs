//! entra-sim: a simulated Entra ID tenant that speaks the wire protocol of Microsoft Graph v1.0
//! (a subset) and of the Microsoft identity platform token endpoint, for tests, demos and
//! benchmarks. It shares no code with the operator: it stands in for Microsoft.
//!
//! Routes: Graph under `/v1.0`, the token endpoint at `/{tenant}/oauth2/v2.0/token`, the
//! Security & Compliance `InvokeCommand` route for information barriers (see [`compliance`]),
//! and the admin API under `/_sim` (unauthenticated; bind it to loopback).

pub mod admin;
pub mod auth;
pub mod batch;
pub mod compliance;
pub mod directory;
pub mod groups;
pub mod journal;
pub mod licensing;
pub mod misbehave;
pub mod model;
pub mod odata;
mod pipeline;
pub mod request;
pub mod roles;
pub mod seed;
pub mod server;
pub mod state;
pub mod users;

pub use seed::Seed;
pub use server::{RunningSim, start};
pub use state::Sim;
