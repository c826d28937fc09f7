//! Skills, content and the prerequisite graph; recommendations.
//!
//! A [`Course`] is a validated set of [`Skill`]s (each with a subject and
//! prerequisites named by skill id) and [`ContentItem`]s (each teaching one
//! skill, with a difficulty on the IRT `b` scale, a duration and a
//! [`ContentFormat`]). The prerequisites must form a directed acyclic graph;
//! [`Course::new`] names the first cycle it finds.
//!
//! # Recommendations
//!
//! [`recommend`] plans a [`LearningPath`] for a [`LearnerState`] (BKT
//! mastery per skill, an ability estimate θ and the content already
//! completed) under a [`RecommendRequest`]. It repeats, up to `max_steps`:
//!
//! 1. **Skill.** Among the skills in scope (the requested subject, or all)
//!    that are not mastered (`p_known < mastery_threshold`), whose
//!    prerequisites are all mastered, and that still have content the
//!    learner has not completed, take the one with the lowest mastery (ties:
//!    smallest id).
//! 2. **Content.** The target difficulty is θ, or the requested difficulty
//!    ([`TargetDifficulty`]: easy θ − 1, medium θ, hard θ + 1, or a number on
//!    the `b` scale). Content whose `|b − target|` is within
//!    `difficulty_tolerance` of the closest counts as equally close; among
//!    those the preferred formats win (in the order given), then the closer
//!    difficulty, then the smaller id. Format is thus only a tie-break:
//!    it never buys a difficulty further than the tolerance. Up to
//!    `steps_per_skill` items of the skill become consecutive steps.
//! 3. **Assume mastery.** The skill then counts as mastered, which may
//!    unlock skills that need it, so a path that spans several skills
//!    follows the prerequisite (topological) order.
//!
//! Every choice is a pure function of the inputs, ties broken by id, so the
//! path does not depend on the order in which skills or content were given.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::bkt::{BktParams, DEFAULT_MASTERY_THRESHOLD};

/// Errors of course validation, learner states and recommendation requests.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum GraphError {
    /// A skill or content item without an id.
    #[error("{kind} at position {index} has an empty id")]
    EmptyId {
        /// `skill` or `content`.
        kind: &'static str,
        /// 0-based position in the list given.
        index: usize,
    },
    /// A required text field that is empty or only whitespace.
    #[error("{kind} `{id}`: {field} must not be empty")]
    EmptyField {
        /// `skill` or `content`.
        kind: &'static str,
        /// The id.
        id: String,
        /// The field (`name`, `title`).
        field: &'static str,
    },
    /// Two skills, or two content items, with the same id.
    #[error("duplicate {kind} id `{id}` at positions {first} and {second}")]
    DuplicateId {
        /// `skill` or `content`.
        kind: &'static str,
        /// The repeated id.
        id: String,
        /// 0-based position of the first occurrence.
        first: usize,
        /// 0-based position of the repetition.
        second: usize,
    },
    /// A content item that teaches a skill the course does not have.
    #[error("content `{content}` refers to unknown skill `{skill}`")]
    UnknownSkill {
        /// The content item's id.
        content: String,
        /// The missing skill id.
        skill: String,
    },
    /// A prerequisite that is not a skill of the course.
    #[error("skill `{skill}` has unknown prerequisite `{prerequisite}`")]
    UnknownPrerequisite {
        /// The skill.
        skill: String,
        /// The missing prerequisite id.
        prerequisite: String,
    },
    /// A prerequisite listed twice by the same skill.
    #[error("skill `{skill}` lists prerequisite `{prerequisite}` more than once")]
    DuplicatePrerequisite {
        /// The skill.
        skill: String,
        /// The repeated prerequisite.
        prerequisite: String,
    },
    /// Prerequisites that go round in a circle. `cycle` starts and ends with
    /// the same skill (the smallest id of the cycle) and each skill requires
    /// the next.
    #[error("prerequisite cycle: {} (each skill requires the next)", .cycle.join(" → "))]
    Cycle {
        /// The skills of the cycle, first repeated at the end.
        cycle: Vec<String>,
    },
    /// A number of a content item outside its domain.
    #[error("content `{content}`: {field} must be {rule}, got {value}")]
    InvalidNumber {
        /// The content item's id.
        content: String,
        /// `difficulty` or `duration_minutes`.
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
        /// The offending value.
        value: f64,
    },
    /// A format name that is not a [`ContentFormat`].
    #[error("unknown content format `{0}` (expected one of video, text, interactive, exercise, quiz, audio, project)")]
    UnknownFormat(String),
    /// A learning style name that is not a [`LearningStyle`].
    #[error("unknown learning style `{0}` (expected visual, auditory, reading or kinesthetic)")]
    UnknownStyle(String),
    /// A target difficulty that is neither a level nor a finite number.
    #[error("unknown target difficulty `{0}` (expected easy, medium, hard or a finite number)")]
    UnknownDifficulty(String),
    /// A learner state that cannot be used.
    #[error("invalid learner state: {0}")]
    InvalidLearner(String),
    /// A recommendation request that cannot be used.
    #[error("invalid recommendation request: {0}")]
    InvalidRequest(String),
    /// A subject filter that matches no skill of the course.
    #[error("no skill of the course has subject `{0}`")]
    UnknownSubject(String),
    /// A skill id looked up in a course that does not have it.
    #[error("the course has no skill `{0}`")]
    SkillNotFound(String),
}

