//! remote-assist-operator: manages external vendors' access to Dynamics 365 Remote Assist
//! (Entra ID accounts, licences, groups and information barriers) from Kubernetes resources.

pub mod crd;
pub mod graph;
