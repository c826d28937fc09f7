//! Compliance checklists: Markdown task lists parsed into tasks per team.
//!
//! Each `compliance/*.md` file is one [`Checklist`]; [`status`] counts its
//! tasks per team and per checklist (total, done, open, overdue, percent) and
//! lists the open ones.
//!
//! # Accepted format
//! ```markdown
//! # HIPAA / 個人情報保護 checklist        <- title (first level-1 heading)
//!
//! - [ ] Name a privacy officer (owner: @tanaka)   <- before any team: team "all"
//!
//! ## medical                                 <- a team
//! ### Access control                         <- a section within the team
//! - [x] Encrypt PHI at rest (owner: @sato, due: 2026-03-31)
//! - [ ] Audit log retention 6 years (期限: 2026-12-01)
//!   - [ ] Nested tasks belong to the same team
//!
//! ## Team: VoiceDrive                        <- team "VoiceDrive"
//! ## 医療チーム {#medical}                    <- team "medical" (explicit id)
//! ```
//! - **Title**: the text of the first `# ` heading; without one, the file name
//!   without `.md`. Every level-1 heading ends the current team: tasks after
//!   it belong to team `all` until the next `## `.
//! - **Teams**: each `## ` heading starts a team. The team is the heading text
//!   with a leading `Team:` (any case) or `チーム:` label removed, or the id
//!   of a trailing `{#id}` attribute when there is one (so a Japanese heading
//!   can carry an ASCII id). Teams compare case-insensitively. Tasks before any
//!   team heading belong to team [`ALL_TEAMS`] (`all`), whose tasks apply to
//!   every team. `### ` and deeper headings name a section within the team.
//! - **Tasks**: GitHub task list items, a bullet (`-`, `*`, `+`, or `1.` /
//!   `1)`) followed by `[ ]` (open; an ideographic space `[　]` is accepted),
//!   `[x]` or `[X]` (done), then whitespace and the text. Items may be nested
//!   at any indentation (spaces or tabs); they stay in the current team.
//!   Other markers (`[-]`, `[?]`) and items without a box are not tasks.
//! - **Metadata** anywhere in a task's text, in parentheses or not, several
//!   per parentheses separated by `,` `;` or `、`, with an ASCII or full-width
//!   colon: `owner: @sato` (also `担当:` / `担当者:`; the `@` is dropped) and
//!   `due: 2026-12-01` (also `期限:`, `期日:`, `締切:`; dates `YYYY-MM-DD`,
//!   `YYYY/MM/DD` or `2026年12月1日`). An unreadable date is reported in
//!   [`Checklist::warnings`] and the task has no due date.
//! - Ignored: every other line, anything inside fenced code blocks (```` ``` ````
//!   or `~~~`) and HTML comments (`<!-- -->`), setext headings. CRLF line
//!   ends and a byte order mark are fine.
//!
//! A task is *overdue* when it is open and its due date is before `today`.
//! Parsing never fails and never panics: whatever is not understood is
//! skipped.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::{Date, Month};

/// The team of tasks written before any team heading; they apply to every
/// team.
pub const ALL_TEAMS: &str = "all";

/// One parsed checklist file.
#[derive(Debug, Clone, PartialEq)]
pub struct Checklist {
    /// The file name it was parsed from (as given to [`parse_checklist`]).
    pub name: String,
    /// The first level-1 heading, else the name without `.md`.
    pub title: String,
    /// Tasks in document order.
    pub tasks: Vec<Task>,
    /// Things the author may want to fix (`line N: ...`), e.g. unreadable
    /// dates.
    pub warnings: Vec<String>,
}

/// One task list item.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The team (see the module documentation), as written.
    pub team: String,
    /// The nearest `###`-or-deeper heading within the team, if any.
    pub section: Option<String>,
    /// The item's text, as written (metadata included).
    pub text: String,
    /// Checked (`[x]`).
    pub done: bool,
    /// `owner:` without the `@`.
    pub owner: Option<String>,
    /// `due:`.
    pub due: Option<Date>,
    /// 1-based line number.
    pub line: usize,
    /// Nesting depth among list items (0 at the top level).
    pub depth: usize,
}