/// How a content item is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ContentFormat {
    /// A video lesson.
    Video,
    /// A text to read.
    Text,
    /// An interactive simulation or manipulative.
    Interactive,
    /// Practice problems.
    Exercise,
    /// A short graded quiz.
    Quiz,
    /// An audio lesson or podcast.
    Audio,
    /// A longer hands-on project.
    Project,
}

impl ContentFormat {
    /// Every format, in declaration order.
    pub const ALL: [ContentFormat; 7] = [
        ContentFormat::Video,
        ContentFormat::Text,
        ContentFormat::Interactive,
        ContentFormat::Exercise,
        ContentFormat::Quiz,
        ContentFormat::Audio,
        ContentFormat::Project,
    ];

    /// The lowercase name (`video`, `text`, …), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentFormat::Video => "video",
            ContentFormat::Text => "text",
            ContentFormat::Interactive => "interactive",
            ContentFormat::Exercise => "exercise",
            ContentFormat::Quiz => "quiz",
            ContentFormat::Audio => "audio",
            ContentFormat::Project => "project",
        }
    }
}

impl fmt::Display for ContentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContentFormat {
    type Err = GraphError;

    /// The name, case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        ContentFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == wanted)
            .ok_or_else(|| GraphError::UnknownFormat(s.to_owned()))
    }
}

/// A learning style, as a shorthand for a ranked format preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LearningStyle {
    /// Video, then interactive.
    Visual,
    /// Audio, then video.
    Auditory,
    /// Text, then exercise.
    Reading,
    /// Interactive, then exercise, then project.
    Kinesthetic,
}

impl LearningStyle {
    /// The formats this style prefers, most preferred first.
    pub fn formats(self) -> Vec<ContentFormat> {
        use ContentFormat::{Audio, Exercise, Interactive, Project, Text, Video};
        match self {
            LearningStyle::Visual => vec![Video, Interactive],
            LearningStyle::Auditory => vec![Audio, Video],
            LearningStyle::Reading => vec![Text, Exercise],
            LearningStyle::Kinesthetic => vec![Interactive, Exercise, Project],
        }
    }
}

impl FromStr for LearningStyle {
    type Err = GraphError;

    /// `visual`, `auditory`, `reading` (or `reading/writing`), `kinesthetic`; case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "visual" => Ok(LearningStyle::Visual),
            "auditory" | "aural" => Ok(LearningStyle::Auditory),
            "reading" | "reading/writing" | "read/write" => Ok(LearningStyle::Reading),
            "kinesthetic" | "kinaesthetic" => Ok(LearningStyle::Kinesthetic),
            _ => Err(GraphError::UnknownStyle(s.to_owned())),
        }
    }
}

/// A skill of a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skill {
    /// Unique id within the course (any non-empty text, Japanese included).
    pub id: String,
    /// Display name; not empty.
    pub name: String,
    /// Subject (e.g. `algebra`); may be empty.
    #[serde(default)]
    pub subject: String,
    /// Ids of the skills that must be mastered first.
    #[serde(default)]
    pub prerequisites: Vec<String>,
    /// The name in other languages, by language tag (`ja`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, String>,
}

impl Skill {
    /// A skill without prerequisites. Not validated: see [`Course::new`].
    pub fn new(id: impl Into<String>, name: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            subject: subject.into(),
            prerequisites: Vec::new(),
            translations: BTreeMap::new(),
        }
    }

    /// The same skill with these prerequisites (skill ids).
    #[must_use]
    pub fn with_prerequisites<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.prerequisites = ids.into_iter().map(Into::into).collect();
        self
    }

    /// The same skill with its name in language `lang`.
    #[must_use]
    pub fn with_translation(mut self, lang: impl Into<String>, name: impl Into<String>) -> Self {
        self.translations.insert(lang.into(), name.into());
        self
    }
}

/// A piece of content that teaches one skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentItem {
    /// Unique id within the course.
    pub id: String,
    /// Display title; not empty.
    pub title: String,
    /// The skill it teaches (a skill id).
    pub skill: String,
    /// Difficulty on the IRT `b` scale; finite.
    pub difficulty: f64,
    /// Estimated duration in minutes; finite and ≥ 0.
    pub duration_minutes: f64,
    /// Presentation.
    pub format: ContentFormat,
    /// The title in other languages, by language tag (`ja`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, String>,
}

