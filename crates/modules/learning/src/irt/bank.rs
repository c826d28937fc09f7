//! Item banks: validated items with fast lookup by id and by content area,
//! imported from CSV or JSON.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::{IrtError, Item};

/// A validated, immutable set of items with unique ids.
///
/// Besides the items it keeps what adaptive testing needs on every
/// selection: the parameters packed as `[a, b, c, d]`, the content areas
/// (distinct `skill` values in order of first appearance) and each area's
/// item indices, and a fingerprint of the whole bank that sessions use to
/// refuse a different bank.
#[derive(Debug, Clone)]
pub struct ItemBank {
    items: Vec<Item>,
    by_id: HashMap<String, usize>,
    areas: Vec<String>,
    area_of: Vec<u32>,
    area_items: Vec<Vec<u32>>,
    pub(crate) params: Vec<[f64; 4]>,
    /// An upper bound of each item's information over all θ (slightly inflated).
    pub(crate) max_info: Vec<f64>,
    /// All item indices by decreasing `max_info` (ties by index).
    pub(crate) order: Vec<u32>,
    /// Per content area, its item indices by decreasing `max_info`.
    pub(crate) area_order: Vec<Vec<u32>>,
    fingerprint: u64,
}

impl PartialEq for ItemBank {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

#[derive(Serialize)]
struct BankRef<'a> {
    items: &'a [Item],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BankOwned {
    items: Vec<Item>,
}

impl Serialize for ItemBank {
    /// As `{"items": [...]}`, the JSON import format.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BankRef { items: &self.items }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ItemBank {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let owned = BankOwned::deserialize(d)?;
        ItemBank::new(owned.items).map_err(serde::de::Error::custom)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl ItemBank {
    /// Validates every item and indexes the bank; errors name the item's
    /// 0-based position ([`IrtError::InvalidItem`], duplicates as `item 3`).
    pub fn new(items: Vec<Item>) -> Result<Self, IrtError> {
        Self::build(items, |i| format!("item {i}"), |i, e| IrtError::InvalidItem { index: i, source: Box::new(e) })
    }

    fn build(
        items: Vec<Item>,
        position: impl Fn(usize) -> String,
        wrap: impl Fn(usize, IrtError) -> IrtError,
    ) -> Result<Self, IrtError> {
        if items.is_empty() {
            return Err(IrtError::EmptyBank);
        }
        let mut by_id = HashMap::with_capacity(items.len());
        let mut areas: Vec<String> = Vec::new();
        let mut area_index: HashMap<&str, u32> = HashMap::new();
        let mut area_of = Vec::with_capacity(items.len());
        let mut area_items: Vec<Vec<u32>> = Vec::new();
        let mut params = Vec::with_capacity(items.len());
        let mut fingerprint = FNV_OFFSET;
        for (i, item) in items.iter().enumerate() {
            item.validate().map_err(|e| wrap(i, e))?;
            match by_id.entry(item.id.clone()) {
                Entry::Occupied(first) => {
                    return Err(IrtError::DuplicateId {
                        id: item.id.clone(),
                        first: position(*first.get()),
                        second: position(i),
                    });
                }
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
            let area = match area_index.get(item.skill.as_str()) {
                Some(&k) => k,
                None => {
                    let k = areas.len() as u32;
                    areas.push(item.skill.clone());
                    area_index.insert(item.skill.as_str(), k);
                    area_items.push(Vec::new());
                    k
                }
            };
            let idx = i as u32;
            area_of.push(area);
            if let Some(list) = area_items.get_mut(area as usize) {
                list.push(idx);
            }
            params.push([item.a, item.b, item.c, item.d]);
            fingerprint = fnv(fingerprint, item.id.as_bytes());
            fingerprint = fnv(fingerprint, &[0xff]);
            fingerprint = fnv(fingerprint, item.skill.as_bytes());
            for v in [item.a, item.b, item.c, item.d, item.exposure] {
                fingerprint = fnv(fingerprint, &v.to_bits().to_le_bytes());
            }
        }
        drop(area_index);
        let max_info: Vec<f64> = params.iter().map(|&[a, _, c, d]| max_information(a, c, d)).collect();
        let by_max = |list: &[u32]| {
            let mut v = list.to_vec();
            v.sort_by(|&x, &y| max_info[y as usize].total_cmp(&max_info[x as usize]).then(x.cmp(&y)));
            v
        };
        let all: Vec<u32> = (0..items.len() as u32).collect();
        let order = by_max(&all);
        let area_order = area_items.iter().map(|l| by_max(l)).collect();
        Ok(Self { items, by_id, areas, area_of, area_items, params, max_info, order, area_order, fingerprint })
    }

    /// Parses a CSV item bank (UTF-8, optional BOM, RFC 4180 quoting).
    ///
    /// The first line is the header; names are trimmed and case-insensitive.
    /// Required columns: `id`, `a`, `b`. Optional: `c` (default 0), `d`
    /// (default 1), `skill` (content area), `topic`, `name`, `exposure`
    /// (Sympson–Hetter K, default 1); an empty optional cell takes the
    /// default. Any other column is kept in [`Item::extra`]. Blank lines are
    /// skipped. Errors name the 1-based line and column:
    /// `line 4, column 2 (`a`): must be a positive finite number, got -1`.
    pub fn from_csv_str(text: &str) -> Result<Self, IrtError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let records = parse_csv(text)?;
        let mut records = records.into_iter();
        let Some((header_line, header)) = records.next() else {
            return Err(IrtError::EmptyBank);
        };
        let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let mut col: HashMap<&str, usize> = HashMap::new();
        for (j, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(IrtError::CsvRecord {
                    line: header_line,
                    message: format!("column {} has no name", j + 1),
                });
            }
            if col.insert(name.as_str(), j).is_some() {
                return Err(IrtError::CsvRecord { line: header_line, message: format!("duplicate column `{name}`") });
            }
        }
        for required in ["id", "a", "b"] {
            if !col.contains_key(required) {
                return Err(IrtError::MissingColumn(required.to_owned()));
            }
        }
        const KNOWN: [&str; 9] = ["id", "a", "b", "c", "d", "skill", "topic", "name", "exposure"];
        let mut items = Vec::new();
        let mut lines = Vec::new();
        for (line, fields) in records {
            if fields.len() != names.len() {
                return Err(IrtError::CsvRecord {
                    line,
                    message: format!("expected {} fields as in the header, found {}", names.len(), fields.len()),
                });
            }
            let cell = |name: &str| col.get(name).map(|&j| (j, fields[j].trim()));
            let err =
                |j: usize, message: String| IrtError::Csv { line, column: j + 1, name: names[j].clone(), message };
            let number = |name: &str, default: Option<f64>| -> Result<f64, IrtError> {
                match cell(name) {
                    None => Ok(default.unwrap_or(f64::NAN)),
                    Some((j, "")) => default.ok_or_else(|| err(j, "missing value".to_owned())),
                    Some((j, s)) => s.parse::<f64>().map_err(|_| err(j, format!("not a number: `{s}`"))),
                }
            };
            let text = |name: &str| cell(name).map(|(_, s)| s.to_owned()).unwrap_or_default();
            let id = text("id");
            if id.is_empty() {
                let j = col.get("id").copied().unwrap_or(0);
                return Err(err(j, "empty id".to_owned()));
            }
            let mut item = Item::four_pl(
                id,
                number("a", None)?,
                number("b", None)?,
                number("c", Some(0.0))?,
                number("d", Some(1.0))?,
            );
            item.exposure = number("exposure", Some(1.0))?;
            item.skill = text("skill");
            item.topic = text("topic");
            item.name = text("name");
            for (j, name) in names.iter().enumerate() {
                if !KNOWN.contains(&name.as_str()) {
                    item.extra.insert(name.clone(), fields[j].clone());
                }
            }
            if let Err(e) = item.validate() {
                return Err(match e {
                    IrtError::InvalidParameter { param, rule, value, .. } => {
                        let j = col.get(param).copied().unwrap_or(0);
                        err(j, format!("must be {rule}, got {value}"))
                    }
                    other => other,
                });
            }
            items.push(item);
            lines.push(line);
        }
        Self::build(items, |i| format!("line {}", lines.get(i).copied().unwrap_or(0)), |_, e| e)
    }

