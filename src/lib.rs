//! remote-assist-operator: manages vendor access to Dynamics 365 Remote Assist from Kubernetes.

pub mod barriers;
pub mod commands;
pub mod compliance;
pub mod config;
pub mod context;
pub mod controllers;
pub mod crd;
pub mod directory;
pub mod doctor;
pub mod error;
pub mod graph;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod server;
pub mod watch;