impl ContentItem {
    /// A content item. Not validated: see [`Course::new`].
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        skill: impl Into<String>,
        format: ContentFormat,
        difficulty: f64,
        duration_minutes: f64,
    ) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            skill: skill.into(),
            difficulty,
            duration_minutes,
            format,
            translations: BTreeMap::new(),
        }
    }

    /// The same item with its title in language `lang`.
    #[must_use]
    pub fn with_translation(mut self, lang: impl Into<String>, title: impl Into<String>) -> Self {
        self.translations.insert(lang.into(), title.into());
        self
    }
}

/// A validated course: skills with an acyclic prerequisite graph and the
/// content that teaches them.
#[derive(Debug, Clone)]
pub struct Course {
    skills: Vec<Skill>,
    content: Vec<ContentItem>,
    skill_index: HashMap<String, usize>,
    content_index: HashMap<String, usize>,
    /// Per skill, its prerequisites' indices.
    prerequisites: Vec<Vec<usize>>,
    /// Per skill, its content indices by id.
    skill_content: Vec<Vec<usize>>,
    /// Skill indices, prerequisites first, ties by id.
    topo: Vec<usize>,
}

impl PartialEq for Course {
    fn eq(&self, other: &Self) -> bool {
        self.skills == other.skills && self.content == other.content
    }
}

#[derive(Serialize)]
struct CourseRef<'a> {
    skills: &'a [Skill],
    content: &'a [ContentItem],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseOwned {
    skills: Vec<Skill>,
    #[serde(default)]
    content: Vec<ContentItem>,
}

impl Serialize for Course {
    /// As `{"skills": [...], "content": [...]}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CourseRef { skills: &self.skills, content: &self.content }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Course {
    /// From `{"skills": [...], "content": [...]}`, validated by [`Course::new`].
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let owned = CourseOwned::deserialize(d)?;
        Course::new(owned.skills, owned.content).map_err(serde::de::Error::custom)
    }
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

impl Course {
    /// Validates and indexes a course. Checks, in this order: every skill
    /// has an id and a name, ids are unique, prerequisites exist and are not
    /// repeated; every content item has an id and a title, ids are unique,
    /// its skill exists, its difficulty is finite and its duration finite
    /// and ≥ 0; finally the prerequisites have no cycle
    /// ([`GraphError::Cycle`] names one).
    pub fn new(skills: Vec<Skill>, content: Vec<ContentItem>) -> Result<Self, GraphError> {
        let mut skill_index = HashMap::with_capacity(skills.len());
        for (i, s) in skills.iter().enumerate() {
            if s.id.is_empty() {
                return Err(GraphError::EmptyId { kind: "skill", index: i });
            }
            if blank(&s.name) {
                return Err(GraphError::EmptyField { kind: "skill", id: s.id.clone(), field: "name" });
            }
            if let Some(&first) = skill_index.get(&s.id) {
                return Err(GraphError::DuplicateId { kind: "skill", id: s.id.clone(), first, second: i });
            }
            skill_index.insert(s.id.clone(), i);
        }
        let mut prerequisites = Vec::with_capacity(skills.len());
        for s in &skills {
            let mut list = Vec::with_capacity(s.prerequisites.len());
            for p in &s.prerequisites {
                let &k = skill_index
                    .get(p)
                    .ok_or_else(|| GraphError::UnknownPrerequisite { skill: s.id.clone(), prerequisite: p.clone() })?;
                if list.contains(&k) {
                    return Err(GraphError::DuplicatePrerequisite { skill: s.id.clone(), prerequisite: p.clone() });
                }
                list.push(k);
            }
            prerequisites.push(list);
        }
        let mut content_index = HashMap::with_capacity(content.len());
        let mut skill_content = vec![Vec::new(); skills.len()];
        for (i, c) in content.iter().enumerate() {
            if c.id.is_empty() {
                return Err(GraphError::EmptyId { kind: "content", index: i });
            }
            if blank(&c.title) {
                return Err(GraphError::EmptyField { kind: "content", id: c.id.clone(), field: "title" });
            }
            if let Some(&first) = content_index.get(&c.id) {
                return Err(GraphError::DuplicateId { kind: "content", id: c.id.clone(), first, second: i });
            }
            let &k = skill_index
                .get(&c.skill)
                .ok_or_else(|| GraphError::UnknownSkill { content: c.id.clone(), skill: c.skill.clone() })?;
            if !c.difficulty.is_finite() {
                return Err(GraphError::InvalidNumber {
                    content: c.id.clone(),
                    field: "difficulty",
                    rule: "a finite number",
                    value: c.difficulty,
                });
            }
            if !(c.duration_minutes.is_finite() && c.duration_minutes >= 0.0) {
                return Err(GraphError::InvalidNumber {
                    content: c.id.clone(),
                    field: "duration_minutes",
                    rule: "a finite number ≥ 0",
                    value: c.duration_minutes,
                });
            }
            content_index.insert(c.id.clone(), i);
            skill_content[k].push(i);
        }
        for list in &mut skill_content {
            list.sort_by(|&x, &y| content[x].id.cmp(&content[y].id));
        }
        if let Some(cycle) = find_cycle(&skills, &prerequisites) {
            return Err(GraphError::Cycle { cycle });
        }
        let topo = topological_order(&skills, &prerequisites);
        Ok(Self { skills, content, skill_index, content_index, prerequisites, skill_content, topo })
    }

