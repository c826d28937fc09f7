//! The innermost service: dispatches a call to the module that owns it.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::Service;

use super::{Call, ListKind, Operation, Reply};
use crate::error::ToolError;
use crate::module::CompletionRef;
use crate::registry::Registry;

#[derive(Clone, Debug)]
pub struct Router {
    registry: Arc<Registry>,
}

impl Router {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl Service<Call> for Router {
    type Response = Reply;
    type Error = ToolError;
    type Future = BoxFuture<'static, Result<Reply, ToolError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ToolError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let registry = Arc::clone(&self.registry);
        Box::pin(async move { route(&registry, call).await })
    }
}

async fn route(r: &Registry, Call { cx, op }: Call) -> Result<Reply, ToolError> {
    match op {
        Operation::CallTool { name, args } => {
            let module = r.tool_module(&name).ok_or_else(|| ToolError::unknown_tool(&name))?;
            module.call(&cx, &name, args).await.map(Reply::Tool)
        }
        Operation::ReadResource { uri } => {
            let module = r.resource_module(&uri).ok_or_else(|| ToolError::unknown_resource(&uri))?;
            module.read(&cx, &uri).await.map(Reply::Resource)
        }
        Operation::Subscribe { uri } => {
            r.resource_module(&uri).ok_or_else(|| ToolError::unknown_resource(&uri))?;
            Ok(Reply::Done)
        }
        Operation::GetPrompt { name, args } => {
            let spec = r.prompt(&name).ok_or_else(|| ToolError::unknown_prompt(&name))?;
            if let Some(missing) = spec.arguments.iter().find(|a| a.required && !args.contains_key(&a.name)) {
                return Err(ToolError::InvalidRequest(format!(
                    "missing required argument `{}` for prompt `{name}`",
                    missing.name
                )));
            }
            let module = r.prompt_module(&name).ok_or_else(|| ToolError::unknown_prompt(&name))?;
            module.prompt(&cx, &name, &args).await.map(Reply::Prompt)
        }
        Operation::Complete { reference, argument, value, context } => {
            let module = match &reference {
                CompletionRef::Prompt(p) => r.prompt_module(p).ok_or_else(|| ToolError::unknown_prompt(p))?,
                CompletionRef::Resource(t) => r.template_module(t).ok_or_else(|| ToolError::unknown_resource(t))?,
            };
            module.complete(&cx, &reference, &argument, &value, &context).await.map(Reply::Completion)
        }
        Operation::List { kind, cursor } => {
            let c = cursor.as_deref();
            Ok(match kind {
                ListKind::Tools => Reply::Tools(r.page(r.tools(), c)?),
                ListKind::Resources => Reply::Resources(r.page(&r.all_resources(), c)?),
                ListKind::ResourceTemplates => Reply::ResourceTemplates(r.page(r.resource_templates(), c)?),
                ListKind::Prompts => Reply::Prompts(r.page(r.prompts(), c)?),
            })
        }
    }
}
