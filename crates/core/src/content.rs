//! What tools, resources and prompts return, independent of any wire format.

use serde_json::Value;

/// Who speaks a prompt or sampling message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One piece of content in a tool result, prompt or sampling message.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    /// Base64 data with its MIME type.
    Image {
        data: String,
        mime_type: String,
    },
    /// Base64 data with its MIME type.
    Audio {
        data: String,
        mime_type: String,
    },
    /// An embedded resource.
    Resource(ResourceContent),
    /// A link the client may read with `resources/read`.
    ResourceLink {
        uri: String,
        name: String,
        description: Option<String>,
        mime_type: Option<String>,
    },
}

impl Content {
    pub fn text(t: impl Into<String>) -> Self {
        Content::Text(t.into())
    }

    /// The text of a text content, if it is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Content::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// The contents of one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceContent {
    Text {
        uri: String,
        mime_type: Option<String>,
        text: String,
    },
    /// `blob` is base64.
    Blob {
        uri: String,
        mime_type: Option<String>,
        blob: String,
    },
}

impl ResourceContent {
    pub fn uri(&self) -> &str {
        match self {
            ResourceContent::Text { uri, .. } | ResourceContent::Blob { uri, .. } => uri,
        }
    }
}

/// The answer to `resources/read`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceContents {
    pub contents: Vec<ResourceContent>,
}

impl ResourceContents {
    pub fn text(uri: impl Into<String>, mime_type: Option<&str>, text: impl Into<String>) -> Self {
        Self {
            contents: vec![ResourceContent::Text {
                uri: uri.into(),
                mime_type: mime_type.map(str::to_owned),
                text: text.into(),
            }],
        }
    }
}

/// The answer to a tool call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolOutput {
    pub content: Vec<Content>,
    /// Structured result matching the tool's output schema.
    pub structured: Option<Value>,
    /// The tool ran but reports a failure to the model.
    pub is_error: bool,
    /// `content[0]` is the compact JSON text of `structured` (set by
    /// [`ToolOutput::structured`] and [`ToolOutput::rendered`]). An edge
    /// that sends both may copy that text as the structured content instead
    /// of serializing the value a second time: for an answer of 60 KB that
    /// is a tenth of the call's work. Code that changes `structured` or the
    /// first block afterwards must clear it.
    pub text_is_structured: bool,
}

impl ToolOutput {
    pub fn text(t: impl Into<String>) -> Self {
        Self { content: vec![Content::text(t)], ..Self::default() }
    }

    pub fn contents(content: Vec<Content>) -> Self {
        Self { content, ..Self::default() }
    }

    /// Structured content with its JSON text rendering, as the spec recommends
    /// for clients that do not read `structuredContent`.
    pub fn structured(value: Value) -> Self {
        // `to_string` goes through `Display` and the formatter machinery;
        // this writes straight into a byte buffer.
        let text = serde_json::to_string(&value).unwrap_or_else(|_| value.to_string());
        Self { content: vec![Content::Text(text)], structured: Some(value), is_error: false, text_is_structured: true }
    }

    /// Structured content whose JSON text the tool wrote itself (from parts
    /// it had already serialized). `text` must be a JSON document equal to
    /// `value` (key order may differ).
    pub fn rendered(value: Value, text: String) -> Self {
        debug_assert!(
            serde_json::from_str::<Value>(&text).is_ok_and(|v| v == value),
            "rendered text differs from value"
        );
        Self { content: vec![Content::Text(text)], structured: Some(value), is_error: false, text_is_structured: true }
    }

    /// The JSON text of the structured content, when the first block is it.
    pub fn structured_text(&self) -> Option<&str> {
        match (self.text_is_structured, self.structured.is_some(), self.content.first()) {
            (true, true, Some(Content::Text(t))) => Some(t),
            _ => None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self { content: vec![Content::text(message)], is_error: true, ..Self::default() }
    }
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptMessage {
    pub role: Role,
    pub content: Content,
}

impl PromptMessage {
    pub fn user(content: Content) -> Self {
        Self { role: Role::User, content }
    }

    pub fn assistant(content: Content) -> Self {
        Self { role: Role::Assistant, content }
    }
}

/// The answer to `prompts/get`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptResult {
    pub description: Option<String>,
    pub messages: Vec<PromptMessage>,
}