    /// The skills, in the order given.
    pub fn skills(&self) -> &[Skill] {
        &self.skills
    }

    /// The content items, in the order given.
    pub fn content(&self) -> &[ContentItem] {
        &self.content
    }

    /// The skill with this id.
    pub fn skill(&self, id: &str) -> Option<&Skill> {
        self.skill_index.get(id).map(|&i| &self.skills[i])
    }

    /// The content item with this id.
    pub fn content_item(&self, id: &str) -> Option<&ContentItem> {
        self.content_index.get(id).map(|&i| &self.content[i])
    }

    /// The content teaching skill `id`, by content id (empty for an unknown skill).
    pub fn content_for(&self, id: &str) -> Vec<&ContentItem> {
        self.skill_index
            .get(id)
            .map(|&k| self.skill_content[k].iter().map(|&i| &self.content[i]).collect())
            .unwrap_or_default()
    }

    /// The distinct subjects, sorted.
    pub fn subjects(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.skills.iter().map(|s| s.subject.as_str()).collect();
        set.into_iter().collect()
    }

    /// Every skill after all its prerequisites; among skills whose
    /// prerequisites are placed, the smallest id comes first (Kahn's
    /// algorithm with a sorted ready set).
    pub fn topological_order(&self) -> Vec<&Skill> {
        self.topo.iter().map(|&i| &self.skills[i]).collect()
    }

    /// All direct and indirect prerequisites of skill `id`, in
    /// [`Course::topological_order`].
    pub fn ancestors(&self, id: &str) -> Result<Vec<&Skill>, GraphError> {
        let &k = self.skill_index.get(id).ok_or_else(|| GraphError::SkillNotFound(id.to_owned()))?;
        let mut seen = vec![false; self.skills.len()];
        let mut stack: Vec<usize> = self.prerequisites[k].clone();
        while let Some(p) = stack.pop() {
            if !seen[p] {
                seen[p] = true;
                stack.extend(self.prerequisites[p].iter().copied());
            }
        }
        Ok(self.topo.iter().filter(|&&i| seen[i]).map(|&i| &self.skills[i]).collect())
    }
}

/// The first cycle found by a depth-first search over the skills in the
/// order given (each skill's prerequisites in their listed order), rotated
/// to start at its smallest id and closed by repeating it.
fn find_cycle(skills: &[Skill], prerequisites: &[Vec<usize>]) -> Option<Vec<String>> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut color = vec![WHITE; skills.len()];
    for root in 0..skills.len() {
        if color[root] != WHITE {
            continue;
        }
        // (node, next prerequisite to visit)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        color[root] = GREY;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            if let Some(&p) = prerequisites[node].get(top.1) {
                top.1 += 1;
                match color[p] {
                    WHITE => {
                        color[p] = GREY;
                        stack.push((p, 0));
                    }
                    GREY => {
                        let start = stack.iter().position(|&(n, _)| n == p).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[start..].iter().map(|&(n, _)| n).collect();
                        let smallest = (0..cycle.len()).min_by(|&x, &y| skills[cycle[x]].id.cmp(&skills[cycle[y]].id));
                        cycle.rotate_left(smallest.unwrap_or(0));
                        let mut names: Vec<String> = cycle.iter().map(|&n| skills[n].id.clone()).collect();
                        names.push(names[0].clone());
                        return Some(names);
                    }
                    _ => {}
                }
            } else {
                color[node] = BLACK;
                stack.pop();
            }
        }
    }
    None
}

