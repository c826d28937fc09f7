//! The evaluation context: who is asking, from where, when.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::FlagsError;
use super::model::{string, string_map};

/// What a flag is evaluated against, with Unleash's field names on the wire
/// (`userId`, `sessionId`, `remoteAddress`, `environment`, `appName`,
/// `currentTime`, `properties`).
///
/// Constraints and custom stickiness name a field by its Unleash name; a name
/// that is not one of the standard fields (or a standard field that is unset)
/// is looked up in `properties`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// `userId`: stickiness for rollouts and variants, `userWithId`.
    #[serde(default, deserialize_with = "string")]
    pub user_id: Option<String>,
    /// `sessionId`: stickiness when there is no user id.
    #[serde(default, deserialize_with = "string")]
    pub session_id: Option<String>,
    /// `remoteAddress`: an IPv4 or IPv6 address, for `remoteAddress` and
    /// `IN_CIDR`.
    #[serde(default, deserialize_with = "string")]
    pub remote_address: Option<String>,
    /// `environment`.
    #[serde(default, deserialize_with = "string")]
    pub environment: Option<String>,
    /// `appName`.
    #[serde(default, deserialize_with = "string")]
    pub app_name: Option<String>,
    /// `currentTime` in RFC 3339 (`2024-05-01T12:00:00Z`); when unset, date
    /// constraints use the clock.
    #[serde(default, deserialize_with = "string")]
    pub current_time: Option<String>,
    /// Any other field, e.g. `tenant` or `version`.
    #[serde(default, deserialize_with = "string_map")]
    pub properties: BTreeMap<String, String>,
}

impl Context {
    /// Reads a context from Unleash's JSON form; `null` properties are absent.
    ///
    /// # Errors
    /// [`FlagsError::Json`] when the text is not a JSON object of that shape.
    pub fn from_json(text: &str) -> Result<Self, FlagsError> {
        serde_json::from_str(text).map_err(|e| FlagsError::json("context", &e))
    }

    /// The value of the field Unleash calls `name`.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        let standard = match name {
            "userId" => &self.user_id,
            "sessionId" => &self.session_id,
            "remoteAddress" => &self.remote_address,
            "environment" => &self.environment,
            "appName" => &self.app_name,
            "currentTime" => &self.current_time,
            _ => &None,
        };
        standard.as_deref().or_else(|| self.properties.get(name).map(String::as_str))
    }

    /// The field as a stickiness value: empty text counts as absent, as in the
    /// SDKs.
    pub(crate) fn sticky(&self, name: &str) -> Option<&str> {
        self.field(name).filter(|v| !v.is_empty())
    }
}
