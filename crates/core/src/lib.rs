//! plexus-core: the module API and the call pipeline.
//!
//! This crate is the bottom of the house. It defines what a module is
//! ([`module::Module`], typed tools in [`module::Toolbox`]), what a call carries
//! ([`context::CallContext`]), the one error type ([`error::ToolError`]) with its
//! transport-neutral [`error::ErrorCode`], and the pipeline layers every call
//! passes ([`pipeline`]). Trust logic (audit hash chain, policy) lives here
//! behind ports ([`ports`]); adapters live in `plexus-store` and the server.
//!
//! Architecture invariant: nothing here knows rmcp, axum, HTTP, JSON-RPC or a
//! SQL driver. Types are not `Serialize` unless they are a deliberate wire or
//! storage format (the audit record is one).

pub mod access;
pub mod audit;
pub mod bus;
pub mod content;
pub mod context;
pub mod durability;
pub mod error;
pub mod http;
pub mod jwt;
pub mod module;
pub mod pipeline;
pub mod policy;
pub mod ports;
pub mod ratelimit;
pub mod registry;
pub mod spec;
pub mod telemetry;
pub mod uri_template;

pub use content::{Content, PromptMessage, PromptResult, ResourceContents, Role, ToolOutput};
pub use context::{CallContext, Credential, Era, Principal, TenantId};
pub use error::{ErrorCode, ToolError};
pub use module::{Module, ToolDef, Toolbox};
pub use spec::{PromptArgument, PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolAnnotations, ToolSpec};