/// Kahn's algorithm with the ready set ordered by id (the graph is acyclic).
fn topological_order(skills: &[Skill], prerequisites: &[Vec<usize>]) -> Vec<usize> {
    let n = skills.len();
    let mut missing: Vec<usize> = prerequisites.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (s, list) in prerequisites.iter().enumerate() {
        for &p in list {
            dependents[p].push(s);
        }
    }
    let mut ready: BTreeSet<(&str, usize)> =
        (0..n).filter(|&i| missing[i] == 0).map(|i| (skills[i].id.as_str(), i)).collect();
    let mut order = Vec::with_capacity(n);
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            missing[d] -= 1;
            if missing[d] == 0 {
                ready.insert((skills[d].id.as_str(), d));
            }
        }
    }
    order
}

/// Offset of [`TargetDifficulty::Easy`] and [`TargetDifficulty::Hard`] from θ.
pub const DIFFICULTY_STEP: f64 = 1.0;

/// The difficulty a recommendation aims at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DifficultyRaw", into = "DifficultyRaw")]
pub enum TargetDifficulty {
    /// θ − 1: about 73 % correct on an item with `a = 1`.
    Easy,
    /// θ: about 50 % correct.
    Medium,
    /// θ + 1: about 27 % correct.
    Hard,
    /// A fixed `b`, whatever the learner's ability.
    Value(f64),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum DifficultyRaw {
    Name(String),
    Value(f64),
}

impl TryFrom<DifficultyRaw> for TargetDifficulty {
    type Error = GraphError;

    fn try_from(raw: DifficultyRaw) -> Result<Self, GraphError> {
        match raw {
            DifficultyRaw::Name(name) => name.parse(),
            DifficultyRaw::Value(v) if v.is_finite() => Ok(TargetDifficulty::Value(v)),
            DifficultyRaw::Value(v) => Err(GraphError::UnknownDifficulty(v.to_string())),
        }
    }
}

impl From<TargetDifficulty> for DifficultyRaw {
    fn from(t: TargetDifficulty) -> Self {
        match t {
            TargetDifficulty::Easy => DifficultyRaw::Name("easy".to_owned()),
            TargetDifficulty::Medium => DifficultyRaw::Name("medium".to_owned()),
            TargetDifficulty::Hard => DifficultyRaw::Name("hard".to_owned()),
            TargetDifficulty::Value(v) => DifficultyRaw::Value(v),
        }
    }
}

impl FromStr for TargetDifficulty {
    type Err = GraphError;

    /// `easy`, `medium`, `hard` (case-insensitive) or a finite number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "easy" => Ok(TargetDifficulty::Easy),
            "medium" => Ok(TargetDifficulty::Medium),
            "hard" => Ok(TargetDifficulty::Hard),
            other => match other.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(TargetDifficulty::Value(v)),
                _ => Err(GraphError::UnknownDifficulty(s.to_owned())),
            },
        }
    }
}

impl TargetDifficulty {
    /// The target `b` for a learner of ability `theta`.
    pub fn resolve(self, theta: f64) -> f64 {
        match self {
            TargetDifficulty::Easy => theta - DIFFICULTY_STEP,
            TargetDifficulty::Medium => theta,
            TargetDifficulty::Hard => theta + DIFFICULTY_STEP,
            TargetDifficulty::Value(v) => v,
        }
    }
}

/// What the recommender knows about a learner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearnerState {
    /// `P(known)` per skill id (BKT); ids the course does not have are ignored.
    pub mastery: BTreeMap<String, f64>,
    /// Mastery of skills absent from `mastery` (default: BKT's prior, 0.2).
    pub prior: f64,
    /// Ability estimate on the IRT θ scale (default 0).
    pub theta: f64,
    /// Standard error of `theta`, if known; shown in the reasons.
    pub theta_se: Option<f64>,
    /// Ids of content already completed; never recommended again.
    pub completed: BTreeSet<String>,
}

impl Default for LearnerState {
    fn default() -> Self {
        Self {
            mastery: BTreeMap::new(),
            prior: BktParams::default().prior,
            theta: 0.0,
            theta_se: None,
            completed: BTreeSet::new(),
        }
    }
}

impl LearnerState {
    /// The mastery of skill `id`: its entry, else `prior`.
    pub fn mastery_of(&self, id: &str) -> f64 {
        self.mastery.get(id).copied().unwrap_or(self.prior)
    }

    /// Checks: every mastery and the prior in [0, 1], θ finite, SE finite and > 0.
    pub fn validate(&self) -> Result<(), GraphError> {
        for (skill, &p) in &self.mastery {
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return Err(GraphError::InvalidLearner(format!("mastery of `{skill}` must be in [0, 1], got {p}")));
            }
        }
        if !(self.prior.is_finite() && (0.0..=1.0).contains(&self.prior)) {
            return Err(GraphError::InvalidLearner(format!("prior must be in [0, 1], got {}", self.prior)));
        }
        if !self.theta.is_finite() {
            return Err(GraphError::InvalidLearner(format!("theta must be finite, got {}", self.theta)));
        }
        if let Some(se) = self.theta_se
            && !(se.is_finite() && se > 0.0)
        {
            return Err(GraphError::InvalidLearner(format!("theta_se must be finite and > 0, got {se}")));
        }
        Ok(())
    }
}