/// Counts of tasks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// All tasks.
    pub total: usize,
    /// Checked tasks.
    pub done: usize,
    /// Unchecked tasks.
    pub open: usize,
    /// Open tasks whose due date has passed.
    pub overdue: usize,
    /// `done / total` in percent, one decimal; 0 when there are no tasks.
    pub percent: f64,
}

impl Counts {
    fn add(&mut self, task: &Task, today: Date) {
        self.total += 1;
        if task.done {
            self.done += 1;
        } else {
            self.open += 1;
            if is_overdue(task, today) {
                self.overdue += 1;
            }
        }
        self.percent = percent(self.done, self.total);
    }

    fn merge(&mut self, other: &Counts) {
        self.total += other.total;
        self.done += other.done;
        self.open += other.open;
        self.overdue += other.overdue;
        self.percent = percent(self.done, self.total);
    }
}

fn percent(done: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { (done as f64 * 1000.0 / total as f64).round() / 10.0 }
}

fn is_overdue(task: &Task, today: Date) -> bool {
    !task.done && task.due.is_some_and(|d| d < today)
}

/// An open task in [`ChecklistStatus::open_tasks`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct OpenTask {
    /// The task's text.
    pub text: String,
    /// Its section, if any.
    pub section: Option<String>,
    /// Owner, without `@`.
    pub owner: Option<String>,
    /// Due date, `YYYY-MM-DD`.
    pub due: Option<String>,
    /// Days past the due date (only when overdue).
    pub days_overdue: Option<i64>,
    /// Line in the checklist file.
    pub line: usize,
}

/// One checklist's tasks for one team.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ChecklistStatus {
    /// File name.
    pub name: String,
    /// Title.
    pub title: String,
    /// Counts.
    pub counts: Counts,
    /// Open tasks in document order.
    pub open_tasks: Vec<OpenTask>,
}

/// One team across checklists.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TeamStatus {
    /// The team, as first written.
    pub team: String,
    /// Counts over its checklists.
    pub totals: Counts,
    /// The checklists with tasks for this team, in input order.
    pub checklists: Vec<ChecklistStatus>,
}

/// What `get_compliance_status` reports.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ComplianceStatus {
    /// The date overdue is measured against, `YYYY-MM-DD`.
    pub today: String,
    /// The team filter, if any.
    pub team: Option<String>,
    /// Counts over the teams reported.
    pub totals: Counts,
    /// Teams reported: `all` first, then by name. With a filter, that team
    /// and `all` (whose tasks apply to every team).
    pub teams: Vec<TeamStatus>,
    /// Every team found, whatever the filter.
    pub known_teams: Vec<String>,
    /// Parser warnings, `<file>: line N: ...`.
    pub warnings: Vec<String>,
}

