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
    /// `content[0]` is the compact JSON text of the structured content
    /// (set by [`ToolOutput::structured`] and [`ToolOutput::json_text`]).
    /// An edge that sends both may copy that text as the structured content
    /// instead of serializing the value a second time: for an answer of
    /// 60 KB that is a tenth of the call's work. With `structured` unset
    /// the text is the only form of the structured content (the tool wrote
    /// it from texts it already had, and no tree was built): read it with
    /// [`ToolOutput::structured_value`]. Code that changes `structured` or
    /// the first block afterwards must clear it.
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

    /// Structured content given only as its JSON text, which the tool
    /// wrote itself from parts it already had as text (stored documents):
    /// no value is built unless a reader asks for one
    /// ([`ToolOutput::structured_value`]). `text` must be one JSON object.
    pub fn json_text(text: String) -> Self {
        debug_assert!(
            serde_json::from_str::<serde_json::Map<String, Value>>(&text).is_ok(),
            "structured text is not a JSON object"
        );
        Self { content: vec![Content::Text(text)], structured: None, is_error: false, text_is_structured: true }
    }

    /// The JSON text of the structured content, when the first block is it.
    pub fn structured_text(&self) -> Option<&str> {
        match (self.text_is_structured, self.content.first()) {
            (true, Some(Content::Text(t))) => Some(t),
            _ => None,
        }
    }

    /// The structured content as a value, parsed from its text when the
    /// tool gave only that ([`ToolOutput::json_text`]).
    pub fn structured_value(&self) -> Option<std::borrow::Cow<'_, Value>> {
        match &self.structured {
            Some(v) => Some(std::borrow::Cow::Borrowed(v)),
            None => self.structured_text().and_then(|t| serde_json::from_str(t).ok()).map(std::borrow::Cow::Owned),
        }
    }

    /// [`ToolOutput::structured_value`], taking the output.
    pub fn into_structured(self) -> Option<Value> {
        match self.structured {
            Some(v) => Some(v),
            None => self.structured_text().and_then(|t| serde_json::from_str(t).ok()),
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