/// Default of [`RecommendRequest::max_steps`].
pub const DEFAULT_MAX_STEPS: usize = 5;

/// Default of [`RecommendRequest::difficulty_tolerance`].
pub const DEFAULT_DIFFICULTY_TOLERANCE: f64 = 0.1;

/// What to recommend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommendRequest {
    /// Only skills of this subject (exact match); `None`: every skill.
    pub subject: Option<String>,
    /// The difficulty to aim at; `None`: the learner's θ.
    pub difficulty: Option<TargetDifficulty>,
    /// Formats preferred, most preferred first (see
    /// [`LearningStyle::formats`]); a tie-break among equally close difficulties.
    pub preferred_formats: Vec<ContentFormat>,
    /// `P(known)` from which a skill counts as mastered, in (0, 1] (default 0.95).
    pub mastery_threshold: f64,
    /// Maximum number of steps, ≥ 1 (default 5).
    pub max_steps: usize,
    /// Content items per skill before the skill is assumed mastered, ≥ 1 (default 1).
    pub steps_per_skill: usize,
    /// Difficulties within this distance of the closest count as equally
    /// close (default 0.1 on the `b` scale), finite and ≥ 0.
    pub difficulty_tolerance: f64,
}

impl Default for RecommendRequest {
    fn default() -> Self {
        Self {
            subject: None,
            difficulty: None,
            preferred_formats: Vec::new(),
            mastery_threshold: DEFAULT_MASTERY_THRESHOLD,
            max_steps: DEFAULT_MAX_STEPS,
            steps_per_skill: 1,
            difficulty_tolerance: DEFAULT_DIFFICULTY_TOLERANCE,
        }
    }
}

impl RecommendRequest {
    /// The same request preferring the formats of `style`.
    #[must_use]
    pub fn with_style(mut self, style: LearningStyle) -> Self {
        self.preferred_formats = style.formats();
        self
    }

    /// Checks the threshold, the step counts, the tolerance and a numeric target.
    pub fn validate(&self) -> Result<(), GraphError> {
        let t = self.mastery_threshold;
        if !(t.is_finite() && t > 0.0 && t <= 1.0) {
            return Err(GraphError::InvalidRequest(format!("mastery_threshold must be in (0, 1], got {t}")));
        }
        if self.max_steps == 0 {
            return Err(GraphError::InvalidRequest("max_steps must be at least 1".to_owned()));
        }
        if self.steps_per_skill == 0 {
            return Err(GraphError::InvalidRequest("steps_per_skill must be at least 1".to_owned()));
        }
        let tol = self.difficulty_tolerance;
        if !(tol.is_finite() && tol >= 0.0) {
            return Err(GraphError::InvalidRequest(format!("difficulty_tolerance must be finite and ≥ 0, got {tol}")));
        }
        if let Some(TargetDifficulty::Value(v)) = self.difficulty
            && !v.is_finite()
        {
            return Err(GraphError::InvalidRequest(format!("the target difficulty must be finite, got {v}")));
        }
        Ok(())
    }
}

/// One step of a [`LearningPath`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathStep {
    /// 1-based position in the path.
    pub position: usize,
    /// The skill's id.
    pub skill: String,
    /// The skill's name.
    pub skill_name: String,
    /// The learner's current mastery of the skill.
    pub mastery: f64,
    /// The recommended content.
    pub content: ContentItem,
    /// The difficulty aimed at.
    pub target_difficulty: f64,
    /// Whether the content is in one of the preferred formats.
    pub preferred_format: bool,
    /// Positions of earlier steps whose skills were prerequisites this
    /// skill was missing (empty: its prerequisites were mastered already).
    pub unlocked_by: Vec<usize>,
    /// Why this step, in words.
    pub reason: String,
}

/// A prerequisite that is not mastered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingPrerequisite {
    /// The prerequisite's id.
    pub skill: String,
    /// Its name.
    pub name: String,
    /// The learner's mastery of it.
    pub mastery: f64,
}

/// A skill in scope that is not mastered and cannot be started yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockedSkill {
    /// The skill's id.
    pub skill: String,
    /// Its name.
    pub name: String,
    /// The learner's mastery of it.
    pub mastery: f64,
    /// Its direct prerequisites that are not mastered, in the order listed.
    pub missing: Vec<MissingPrerequisite>,
    /// The step after which the path would have mastered all of them, if it does.
    pub unlocked_at_step: Option<usize>,
}

/// A skill reported by id, name and mastery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillStatus {
    /// The skill's id.
    pub skill: String,
    /// Its name.
    pub name: String,
    /// The learner's mastery of it.
    pub mastery: f64,
}

