//! Document names: relative `/`-separated paths inside the registry root.

use std::fmt;

use super::RegistryError;

/// Longest accepted name, in bytes.
const MAX_NAME_BYTES: usize = 1024;
/// Longest accepted path component, in bytes (the usual file-system limit).
const MAX_COMPONENT_BYTES: usize = 255;
/// The directory holding JSON Schemas.
pub(crate) const SCHEMAS_DIR: &str = "schemas";
/// The suffix of a schema document's name.
const SCHEMA_SUFFIX: &str = ".schema.json";

/// What a document is, decided by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// `.json`: parsed, validated against its schema when one exists.
    Json,
    /// `.yaml` or `.yml`: parsed into the JSON data model, validated like JSON.
    Yaml,
    /// `.md`: served as text.
    Markdown,
    /// `.csv`: served as text (generated reports and audit exports).
    Csv,
}

impl Format {
    /// The media type the document is served with.
    pub fn mime(&self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
            Format::Markdown => "text/markdown",
            Format::Csv => "text/csv",
        }
    }

    /// A short lowercase name: `json`, `yaml`, `markdown`, `csv`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
        }
    }

    /// Whether documents of this format are parsed into a JSON value.
    pub fn is_structured(&self) -> bool {
        matches!(self, Format::Json | Format::Yaml)
    }

    /// The format of a file extension (without the dot, lowercase only).
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "md" => Some(Format::Markdown),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a file name ends with one of the document extensions.
pub(crate) fn has_document_extension(file_name: &str) -> bool {
    file_name.rsplit_once('.').is_some_and(|(stem, ext)| !stem.is_empty() && Format::from_extension(ext).is_some())
}

/// A checked document name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DocName {
    full: String,
    format: Format,
    /// Byte index of the dot before the extension.
    dot: usize,
    /// Byte index of the last `/`, if any.
    slash: Option<usize>,
}

impl DocName {
    /// Check a name: relative, `/`-separated, no `..`, `.` or hidden
    /// components, no backslashes or control characters, a document extension.
    pub(crate) fn parse(name: &str) -> Result<DocName, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidName { name: name.to_owned(), reason };
        if name.is_empty() {
            return Err(invalid("the name is empty".into()));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(invalid(format!("the name is longer than {MAX_NAME_BYTES} bytes")));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(invalid(format!("the name contains the control character U+{:04X}", u32::from(c))));
        }
        if name.contains('\\') {
            return Err(invalid("backslashes are not allowed; separate directories with `/`".into()));
        }
        if name.starts_with('/') {
            return Err(invalid("absolute paths are not allowed; names are relative to the registry root".into()));
        }
        let components: Vec<&str> = name.split('/').collect();
        let last = components.len() - 1;
        for (i, component) in components.iter().enumerate() {
            match *component {
                "" => return Err(invalid("empty path component (`//` or a trailing `/`)".into())),
                ".." => return Err(invalid("`..` components are not allowed (path traversal)".into())),
                "." => return Err(invalid("`.` components are not allowed".into())),
                c if c.starts_with('.') => {
                    return Err(invalid(format!("hidden components are not allowed (`{c}` starts with `.`)")));
                }
                c if c.len() > MAX_COMPONENT_BYTES => {
                    return Err(invalid(format!("a path component is longer than {MAX_COMPONENT_BYTES} bytes")));
                }
                c if i < last && has_document_extension(c) => {
                    return Err(invalid(format!("directory `{c}` must not end with a document extension")));
                }
                _ => {}
            }
        }
        let slash = name.rfind('/');
        let file = &name[slash.map_or(0, |s| s + 1)..];
        // The stem before the dot is not empty: hidden names were refused.
        let Some((_, ext)) = file.rsplit_once('.') else {
            return Err(invalid("no extension; it must be one of .json, .yaml, .yml, .md, .csv".into()));
        };
        let Some(format) = Format::from_extension(ext) else {
            return Err(invalid(format!(
                "unsupported extension `.{ext}`; it must be one of .json, .yaml, .yml, .md, .csv (lowercase)"
            )));
        };
        let dot = name.len() - ext.len() - 1;
        Ok(DocName { full: name.to_owned(), format, dot, slash })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.full
    }

    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// The extension without the dot.
    pub(crate) fn ext(&self) -> &str {
        &self.full[self.dot + 1..]
    }

    /// The file name without the extension.
    pub(crate) fn stem(&self) -> &str {
        &self.full[self.slash.map_or(0, |s| s + 1)..self.dot]
    }

    /// The directory part, if any (`config` for `config/x.json`).
    pub(crate) fn dir(&self) -> Option<&str> {
        self.slash.map(|s| &self.full[..s])
    }

    /// Whether the document lives under `schemas/`.
    pub(crate) fn in_schemas_dir(&self) -> bool {
        self.full.strip_prefix(SCHEMAS_DIR).is_some_and(|rest| rest.starts_with('/'))
    }

    /// Whether the document is a JSON Schema (`schemas/**/<stem>.schema.json`).
    pub(crate) fn is_schema(&self) -> bool {
        // The file name cannot be `.schema.json` alone: hidden names are refused.
        self.in_schemas_dir() && self.full.ends_with(SCHEMA_SUFFIX)
    }

    /// For a schema document, the stem of the documents it governs
    /// (`interview-types` for `schemas/config/interview-types.schema.json`).
    pub(crate) fn governed_stem(&self) -> Option<&str> {
        if !self.is_schema() {
            return None;
        }
        let file = &self.full[self.slash.map_or(0, |s| s + 1)..];
        file.strip_suffix(SCHEMA_SUFFIX)
    }

    /// The schemas that may govern this document, most specific first:
    /// `schemas/<dir>/<stem>.schema.json`, then `schemas/<stem>.schema.json`.
    /// Empty for text documents and for documents under `schemas/`.
    pub(crate) fn schema_candidates(&self) -> Vec<String> {
        if !self.format.is_structured() || self.in_schemas_dir() {
            return Vec::new();
        }
        let stem = self.stem();
        let mut out = Vec::with_capacity(2);
        if let Some(dir) = self.dir() {
            out.push(format!("{SCHEMAS_DIR}/{dir}/{stem}{SCHEMA_SUFFIX}"));
        }
        out.push(format!("{SCHEMAS_DIR}/{stem}{SCHEMA_SUFFIX}"));
        out
    }
}

impl fmt::Display for DocName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}
