//! The MCP face of the module: tools, `learning://` resources and the xAPI
//! routes, over the [`Service`].
//!
//! Who may do what (the pipeline has already decided that the caller may
//! call the tool at all): principals with the role `admin` or `teacher`
//! act on any learner of their own tenant and see its analytics; anyone
//! else is a learner and acts only on `userId == subject`. Configuration,
//! imports and refits are for `admin`. A refusal is decided before any
//! lookup, so it never tells whether another learner exists; an id of
//! another tenant (or another learner's assessment) reads exactly like an
//! unknown one.

use std::sync::Arc;

use plexus_core::spec::{ResourceTemplateSpec, RouteSpec};
use plexus_core::{CallContext, Module, Principal, ResourceContents, ResourceSpec, TenantId, ToolDef, ToolError};
use plexus_core::{ToolOutput, ToolSpec, Toolbox};
use plexus_store::Store;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{ItemContent, parse_bank};
use crate::error::LearningError;
use crate::graph::Course;
use crate::service::{DemoSummary, Service, SkillFit, Usage, check_content};
use crate::settings::{LearningSettings, TenantConfig, TenantConfigPatch, TierLimits};

mod analytics;
mod assess;
mod progress;
mod xapi;

/// The module's name.
pub const NAME: &str = "learning";

/// The course outline resource.
pub const COURSE_URI: &str = "learning://course";

/// A learner's progress: `learning://learners/{userId}/progress`.
pub const PROGRESS_TEMPLATE: &str = "learning://learners/{userId}/progress";

/// The role that may use the xAPI statement resource besides teachers and
/// administrators (learning record store clients).
pub const XAPI_ROLE: &str = "xapi";

pub(crate) fn is_admin(p: &Principal) -> bool {
    p.has_role("admin")
}

pub(crate) fn is_staff(p: &Principal) -> bool {
    is_admin(p) || p.has_role("teacher")
}

/// A user id as a caller gives it: 1 to 256 characters, no control
/// characters.
pub(crate) fn check_user(field: &str, user: &str) -> Result<(), LearningError> {
    let n = user.chars().count();
    if n == 0 || n > 256 || user.chars().any(char::is_control) || user.trim().is_empty() {
        return Err(LearningError::Invalid(format!(
            "{field}: a learner id is 1 to 256 characters without control characters"
        )));
    }
    Ok(())
}

/// May the caller act on learner `user`? Staff on anyone of their tenant,
/// a learner on themselves. Decided before anything is looked up.
pub(crate) fn may_act_on(cx: &CallContext, user: &str) -> Result<(), LearningError> {
    check_user("userId", user)?;
    let p = &cx.principal;
    if is_staff(p) || p.subject == user {
        Ok(())
    } else {
        Err(LearningError::Forbidden(format!(
            "forbidden: learners act only on their own record (userId must be `{}`); teachers and \
             administrators act on any learner",
            p.subject
        )))
    }
}

fn admin_only(cx: &CallContext, what: &str) -> Result<(), LearningError> {
    if is_admin(&cx.principal) {
        Ok(())
    } else {
        Err(LearningError::Forbidden(format!("forbidden: {what} is for administrators")))
    }
}

fn staff_only(cx: &CallContext, what: &str) -> Result<(), LearningError> {
    if is_staff(&cx.principal) {
        Ok(())
    } else {
        Err(LearningError::Forbidden(format!("forbidden: {what} is for teachers and administrators")))
    }
}

fn tenant(cx: &CallContext) -> &TenantId {
    &cx.principal.tenant
}

// ----------------------------------------------------------- settings

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// A tenant's configuration, limits and usage.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SettingsView {
    tenant: String,
    /// The tier whose limits apply.
    tier: String,
    limits: TierLimits,
    usage: Usage,
    /// The configuration in force.
    settings: TenantConfig,
    /// Changes so far (0: the defaults).
    version: i64,
    updated_at: Option<String>,
    updated_by: Option<String>,
    /// The xAPI account home page of this tenant's learners.
    home_page: String,
    /// Fields this call changed (camelCase), for `configure_learning`.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<Vec<String>>,
}

