//! The information-barrier model the controllers, `plan` and `audit` share (pure): the
//! tenant's IB mode and what it permits, and who can reach whom under a set of policies.

pub mod mode;
pub mod reach;

pub use mode::IbMode;