/// The result of [`recommend`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningPath {
    /// The steps, in order.
    pub steps: Vec<PathStep>,
    /// Sum of the steps' durations, in minutes.
    pub total_minutes: f64,
    /// Skills in scope whose prerequisites are not all mastered now, by id.
    pub blocked: Vec<BlockedSkill>,
    /// Skills in scope already mastered (skipped), by id.
    pub mastered: Vec<SkillStatus>,
    /// Skills in scope that could be studied (prerequisites mastered, at
    /// least by the path) but have no content left that the learner has not
    /// completed, by mastery then id.
    pub without_content: Vec<SkillStatus>,
}

fn positions(list: &[usize]) -> String {
    let words: Vec<String> = list.iter().map(usize::to_string).collect();
    match words.len() {
        1 => format!("step {}", words[0]),
        _ => format!("steps {}", words.join(", ")),
    }
}

/// Plans a learning path; see the [module documentation](self) for the rules.
pub fn recommend(
    course: &Course,
    learner: &LearnerState,
    request: &RecommendRequest,
) -> Result<LearningPath, GraphError> {
    learner.validate()?;
    request.validate()?;
    let n = course.skills.len();
    let in_scope: Vec<bool> = match &request.subject {
        Some(subject) => {
            let scope: Vec<bool> = course.skills.iter().map(|s| &s.subject == subject).collect();
            if !scope.contains(&true) {
                return Err(GraphError::UnknownSubject(subject.clone()));
            }
            scope
        }
        None => vec![true; n],
    };
    let threshold = request.mastery_threshold;
    let mastery: Vec<f64> = course.skills.iter().map(|s| learner.mastery_of(&s.id)).collect();
    let initially_mastered: Vec<bool> = mastery.iter().map(|&p| p >= threshold).collect();
    let target = request.difficulty.unwrap_or(TargetDifficulty::Medium).resolve(learner.theta);
    let status = |k: usize| SkillStatus {
        skill: course.skills[k].id.clone(),
        name: course.skills[k].name.clone(),
        mastery: mastery[k],
    };

    // The simulated state: mastered skills (initially, or by a step at that position).
    let mut mastered_at: Vec<Option<usize>> = vec![None; n];
    let mut mastered_now = initially_mastered.clone();
    let mut used: BTreeSet<usize> = BTreeSet::new();
    let mut steps: Vec<PathStep> = Vec::new();
    let available = |k: usize, used: &BTreeSet<usize>| -> Vec<usize> {
        course.skill_content[k]
            .iter()
            .copied()
            .filter(|&c| !used.contains(&c) && !learner.completed.contains(&course.content[c].id))
            .collect()
    };

    // Skill indices by id, so that scans break ties by id.
    let mut by_id: Vec<usize> = (0..n).collect();
    by_id.sort_by(|&x, &y| course.skills[x].id.cmp(&course.skills[y].id));

    while steps.len() < request.max_steps {
        let mut best: Option<(usize, Vec<usize>)> = None;
        for &k in &by_id {
            if !in_scope[k] || mastered_now[k] || !course.prerequisites[k].iter().all(|&p| mastered_now[p]) {
                continue;
            }
            // strict `<` keeps the smallest id among equal masteries
            if best.as_ref().is_none_or(|(b, _)| mastery[k].total_cmp(&mastery[*b]).is_lt()) {
                let left = available(k, &used);
                if !left.is_empty() {
                    best = Some((k, left));
                }
            }
        }
        let Some((k, available)) = best else { break };
        let ranked = rank_content(course, &available, target, request);
        let unlocked_by: Vec<usize> = {
            let mut list: Vec<usize> = course.prerequisites[k].iter().filter_map(|&p| mastered_at[p]).collect();
            list.sort_unstable();
            list.dedup();
            list
        };
        let take = request.steps_per_skill.min(request.max_steps - steps.len()).min(ranked.len());
        let best_distance = ranked.iter().map(|r| r.distance).fold(f64::INFINITY, f64::min);
        for (j, choice) in ranked.iter().take(take).enumerate() {
            let content = &course.content[choice.index];
            let skill = &course.skills[k];
            let mut reason = if j == 0 {
                let mut r = format!("lowest mastery ({:.2}) among skills whose prerequisites are mastered", mastery[k]);
                if !unlocked_by.is_empty() {
                    r.push_str(&format!(" (after {})", positions(&unlocked_by)));
                }
                r
            } else {
                format!("continues {} ({} of {} for this skill)", skill.name, j + 1, take)
            };
            let closeness = if choice.distance <= best_distance {
                "closest to".to_owned()
            } else {
                format!("within {} of the closest to", request.difficulty_tolerance)
            };
            let aim = match request.difficulty {
                None => match learner.theta_se {
                    Some(se) => format!("your ability {:.2} ± {:.2}", learner.theta, se),
                    None => format!("your ability {:.2}", learner.theta),
                },
                Some(TargetDifficulty::Value(_)) => format!("the requested difficulty {target:.2}"),
                Some(level) => {
                    let name = match level {
                        TargetDifficulty::Easy => "easy",
                        TargetDifficulty::Hard => "hard",
                        _ => "medium",
                    };
                    format!("the {name} target {target:.2} (ability {:.2})", learner.theta)
                }
            };
            reason.push_str(&format!("; difficulty {:.2} {closeness} {aim}", content.difficulty));
            if !request.preferred_formats.is_empty() {
                if choice.preferred {
                    reason.push_str(&format!("; preferred format {}", content.format));
                } else {
                    reason.push_str("; no preferred format near this difficulty");
                }
            }
            used.insert(choice.index);
            steps.push(PathStep {
                position: steps.len() + 1,
                skill: skill.id.clone(),
                skill_name: skill.name.clone(),
                mastery: mastery[k],
                content: content.clone(),
                target_difficulty: target,
                preferred_format: choice.preferred,
                unlocked_by: unlocked_by.clone(),
                reason,
            });
        }
        mastered_now[k] = true;
        mastered_at[k] = Some(steps.len());
    }

    let mut blocked = Vec::new();
    let mut mastered = Vec::new();
    for &k in &by_id {
        if !in_scope[k] {
            continue;
        }
        if initially_mastered[k] {
            mastered.push(status(k));
            continue;
        }
        let missing: Vec<usize> = course.prerequisites[k].iter().copied().filter(|&p| !initially_mastered[p]).collect();
        if missing.is_empty() {
            continue;
        }
        let unlocked_at_step =
            missing.iter().map(|&p| mastered_at[p]).collect::<Option<Vec<usize>>>().and_then(|v| v.into_iter().max());
        blocked.push(BlockedSkill {
            skill: course.skills[k].id.clone(),
            name: course.skills[k].name.clone(),
            mastery: mastery[k],
            missing: missing
                .iter()
                .map(|&p| MissingPrerequisite {
                    skill: course.skills[p].id.clone(),
                    name: course.skills[p].name.clone(),
                    mastery: mastery[p],
                })
                .collect(),
            unlocked_at_step,
        });
    }
    // studiable at the end of the path, but nothing left to study
    let mut without_content: Vec<usize> = (0..n)
        .filter(|&k| {
            in_scope[k]
                && !mastered_now[k]
                && course.prerequisites[k].iter().all(|&p| mastered_now[p])
                && available(k, &used).is_empty()
        })
        .collect();
    without_content
        .sort_by(|&x, &y| mastery[x].total_cmp(&mastery[y]).then(course.skills[x].id.cmp(&course.skills[y].id)));
    let total_minutes = steps.iter().map(|s| s.content.duration_minutes).sum();
    Ok(LearningPath {
        steps,
        total_minutes,
        blocked,
        mastered,
        without_content: without_content.into_iter().map(status).collect(),
    })
}