async fn settings_view(
    svc: &Service,
    t: &TenantId,
    changed: Option<Vec<String>>,
) -> Result<SettingsView, LearningError> {
    let state = svc.config(t).await?;
    let (tier, limits) = svc.limits(t).await?;
    let usage = svc.usage(t).await?;
    Ok(SettingsView {
        tenant: t.to_string(),
        tier,
        limits,
        usage,
        settings: state.config.clone(),
        version: state.version,
        updated_at: state.updated_at.clone(),
        updated_by: state.updated_by.clone(),
        home_page: svc.home(t),
        changed,
    })
}

async fn get_settings(svc: Arc<Service>, cx: CallContext, _a: NoArgs) -> Result<SettingsView, ToolError> {
    staff_only(&cx, "get_learning_settings")?;
    Ok(settings_view(&svc, tenant(&cx), None).await?)
}

async fn configure(svc: Arc<Service>, cx: CallContext, patch: TenantConfigPatch) -> Result<SettingsView, ToolError> {
    admin_only(&cx, "configure_learning")?;
    if patch.is_empty() {
        return Err(ToolError::InvalidArguments(
            "give at least one setting to change (see get_learning_settings for the current ones)".into(),
        ));
    }
    let t = tenant(&cx);
    let (_, changed) = svc.configure(t, &patch, &cx.principal.subject).await?;
    Ok(settings_view(&svc, t, Some(changed)).await?)
}

// ------------------------------------------------------------- import

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImportArgs {
    /// The course: `{"skills": [{"id", "name", "subject", "prerequisites": [...], "translations": {"ja": ...}}],
    /// "content": [{"id", "title", "skill", "difficulty", "duration_minutes", "format", "translations"}]}`
    /// (difficulty on the IRT b scale; format video, text, interactive, exercise, quiz, audio or project).
    course: Value,
    /// The item bank: CSV text (header `id,a,b[,c,d,skill,topic,name,exposure]`) or JSON (an array of items
    /// `{"id", "a", "b", "c"?, "d"?, "skill"?, "topic"?, "name"?, "exposure"?}` or `{"items": [...]}`). Items'
    /// skills must be skills of the course. Absent: no bank (no assessments).
    bank: Option<Value>,
    /// `csv` or `json` (default: CSV for text, JSON for an array or object).
    bank_format: Option<String>,
    /// What learners see of items and how answers are scored: `[{"id", "stem", "options": [...], "answer"}]`;
    /// `answer` is an option's label (A, B, ...) or text, or the expected free answer; without `answer` the
    /// caller scores responses (true/false).
    #[serde(default)]
    items: Vec<ItemContent>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ImportOutput {
    /// The catalog version (imports so far); assessments started on an
    /// earlier one cannot continue.
    version: i64,
    skills: usize,
    content: usize,
    subjects: Vec<String>,
    items: usize,
    items_with_content: usize,
    /// Items without content (learners see their name and answer true/false).
    items_without_content: usize,
}

async fn import(svc: Arc<Service>, cx: CallContext, a: ImportArgs) -> Result<ImportOutput, ToolError> {
    admin_only(&cx, "import_learning_course")?;
    let course: Course =
        serde_json::from_value(a.course).map_err(|e| ToolError::InvalidArguments(format!("course: {e}")))?;
    let bank = a.bank.as_ref().map(|b| parse_bank(b, a.bank_format.as_deref())).transpose()?;
    if a.bank.is_none() && a.bank_format.is_some() {
        return Err(ToolError::InvalidArguments("bankFormat: given without a bank".into()));
    }
    if let Some(bank) = &bank {
        for (i, item) in bank.items().iter().enumerate() {
            if !item.skill.is_empty() && course.skill(&item.skill).is_none() {
                return Err(ToolError::InvalidArguments(format!(
                    "bank: item `{}` (position {i}) assesses skill `{}`, which the course does not have",
                    item.id, item.skill
                )));
            }
        }
    }
    let content = check_content(a.items, bank.as_ref())?;
    let t = tenant(&cx);
    let version = svc.import(t, &course, bank.as_ref(), &content, &cx.principal.subject, "import").await?;
    let items = bank.as_ref().map_or(0, |b| b.len());
    Ok(ImportOutput {
        version,
        skills: course.skills().len(),
        content: course.content().len(),
        subjects: course.subjects().into_iter().map(str::to_owned).collect(),
        items,
        items_with_content: content.len(),
        items_without_content: items - content.len(),
    })
}

// ---------------------------------------------------------------- fit

#[derive(Debug, Serialize, JsonSchema)]
struct FitOutput {
    /// Per skill answered on: the parameters now in force.
    skills: Vec<SkillFit>,
}

async fn fit(svc: Arc<Service>, cx: CallContext, _a: NoArgs) -> Result<FitOutput, ToolError> {
    admin_only(&cx, "fit_mastery_model")?;
    Ok(FitOutput { skills: svc.refit(tenant(&cx)).await? })
}

// ------------------------------------------------------------- module

/// The learning module.
pub struct Learning {
    tools: Toolbox,
    svc: Arc<Service>,
}

impl std::fmt::Debug for Learning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learning").field("service", &self.svc).finish_non_exhaustive()
    }
}

