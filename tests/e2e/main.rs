//! End to end: the operator binary against the local API server and a simulated tenant, one
//! module per area. The harness (`env`, with the shared helpers of `tests/common`) is part of
//! this binary, so every helper it has is one some test here uses.

mod clock;
#[path = "../common/cluster.rs"]
mod cluster;
mod env;
mod fixtures;
#[path = "../common/kubectl.rs"]
mod kubectl;
#[path = "../common/namespace.rs"]
mod namespace;
#[path = "../common/repo.rs"]
mod repo;
mod tenant;

mod attack_barriers;
mod attack_endpoint;
mod attack_licenses;
mod attack_segments;
mod barriers;
mod campaigns;
mod chart;
mod delegated;
mod directory_role;
mod hostile;
mod lifecycle;
mod modes;
mod monitoring;
mod operations;
mod plan_audit;
mod plan_equals_act;
mod policies;
mod prerequisites;
mod resilience;
mod secrets;
