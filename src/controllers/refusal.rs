//! Why a controller will not do (part of) what an object asks: the reason its condition and
//! Warning Event carry, and one sentence for people. One type for all three controllers.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// A refusal with `reason` (a registered condition reason, see `crd::reasons`).
pub fn refusal(reason: &'static str, message: String) -> Refusal {
    Refusal { reason, message }
}