    /// Reads a CSV item bank (see [`ItemBank::from_csv_str`]).
    pub fn from_csv_reader(mut reader: impl Read) -> Result<Self, IrtError> {
        let mut text = String::new();
        reader.read_to_string(&mut text).map_err(|e| IrtError::Io(e.to_string()))?;
        Self::from_csv_str(&text)
    }

    /// Parses a JSON item bank: an array of items or `{"items": [...]}`;
    /// each item has `id`, `a`, `b` and optionally `c`, `d`, `skill`,
    /// `topic`, `name`, `exposure`, `extra` (an object of strings). Unknown
    /// fields are refused. Errors name the item's 0-based position:
    /// `invalid JSON item bank: item 2: missing field `b``,
    /// `position 1 in the bank: item `y`: a must be a positive finite number, got 0`.
    pub fn from_json_str(text: &str) -> Result<Self, IrtError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| IrtError::Json(e.to_string()))?;
        let list = match value {
            serde_json::Value::Array(list) => list,
            serde_json::Value::Object(mut map) => {
                if let Some(key) = map.keys().find(|k| *k != "items") {
                    return Err(IrtError::Json(format!("unknown field `{key}`, expected `items`")));
                }
                match map.remove("items") {
                    Some(serde_json::Value::Array(list)) => list,
                    Some(_) => return Err(IrtError::Json("`items` must be an array".to_owned())),
                    None => return Err(IrtError::Json("missing field `items`".to_owned())),
                }
            }
            _ => return Err(IrtError::Json("expected an array of items or an object with `items`".to_owned())),
        };
        let mut items = Vec::with_capacity(list.len());
        for (index, v) in list.into_iter().enumerate() {
            let item: Item = serde_json::from_value(v).map_err(|e| IrtError::Json(format!("item {index}: {e}")))?;
            items.push(item);
        }
        Self::new(items)
    }

    /// Reads a JSON item bank (see [`ItemBank::from_json_str`]).
    pub fn from_json_reader(mut reader: impl Read) -> Result<Self, IrtError> {
        let mut text = String::new();
        reader.read_to_string(&mut text).map_err(|e| IrtError::Io(e.to_string()))?;
        Self::from_json_str(&text)
    }

    /// The bank as JSON (`{"items": [...]}`), readable by [`ItemBank::from_json_str`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(&BankRef { items: &self.items }).unwrap_or_default()
    }

    /// A copy with new Sympson–Hetter parameters, one per item in bank order.
    pub fn with_exposure_parameters(&self, k: &[f64]) -> Result<Self, IrtError> {
        if k.len() != self.items.len() {
            return Err(IrtError::LengthMismatch { expected: self.items.len(), got: k.len() });
        }
        let items = self.items.iter().zip(k).map(|(it, &k)| it.clone().with_exposure(k)).collect();
        Self::new(items)
    }

    /// Number of items (≥ 1).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always false: a bank has at least one item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All items in bank order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The item at `index`.
    pub fn get(&self, index: usize) -> Option<&Item> {
        self.items.get(index)
    }

    /// The item at `index`, or an error naming the bank's size.
    pub fn item(&self, index: usize) -> Result<&Item, IrtError> {
        self.items.get(index).ok_or(IrtError::IndexOutOfRange { index, len: self.items.len() })
    }

    /// The index of the item with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The item with this id.
    pub fn by_id(&self, id: &str) -> Option<&Item> {
        self.index_of(id).and_then(|i| self.items.get(i))
    }

    /// The content areas (distinct `skill` values, in order of first appearance).
    pub fn areas(&self) -> &[String] {
        &self.areas
    }

    /// The index of a content area in [`ItemBank::areas`].
    pub fn area_index(&self, area: &str) -> Option<usize> {
        self.areas.iter().position(|a| a == area)
    }

    /// The content-area index of the item at `index`.
    pub fn area_of(&self, index: usize) -> Option<usize> {
        self.area_of.get(index).map(|&a| a as usize)
    }

    /// The indices of the items of content area `area`.
    pub fn area_items(&self, area: usize) -> &[u32] {
        self.area_items.get(area).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A 64-bit FNV-1a digest of the ids, content areas and parameters.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The information of every item at `θ`, in bank order.
    pub fn information_at(&self, theta: f64) -> Vec<f64> {
        self.params.iter().map(|&[a, b, c, d]| super::information(theta, a, b, c, d)).collect()
    }
}

