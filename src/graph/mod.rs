//! Microsoft Graph: credentials and tokens, typed errors, the tenant-wide request budget, and
//! the client with bounded retries, paging and `$batch`. Nothing here knows whether it talks to
//! Microsoft or to the simulated tenant; only the base URL and authority differ.

pub mod batcher;
pub mod body;
pub mod budget;
pub mod client;
pub mod credentials;
pub mod error;
pub mod transport;

pub use body::Body;
pub use budget::{Budget, BudgetConfig};
pub use client::{Answer, BatchRequest, GraphClient, RetryPolicy, odata_string};
pub use credentials::{AppIdentity, Credential, Secret, TokenProvider};
pub use error::GraphError;

/// The resource (and scope prefix) of Microsoft Graph.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
