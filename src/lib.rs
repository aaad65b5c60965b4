//! remote-assist-operator: manages vendor access to Dynamics 365 Remote Assist from Kubernetes.

pub mod commands;
pub mod compliance;
pub mod config;
pub mod context;
pub mod crd;
pub mod directory;
pub mod graph;
pub mod leader;
pub mod license;
pub mod run;
pub mod segment;
pub mod server;
pub mod telemetry;
pub mod vendor;
pub mod watch;