/// An upper bound of an item's information over θ, inflated by 1e-9 so
/// that rounding never makes an item's information exceed it.
///
/// 3PL (`d = 1`): Birnbaum's maximum
/// `a² / (8 (1 − c)²) · (1 − 20c − 8c² + (1 + 8c)^{3/2})` (`a²/4` for 2PL).
/// 4PL: `a²/4`, since `P ≥ (d − c)σ` and `1 − P ≥ (d − c)(1 − σ)` give
/// `I ≤ a² σ (1 − σ)`.
fn max_information(a: f64, c: f64, d: f64) -> f64 {
    let bound = if d == 1.0 {
        let root = (1.0 + 8.0 * c).powf(1.5);
        a * a / (8.0 * (1.0 - c) * (1.0 - c)) * (1.0 - 20.0 * c - 8.0 * c * c + root)
    } else {
        a * a / 4.0
    };
    bound * (1.0 + 1e-9)
}

/// Splits CSV text into records `(1-based starting line, fields)`; blank lines are skipped.
fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, IrtError> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut record_line = 1;
    let mut in_quotes = false;
    let mut after_quote = false;
    let mut chars = text.chars().peekable();
    let mut end_record = |fields: &mut Vec<String>, field: &mut String, record_line: usize| {
        fields.push(std::mem::take(field));
        let blank = fields.len() == 1 && fields[0].trim().is_empty();
        if !blank {
            records.push((record_line, std::mem::take(fields)));
        } else {
            fields.clear();
        }
    };
    while let Some(ch) = chars.next() {
        if in_quotes {
            match ch {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    in_quotes = false;
                    after_quote = true;
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(ch),
            }
            continue;
        }
        match ch {
            ',' => {
                fields.push(std::mem::take(&mut field));
                after_quote = false;
            }
            '\r' | '\n' => {
                if ch == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                end_record(&mut fields, &mut field, record_line);
                line += 1;
                record_line = line;
                after_quote = false;
            }
            '"' if field.trim().is_empty() && !after_quote => {
                field.clear();
                in_quotes = true;
            }
            c if after_quote && !c.is_whitespace() => {
                return Err(IrtError::CsvRecord {
                    line,
                    message: format!("unexpected `{c}` after a closing quote in field {}", fields.len() + 1),
                });
            }
            _ if after_quote => {}
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err(IrtError::CsvRecord { line: record_line, message: "unterminated quoted field".to_owned() });
    }
    if !field.is_empty() || !fields.is_empty() {
        end_record(&mut fields, &mut field, record_line);
    }
    Ok(records)
}