struct Ranked {
    index: usize,
    distance: f64,
    preferred: bool,
}

/// Content of one skill in recommendation order: within `tolerance` of the
/// closest difficulty first (by format preference, distance, id), then the
/// rest (by distance, id).
fn rank_content(course: &Course, available: &[usize], target: f64, request: &RecommendRequest) -> Vec<Ranked> {
    let pref_rank = |f: ContentFormat| {
        request.preferred_formats.iter().position(|&p| p == f).unwrap_or(request.preferred_formats.len())
    };
    let mut ranked: Vec<(Ranked, usize)> = available
        .iter()
        .map(|&i| {
            let c = &course.content[i];
            let rank = pref_rank(c.format);
            (
                Ranked {
                    index: i,
                    distance: (c.difficulty - target).abs(),
                    preferred: rank < request.preferred_formats.len(),
                },
                rank,
            )
        })
        .collect();
    let best = ranked.iter().map(|(r, _)| r.distance).fold(f64::INFINITY, f64::min);
    // a small relative slack so that a tolerance of 0.1 admits 0.3 − 0.2
    let band = best + request.difficulty_tolerance * (1.0 + 1e-9) + 1e-12;
    ranked.sort_by(|(x, xr), (y, yr)| {
        let xin = x.distance <= band;
        let yin = y.distance <= band;
        yin.cmp(&xin)
            .then_with(|| if xin && yin { xr.cmp(yr) } else { std::cmp::Ordering::Equal })
            .then(x.distance.total_cmp(&y.distance))
            .then_with(|| course.content[x.index].id.cmp(&course.content[y.index].id))
    });
    ranked.into_iter().map(|(r, _)| r).collect()
}