fn team_key(team: &str) -> String {
    team.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A team while [`status`] collects it: the key it is compared by, its first
/// spelling, and `(checklist index, status)` per checklist with tasks for it.
type TeamAcc = (String, String, Vec<(usize, ChecklistStatus)>);

/// Counts per team and checklist, open tasks listed; `team` restricts the
/// report to that team (case-insensitive) and the tasks for all teams.
pub fn status(checklists: &[Checklist], today: Date, team: Option<&str>) -> ComplianceStatus {
    let mut teams: Vec<TeamAcc> = Vec::new();
    for (checklist_index, checklist) in checklists.iter().enumerate() {
        for task in &checklist.tasks {
            let key = team_key(&task.team);
            let index = match teams.iter().position(|(k, _, _)| *k == key) {
                Some(i) => i,
                None => {
                    teams.push((key, task.team.clone(), Vec::new()));
                    teams.len() - 1
                }
            };
            let per_checklist = &mut teams[index].2;
            if per_checklist.last().is_none_or(|(i, _)| *i != checklist_index) {
                per_checklist.push((
                    checklist_index,
                    ChecklistStatus {
                        name: checklist.name.clone(),
                        title: checklist.title.clone(),
                        counts: Counts::default(),
                        open_tasks: Vec::new(),
                    },
                ));
            }
            let Some((_, entry)) = per_checklist.last_mut() else { continue };
            entry.counts.add(task, today);
            if !task.done {
                let overdue = is_overdue(task, today);
                entry.open_tasks.push(OpenTask {
                    text: task.text.clone(),
                    section: task.section.clone(),
                    owner: task.owner.clone(),
                    due: task.due.map(|d| d.to_string()),
                    days_overdue: task.due.filter(|_| overdue).map(|d| (today - d).whole_days()),
                    line: task.line,
                });
            }
        }
    }
    teams.sort_by(|a, b| (a.0 != ALL_TEAMS, &a.0).cmp(&(b.0 != ALL_TEAMS, &b.0)));
    let known_teams = teams.iter().map(|(_, name, _)| name.clone()).collect();
    let filter = team.map(team_key);
    let mut totals = Counts::default();
    let teams: Vec<TeamStatus> = teams
        .into_iter()
        .filter(|(key, _, _)| filter.as_ref().is_none_or(|f| f == key || key == ALL_TEAMS))
        .map(|(_, name, checklists)| {
            let mut team_totals = Counts::default();
            for (_, c) in &checklists {
                team_totals.merge(&c.counts);
            }
            totals.merge(&team_totals);
            TeamStatus { team: name, totals: team_totals, checklists: checklists.into_iter().map(|(_, c)| c).collect() }
        })
        .collect();
    let warnings = checklists.iter().flat_map(|c| c.warnings.iter().map(move |w| format!("{}: {w}", c.name))).collect();
    ComplianceStatus { today: today.to_string(), team: team.map(str::to_owned), totals, teams, known_teams, warnings }
}

/// Parses one checklist (see the module documentation for the format).
/// `name` is the file name; it is the title when there is no `# ` heading.
pub fn parse_checklist(name: &str, markdown: &str) -> Checklist {
    let markdown = markdown.strip_prefix('\u{feff}').unwrap_or(markdown);
    let mut parser = Parser::default();
    for (i, line) in markdown.lines().enumerate() {
        parser.line(i + 1, line);
    }
    let file = Path::new(name).file_name().and_then(|f| f.to_str()).unwrap_or(name);
    let fallback = file.strip_suffix(".md").or_else(|| file.strip_suffix(".MD")).unwrap_or(file);
    Checklist {
        name: name.to_owned(),
        title: parser.title.unwrap_or_else(|| fallback.to_owned()),
        tasks: parser.tasks,
        warnings: parser.warnings,
    }
}

#[derive(Default)]
struct Parser {
    title: Option<String>,
    team: Option<String>,
    section: Option<String>,
    /// Open code fence: its character and length.
    fence: Option<(char, usize)>,
    in_comment: bool,
    /// Indentation (columns) of the enclosing list items.
    indents: Vec<usize>,
    tasks: Vec<Task>,
    warnings: Vec<String>,
}

impl Parser {
    fn line(&mut self, number: usize, line: &str) {
        if let Some((ch, len)) = self.fence {
            if closes_fence(line, ch, len) {
                self.fence = None;
            }
            return;
        }
        if self.in_comment {
            if line.contains("-->") {
                self.in_comment = false;
            }
            return;
        }
        if let Some(fence) = opens_fence(line) {
            self.fence = Some(fence);
            return;
        }
        let body = line.trim_start();
        if let Some(after) = body.strip_prefix("<!--") {
            self.in_comment = !after.contains("-->");
            return;
        }
        if let Some((level, text)) = heading(line) {
            self.indents.clear();
            match level {
                1 => {
                    if self.title.is_none() && !text.is_empty() {
                        self.title = Some(text.to_owned());
                    }
                    self.team = None;
                    self.section = None;
                }
                2 => {
                    let team = team_of(text);
                    if team.is_empty() {
                        self.warnings.push(format!("line {number}: empty team heading; tasks go to team all"));
                        self.team = None;
                    } else {
                        self.team = Some(team.to_owned());
                    }
                    self.section = None;
                }
                _ => self.section = (!text.is_empty()).then(|| text.to_owned()),
            }
            return;
        }
        let Some((indent, rest)) = list_item(line) else { return };
        while self.indents.last().is_some_and(|&i| i >= indent) {
            self.indents.pop();
        }
        let depth = self.indents.len();
        self.indents.push(indent);
        let Some((done, text)) = checkbox(rest) else { return };
        if text.is_empty() {
            self.warnings.push(format!("line {number}: task without text ignored"));
            return;
        }
        let meta = metadata(text);
        let due = meta.due.and_then(|raw| {
            let date = parse_date(raw);
            if date.is_none() {
                self.warnings.push(format!("line {number}: due date {raw:?} is not a date (expected YYYY-MM-DD)"));
            }
            date
        });
        self.tasks.push(Task {
            team: self.team.clone().unwrap_or_else(|| ALL_TEAMS.to_owned()),
            section: self.section.clone(),
            text: text.to_owned(),
            done,
            owner: meta.owner.map(str::to_owned),
            due,
            line: number,
            depth,
        });
    }
}

/// Strips up to three leading spaces; `None` when the line is indented
/// further (an indented code block, not a heading or fence).
fn block_start(line: &str) -> Option<&str> {
    let spaces = line.bytes().take_while(|&b| b == b' ').count();
    if spaces > 3 || line[spaces..].starts_with('\t') { None } else { Some(&line[spaces..]) }
}

fn opens_fence(line: &str) -> Option<(char, usize)> {
    let s = block_start(line)?;
    let ch = s.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = s.chars().take_while(|c| *c == ch).count();
    // A backtick fence's info string cannot contain backticks.
    (len >= 3 && (ch == '~' || !s[len..].contains('`'))).then_some((ch, len))
}

fn closes_fence(line: &str, ch: char, len: usize) -> bool {
    block_start(line).is_some_and(|s| {
        let run = s.chars().take_while(|c| *c == ch).count();
        run >= len && s[run * ch.len_utf8()..].trim().is_empty()
    })
}

/// An ATX heading: its level and text (closing `#`s removed).
fn heading(line: &str) -> Option<(usize, &str)> {
    let s = block_start(line)?;
    let level = s.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &s[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim();
    let unclosed = text.trim_end_matches('#');
    let text = if unclosed.is_empty() {
        ""
    } else if unclosed.ends_with([' ', '\t']) {
        unclosed.trim_end()
    } else {
        text
    };
    Some((level, text))
}

/// The team a `## ` heading names: a trailing `{#id}`, else the text without
/// a `Team:` / `チーム:` label.
fn team_of(text: &str) -> &str {
    if let Some(open) = text.rfind("{#")
        && let Some(id) = text[open + 2..].strip_suffix('}')
    {
        let id = id.trim();
        if !id.is_empty() && !id.contains(char::is_whitespace) {
            return id;
        }
    }
    for label in ["team:", "team：", "チーム:", "チーム："] {
        if let Some(head) = text.get(..label.len())
            && head.eq_ignore_ascii_case(label)
        {
            let rest = text[label.len()..].trim();
            if !rest.is_empty() {
                return rest;
            }
        }
    }
    text
}

/// Indentation in columns (tabs to the next multiple of 4) and the text after
/// the list marker, for a bullet or ordered list item.
fn list_item(line: &str) -> Option<(usize, &str)> {
    let body = line.trim_start_matches([' ', '\t']);
    let indent = line[..line.len() - body.len()]
        .chars()
        .fold(0, |cols, c| if c == '\t' { cols + 4 - cols % 4 } else { cols + 1 });
    let after_marker = if let Some(rest) = body.strip_prefix(['-', '*', '+']) {
        rest
    } else {
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        body[digits..].strip_prefix(['.', ')'])?
    };
    if !after_marker.starts_with([' ', '\t']) {
        return None;
    }
    Some((indent, after_marker.trim_start_matches([' ', '\t'])))
}

/// A task box at the start of a list item's text: done or not, and the text.
fn checkbox(rest: &str) -> Option<(bool, &str)> {
    let mut chars = rest.chars();
    if chars.next() != Some('[') {
        return None;
    }
    let done = match chars.next()? {
        ' ' | '\u{3000}' => false,
        'x' | 'X' => true,
        _ => return None,
    };
    if chars.next() != Some(']') {
        return None;
    }
    let text = chars.as_str();
    if !(text.is_empty() || text.starts_with(char::is_whitespace)) {
        return None;
    }
    Some((done, text.trim()))
}

#[derive(Default)]
struct Metadata<'a> {
    owner: Option<&'a str>,
    due: Option<&'a str>,
}

/// Keys, longest first among those sharing a prefix.
const OWNER_KEYS: [&str; 3] = ["owner", "担当者", "担当"];
const DUE_KEYS: [&str; 4] = ["due", "期限", "期日", "締切"];

fn is_value_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, ')' | '）' | ',' | '，' | ';' | '、' | ']' | '】')
}

