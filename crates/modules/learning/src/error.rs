//! The error type of the learning service, and how it reaches a caller.

use plexus_core::ToolError;
use plexus_store::StoreError;

use crate::xapi::XapiError;

/// Why a learning operation was refused or failed. Messages are
/// lowercase, without a trailing period, and safe to show: a refusal says
/// what to change; a storage failure says no more than that.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LearningError {
    /// An argument or an imported file that cannot be used; the message
    /// names the field or the position.
    #[error("{0}")]
    Invalid(String),
    /// No such learner, assessment, item or course in the caller's tenant
    /// (or one the caller may not see: the same words).
    #[error("{0}")]
    NotFound(String),
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant is at a limit of its tier; the message names the limit.
    #[error("{0}")]
    Quota(String),
    /// The state does not allow this now: an item answered twice, an
    /// assessment that has ended, a concurrent change.
    #[error("{0}")]
    Conflict(String),
    /// A statement refused by the learning record store.
    #[error(transparent)]
    Xapi(XapiError),
    /// The database failed.
    #[error("storage error")]
    Store(#[source] StoreError),
    /// A stored value could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl From<StoreError> for LearningError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<sqlx::Error> for LearningError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

impl From<XapiError> for LearningError {
    fn from(e: XapiError) -> Self {
        match e {
            XapiError::Store(s) => Self::Store(s),
            XapiError::Forbidden(m) => Self::Quota(m),
            XapiError::Conflict(m) | XapiError::Overtaken(m) => Self::Conflict(m),
            other => Self::Xapi(other),
        }
    }
}

impl From<LearningError> for ToolError {
    fn from(e: LearningError) -> Self {
        match e {
            LearningError::Invalid(m) => ToolError::InvalidArguments(m),
            LearningError::NotFound(m) | LearningError::Forbidden(m) | LearningError::Quota(m) => ToolError::Failed(m),
            LearningError::Conflict(m) => ToolError::Conflict(m),
            LearningError::Xapi(x) => match x {
                XapiError::Invalid { .. } => ToolError::InvalidArguments(x.to_string()),
                XapiError::NotFound(m) | XapiError::Forbidden(m) => ToolError::Failed(m),
                XapiError::Conflict(m) | XapiError::Overtaken(m) => ToolError::Conflict(m),
                other => unavailable(other),
            },
            LearningError::Store(s) => unavailable(s),
            LearningError::Corrupt(m) => ToolError::internal(format!("corrupt learning data: {m}")),
        }
    }
}

/// A storage failure as the caller sees it; the cause is logged.
fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ToolError {
    tracing::warn!(error = %e, "learning store failed");
    ToolError::Unavailable { message: "the learning store is unavailable".into(), source: Some(Box::new(e)) }
}