macro_rules! with_svc {
    ($svc:expr, $f:path) => {{
        let svc = Arc::clone(&$svc);
        move |cx: CallContext, a| $f(Arc::clone(&svc), cx, a)
    }};
}

impl Learning {
    /// The module over `store` (its migrations are run here) with
    /// `settings` (validated here).
    pub async fn open(store: Store, settings: LearningSettings) -> Result<Self, LearningError> {
        let svc = Arc::new(Service::open(store, settings).await?);
        Ok(Self { tools: toolbox(&svc), svc })
    }

    /// Tell other nodes, and hear from them, when a tenant's cached state
    /// changes ([`Service::follow`]).
    pub fn follow(&self, bus: &plexus_core::bus::Bus) {
        self.svc.follow(bus);
    }

    /// Load the seeded demo into `tenant` (see [`Service::seed_demo`]);
    /// idempotent per tenant.
    pub async fn seed_demo(&self, tenant: &TenantId, seed: u64, learners: usize) -> Result<DemoSummary, LearningError> {
        self.svc.seed_demo(tenant, seed, learners).await
    }

    /// The service behind the tools.
    pub fn service(&self) -> &Arc<Service> {
        &self.svc
    }
}

fn toolbox(svc: &Arc<Service>) -> Toolbox {
    Toolbox::new(NAME)
        .typed(
            ToolDef::new(
                "track_learning_progress",
                "Record a learner's activity (content completed with the time spent, an item or skill answered \
                 with success, score and time, or a raw xAPI statement) as an xAPI statement, and update the \
                 learner's mastery of the skill (Bayesian Knowledge Tracing); returns the statement id and \
                 the mastery",
            )
            .title("Track learning progress"),
            with_svc!(svc, progress::track),
        )
        .typed(
            ToolDef::new(
                "generate_assessment",
                "Start an assessment for a learner on a topic (a skill, a subject or `all`): `adaptive` \
                 (computerized adaptive testing until the target standard error or the item limit), \
                 `diagnostic` (every skill of the topic) or `practice` (fixed length at a target difficulty); \
                 returns the assessment id and the first item",
            )
            .title("Generate an assessment"),
            with_svc!(svc, assess::generate),
        )
        .typed(
            ToolDef::new(
                "submit_assessment_response",
                "Answer the item an assessment presents: scores it, updates the ability estimate (EAP) and its \
                 standard error and the learner's mastery, and returns the next item or the final estimate \
                 with the items used and why the assessment stopped",
            )
            .title("Submit an assessment response"),
            with_svc!(svc, assess::submit),
        )
        .typed(
            ToolDef::new(
                "get_personalized_content",
                "The next content for a learner in a subject: the least-mastered skills whose prerequisites \
                 are mastered, at a difficulty matched to the learner's ability (or the one asked for), \
                 preferring formats that suit the learning style; a learning path with durations and reasons",
            )
            .title("Get personalized content")
            .read_only(),
            with_svc!(svc, progress::personalized),
        )
        .typed(
            ToolDef::new(
                "get_learning_recommendations",
                "A learner's recommended learning path across the whole course, with estimated duration, the \
                 reason for each step, skills blocked by missing prerequisites, and the assessment to take next",
            )
            .title("Get learning recommendations")
            .read_only(),
            with_svc!(svc, progress::recommendations),
        )
        .typed(
            ToolDef::new(
                "analyze_learning_data",
                "Learning analytics of a learner, the cohort or the course: completion rates, mastery \
                 distribution per skill, time on task, at-risk learners with reasons, and item statistics \
                 (p-values, point-biserial) for authors",
            )
            .title("Analyze learning data")
            .read_only(),
            with_svc!(svc, analytics::analyze),
        )
        .typed(
            ToolDef::new(
                "get_learning_settings",
                "The tenant's learning configuration (assessment, content, analytics and branding settings), \
                 its tier limits and its usage",
            )
            .title("Get learning settings")
            .read_only()
            .idempotent(),
            with_svc!(svc, get_settings),
        )
        .typed(
            ToolDef::new(
                "configure_learning",
                "Change some of the tenant's learning settings (administrators): give only what changes; \
                 the whole configuration is validated and nothing changes on error",
            )
            .title("Configure learning"),
            with_svc!(svc, configure),
        )
        .typed(
            ToolDef::new(
                "import_learning_course",
                "Replace the tenant's course (skills with prerequisites, content), item bank (CSV or JSON, \
                 IRT 2PL/3PL parameters) and item content (stems, options, keys) (administrators); nothing is \
                 stored on error",
            )
            .title("Import a course")
            .destructive(true),
            with_svc!(svc, import),
        )
        .typed(
            ToolDef::new(
                "fit_mastery_model",
                "Refit the Bayesian Knowledge Tracing parameters of every skill by expectation maximization \
                 from the tenant's answers (administrators); they also refit by themselves as answers accrue",
            )
            .title("Fit the mastery model")
            .idempotent(),
            with_svc!(svc, fit),
        )
        .typed(
            ToolDef::new(
                "xapi_post_statements",
                "Store xAPI 1.0.3 statements (one or an array, all or none; the xAPI POST /xapi/statements); \
                 statements about this tenant's learners and activities update their mastery",
            )
            .title("xAPI: post statements"),
            with_svc!(svc, xapi::post),
        )
        .typed(
            ToolDef::new(
                "xapi_put_statement",
                "Store one xAPI statement under a given id (the xAPI PUT /xapi/statements?statementId=...)",
            )
            .title("xAPI: put a statement")
            .idempotent(),
            with_svc!(svc, xapi::put),
        )
        .typed(
            ToolDef::new(
                "xapi_get_statements",
                "Read xAPI statements: one by statementId or voidedStatementId, or a filtered page (agent, \
                 verb, activity, registration, since, until, limit, ascending, format) with a `more` link \
                 (the xAPI GET /xapi/statements)",
            )
            .title("xAPI: get statements")
            .read_only(),
            with_svc!(svc, xapi::get),
        )
}

#[async_trait::async_trait]
impl Module for Learning {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        vec![
            ResourceSpec::new(COURSE_URI, "course")
                .title("Course outline")
                .description("The tenant's course: skills with prerequisites and translations, content, subjects")
                .mime_type("application/json"),
        ]
    }

    fn resource_templates(&self) -> Vec<ResourceTemplateSpec> {
        vec![
            ResourceTemplateSpec::new(PROGRESS_TEMPLATE, "learner progress")
                .description("A learner's ability, mastery per skill and completed content (your own, or any learner for teachers)")
                .mime_type("application/json"),
        ]
    }

    fn routes(&self) -> Vec<RouteSpec> {
        xapi::routes()
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        self.tools.call(cx, tool, args).await
    }

    async fn read(&self, cx: &CallContext, uri: &str) -> Result<ResourceContents, ToolError> {
        progress::read_resource(&self.svc, cx, uri).await
    }
}