fn is_key_start_boundary(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | '（' | ',' | '，' | ';' | '、' | '[' | '【')
}

/// `key: value` pairs anywhere in a task's text; the first of each kind wins.
fn metadata(text: &str) -> Metadata<'_> {
    let mut meta = Metadata::default();
    for (i, c) in text.char_indices() {
        if i > 0 && !text[..i].chars().next_back().is_some_and(is_key_start_boundary) {
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        let rest = &text[i..];
        let keys = OWNER_KEYS.iter().map(|k| (true, k)).chain(DUE_KEYS.iter().map(|k| (false, k)));
        for (is_owner, key) in keys {
            let Some(head) = rest.get(..key.len()) else { continue };
            if !head.eq_ignore_ascii_case(key) {
                continue;
            }
            let after = rest[key.len()..].trim_start();
            let Some(after) = after.strip_prefix(':').or_else(|| after.strip_prefix('：')) else { continue };
            let after = after.trim_start();
            let value = &after[..after.find(is_value_end).unwrap_or(after.len())];
            if is_owner {
                let owner = value.trim_start_matches(['@', '＠']);
                if meta.owner.is_none() && !owner.is_empty() {
                    meta.owner = Some(owner);
                }
            } else if meta.due.is_none() && !value.is_empty() {
                meta.due = Some(value);
            }
            break;
        }
    }
    meta
}

/// `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYY年M月D日`.
fn parse_date(raw: &str) -> Option<Date> {
    let raw = raw.strip_suffix('日').unwrap_or(raw);
    let parts: Vec<&str> = raw.split(['-', '/', '年', '月']).collect();
    let [y, m, d] = parts.as_slice() else { return None };
    let number = |s: &str, max_len: usize| {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok())?
    };
    if y.len() != 4 {
        return None;
    }
    let year = i32::try_from(number(y, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(number(m, 2)?).ok()?).ok()?;
    let day = u8::try_from(number(d, 2)?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// Why checklists could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComplianceError {
    /// Reading the directory or a file failed.
    #[error("cannot read {path}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Parses every `*.md` file of `dir` (not recursive), sorted by file name.
/// A directory that does not exist holds no checklists. Invalid UTF-8 is
/// replaced, not refused.
pub async fn load_dir(dir: &Path) -> Result<Vec<Checklist>, ComplianceError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| ComplianceError::Io { path, source }
    };
    let mut listing = match tokio::fs::read_dir(dir).await {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(dir)(e)),
    };
    let mut files = Vec::new();
    while let Some(item) = listing.next_entry().await.map_err(err(dir))? {
        let path = item.path();
        let is_md = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("md"));
        if is_md && item.file_type().await.map_err(err(&path))?.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut checklists = Vec::with_capacity(files.len());
    for path in files {
        let bytes = tokio::fs::read(&path).await.map_err(err(&path))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        checklists.push(parse_checklist(&name, &String::from_utf8_lossy(&bytes)));
    }
    Ok(checklists)
}
