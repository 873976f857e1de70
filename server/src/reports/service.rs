//! The report service: who sees and changes reports, and working a report out for a time range. Everyone who may
//! view lists and runs every report, and a run shows only what the runner may see; engineers and admins make and
//! change them. Tables are computed from the time-series store's bucket aggregates (its rollups), never from raw
//! readings pulled into memory.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use app::alarms::{AlarmQuery, AlarmSummary, StateFilter, MAX_LIST};
use app::assets::{AssetSummary, EffectiveAttribute, TemplateView};
use app::auth::{Actor, Permission, Scope};
use app::charts::{SeriesRef, TrendQuery};
use app::error::{AppError, ErrorKind};
use app::reports::{
    Aggregate, Period, RenderedReport, RenderedSection, ReportRange, ReportRun, ReportSchedule, ReportScope,
    ReportSection, ReportSpec, ReportView, RunStatus, TableColumn, TableRow,
};
use app::services::{ChartsService, ModelService, ReportsService};
use app::timeseries::Bucket;
use serde_json::json;

use super::period;
use super::runs::{NewRun, RunEnd, RunFiles, RunRow, RunStore};
use super::store::{no_report, ReportRow, ReportStore};
use crate::alarms::Alarms;
use crate::assets::{shown_path, Model};
use crate::auth::{Accounts, AuditLog};
use crate::charts::Charts;
use crate::config::ReportsConfig;
use crate::metadata::now_ms;
use crate::timeseries::{TimeRange, Timeseries};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// The most assets one run reports on.
const MAX_ASSETS: usize = 5_000;
/// A trend section's width in pixels: the store is asked for about a value per pixel, and the writers scale
/// the picture to their page.
pub const TREND_WIDTH: u32 = 1000;
pub const TREND_HEIGHT: u32 = 360;

pub struct Reports {
    store: Arc<dyn ReportStore>,
    audit: AuditLog,
    model: Arc<Model>,
    timeseries: Arc<Timeseries>,
    charts: Arc<Charts>,
    alarms: Arc<Alarms>,
    accounts: Arc<Accounts>,
    runs: Arc<dyn RunStore>,
    files: RunFiles,
    config: ReportsConfig,
    /// This instance's name in run claims.
    holder: String,
    /// Wakes this instance's worker when a run is queued here.
    wake: Notify,
}

/// What a report reads besides its own definitions, and where its runs go.
pub struct ReportSources {
    pub model: Arc<Model>,
    pub timeseries: Arc<Timeseries>,
    pub charts: Arc<Charts>,
    pub alarms: Arc<Alarms>,
    pub accounts: Arc<Accounts>,
    pub runs: Arc<dyn RunStore>,
    pub files: RunFiles,
    pub config: ReportsConfig,
    pub holder: String,
}

/// A run's progress as its sections are worked out, and whether it should stop.
#[derive(Default)]
pub struct RunWatch {
    /// 0 to 100.
    pub progress: AtomicU8,
    pub stop: AtomicBool,
}

impl RunWatch {
    /// Sections take the first 80 % of a run; the files the rest.
    fn section_done(&self, done: usize, total: usize) -> Result<(), AppError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(AppError::new(ErrorKind::Conflict, "the run was cancelled"));
        }
        self.progress.store((done * 80 / total.max(1)) as u8, Ordering::Relaxed);
        Ok(())
    }
}

/// A file name for a report: its name with anything but letters, digits and `-` as `_`.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

fn to_app(err: crate::error::ApiError) -> AppError {
    err.into_app_error()
}

/// The owner id of an actor: none for the command line, which is nobody in particular.
fn owner_id(actor: &Actor) -> Option<i64> {
    (actor.user_id > 0).then_some(actor.user_id)
}

impl Reports {
    pub fn new(store: Arc<dyn ReportStore>, audit: AuditLog, sources: ReportSources) -> Self {
        Reports {
            store,
            audit,
            model: sources.model,
            timeseries: sources.timeseries,
            charts: sources.charts,
            alarms: sources.alarms,
            accounts: sources.accounts,
            runs: sources.runs,
            files: sources.files,
            config: sources.config,
            holder: sources.holder,
            wake: Notify::new(),
        }
    }

    fn view(actor: &Actor, row: ReportRow) -> ReportView {
        ReportView {
            id: row.id,
            owner: row.owner,
            spec: row.spec,
            version: row.version,
            updated_at: row.updated_at,
            can_edit: actor.role.allows(Permission::EditModel),
        }
    }

    async fn row(&self, actor: &Actor, id: i64) -> Result<ReportRow, AppError> {
        actor.require(Permission::View)?;
        self.store.by_id(id).await.map_err(to_app)?.ok_or_else(no_report)
    }

    /// The spec as written, its time zone known and its schedule a cron pattern.
    fn check(spec: &ReportSpec) -> Result<(), AppError> {
        spec.validate()?;
        period::zone(&spec.time_zone)?;
        if let Some(schedule) = &spec.schedule {
            cron(&schedule.cron)?;
        }
        Ok(())
    }

    async fn record(&self, actor: &Actor, action: &str, id: i64, diff: serde_json::Value) -> Result<(), AppError> {
        self.audit
            .record(Some(actor), action, "report", Some(id.to_string()), diff)
            .await
    }

    /// The demo plant's report (`gantry serve --demo`): North Plant's first line yesterday, per pump, a trend of two
    /// pumps and the day's alarms, run every morning; made once.
    pub async fn seed_demo(&self, actor: &Actor) -> Result<(), AppError> {
        let spec = ReportSpec {
            // Every morning at 06:05 (UTC), for the day before.
            schedule: Some(ReportSchedule {
                cron: "5 6 * * *".into(),
            }),
            name: "North Plant, Line 1 daily".into(),
            scope: ReportScope {
                under: "/North Plant/Line 1".into(),
                template: None,
            },
            range: ReportRange::Last { period: Period::Day },
            time_zone: "UTC".into(),
            sections: vec![
                ReportSection::Text {
                    heading: "{scope}, {from} to {to}".into(),
                    body: "Flow and discharge pressure of each pump over the day; generated {generated_at}.".into(),
                },
                ReportSection::Table {
                    title: "Pumps over the day".into(),
                    attributes: vec!["flow".into(), "discharge pressure".into()],
                    aggregates: vec![Aggregate::Average, Aggregate::Min, Aggregate::Max],
                    interval: None,
                },
                ReportSection::Trend {
                    title: "Flow of pumps 1 and 2".into(),
                    series: ["Pump 1", "Pump 2"]
                        .map(|pump| SeriesRef::new(format!("/North Plant/Line 1/{pump}"), "flow"))
                        .to_vec(),
                },
                ReportSection::Alarms {
                    title: "Alarms of the day".into(),
                },
            ],
        };
        let exists = self
            .store
            .list()
            .await
            .map_err(to_app)?
            .iter()
            .any(|r| r.spec.name == spec.name);
        if !exists {
            self.create_report(actor, spec).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ReportsService for Reports {
    async fn reports(&self, actor: &Actor) -> Result<Vec<ReportView>, AppError> {
        actor.require(Permission::View)?;
        let rows = self.store.list().await.map_err(to_app)?;
        Ok(rows.into_iter().map(|row| Self::view(actor, row)).collect())
    }

    async fn report(&self, actor: &Actor, id: i64) -> Result<ReportView, AppError> {
        Ok(Self::view(actor, self.row(actor, id).await?))
    }

    async fn create_report(&self, actor: &Actor, spec: ReportSpec) -> Result<ReportView, AppError> {
        actor.require(Permission::EditModel)?;
        Self::check(&spec)?;
        let mut row = ReportRow {
            id: 0,
            owner_id: owner_id(actor),
            owner: actor.username.clone(),
            spec,
            updated_at: now_ms(),
            version: 1,
        };
        row.id = self.store.insert(&row).await.map_err(to_app)?;
        self.record(actor, "report.create", row.id, json!({ "to": row.spec }))
            .await?;
        Ok(Self::view(actor, row))
    }

    /// Replaces a report's definition; with `expected`, refused (409) unless it is still at that version.
    async fn update_report(
        &self,
        actor: &Actor,
        id: i64,
        spec: ReportSpec,
        expected: Option<i64>,
    ) -> Result<ReportView, AppError> {
        actor.require(Permission::EditModel)?;
        let mut row = self.row(actor, id).await?;
        Self::check(&spec)?;
        let before = std::mem::replace(&mut row.spec, spec);
        row.updated_at = now_ms();
        row.version = self.store.update(&row, expected).await.map_err(to_app)?;
        self.record(actor, "report.update", id, json!({ "from": before, "to": row.spec }))
            .await?;
        Ok(Self::view(actor, row))
    }

    async fn delete_report(&self, actor: &Actor, id: i64) -> Result<(), AppError> {
        actor.require(Permission::EditModel)?;
        let row = self.row(actor, id).await?;
        self.store.delete(id).await.map_err(to_app)?;
        self.record(actor, "report.delete", id, json!({ "from": row.spec }))
            .await
    }

    /// The report worked out for `range` (`[from, to)` in ms; none: its own range as of now), with only what
    /// the actor may see.
    async fn render_report(
        &self,
        actor: &Actor,
        id: i64,
        range: Option<(i64, i64)>,
    ) -> Result<RenderedReport, AppError> {
        let row = self.row(actor, id).await?;
        self.render_row(actor, row, range, &RunWatch::default()).await
    }

    async fn start_run(&self, actor: &Actor, id: i64, range: Option<(i64, i64)>) -> Result<ReportRun, AppError> {
        let row = self.row(actor, id).await?;
        let zone = period::zone(&row.spec.time_zone)?;
        let now = now_ms();
        let (from, to) = match range {
            Some(range) => range,
            None => period::resolve(row.spec.range, &zone, now)?,
        };
        TimeRange::new(from, to).map_err(|e| AppError::bad_request(e.to_string()).for_field("range"))?;
        let run = NewRun {
            report_id: id,
            requested_by: owner_id(actor),
            requester: actor.username.clone(),
            scheduled_for: None,
            from,
            to,
            now,
        };
        let run_id = self.runs.insert(&run).await.map_err(to_app)?.ok_or_else(|| {
            crate::error::ApiError::Internal(anyhow::anyhow!("a run asked for (no due time) was not inserted"))
                .into_app_error()
        })?;
        tracing::info!(report = id, run = run_id, "A report run was queued.");
        self.wake.notify_one();
        self.run(actor, id, run_id).await
    }

    async fn runs(&self, actor: &Actor, id: i64) -> Result<Vec<ReportRun>, AppError> {
        self.row(actor, id).await?;
        let rows = self.runs.list(id, 50).await.map_err(to_app)?;
        Ok(rows.into_iter().map(|r| r.run).collect())
    }

    async fn run(&self, actor: &Actor, id: i64, run: i64) -> Result<ReportRun, AppError> {
        Ok(self.run_row(actor, id, run).await?.1.run)
    }

    async fn cancel_run(&self, actor: &Actor, id: i64, run: i64) -> Result<ReportRun, AppError> {
        let (_, row) = self.run_row(actor, id, run).await?;
        let own = row.requested_by.is_some_and(|by| by == actor.user_id);
        if !own {
            actor.require(Permission::EditModel)?;
        }
        if !self.runs.cancel(run, now_ms()).await.map_err(to_app)? {
            return Err(AppError::new(
                ErrorKind::Conflict,
                format!("the run is {} already", row.run.status.as_str()),
            ));
        }
        tracing::info!(report = id, run, by = %actor.username, "A report run was cancelled.");
        self.run(actor, id, run).await
    }
}

impl Reports {
    /// Report `id` and one of its runs, if both exist and the actor may see the report.
    async fn run_row(&self, actor: &Actor, id: i64, run: i64) -> Result<(ReportRow, RunRow), AppError> {
        let report = self.row(actor, id).await?;
        match self.runs.get(run).await.map_err(to_app)? {
            Some(row) if row.run.report_id == id => Ok((report, row)),
            _ => Err(AppError::not_found("the report has no such run")),
        }
    }

    /// A finished run's file of `format` and the name to download it as. Only the one it ran as may take it (it
    /// holds what they may see), or someone who may see the whole plant.
    pub async fn run_file(
        &self,
        actor: &Actor,
        id: i64,
        run: i64,
        format: &str,
    ) -> Result<(PathBuf, String), AppError> {
        let (report, row) = self.run_row(actor, id, run).await?;
        let ran_as = row.requested_by.or(report.owner_id);
        if actor.scope != Scope::Everything && ran_as != Some(actor.user_id) {
            return Err(AppError::forbidden(
                "this run holds what the one it ran as may see: run the report yourself",
            ));
        }
        if row.run.status != RunStatus::Done {
            return Err(AppError::new(
                ErrorKind::Conflict,
                format!(
                    "the run is {}; its files are there once it is done",
                    row.run.status.as_str()
                ),
            ));
        }
        if !row.run.formats.iter().any(|f| f == format) {
            return Err(AppError::not_found(format!("the run has no {format} file")));
        }
        let stem = file_stem(&report.spec.name);
        Ok((self.files.file(run, &stem, format), format!("{stem}.{format}")))
    }

    /// The report worked out for `range` (none: its own range as of now), as `actor`; `watch` hears of each
    /// section done and can stop it between sections.
    pub(super) async fn render_row(
        &self,
        actor: &Actor,
        row: ReportRow,
        range: Option<(i64, i64)>,
        watch: &RunWatch,
    ) -> Result<RenderedReport, AppError> {
        let spec = row.spec;
        let zone = period::zone(&spec.time_zone)?;
        let generated_at = now_ms();
        let (from, to) = match range {
            Some(range) => range,
            None => period::resolve(spec.range, &zone, generated_at)?,
        };
        let time = TimeRange::new(from, to).map_err(|e| AppError::bad_request(e.to_string()).for_field("range"))?;
        let lineage = self.model.lineage_at(&spec.scope.under).await?;
        let Some(&(root, _)) = lineage.last() else {
            return Err(AppError::new(
                ErrorKind::Unprocessable,
                format!("the report's scope {:?} names no asset", spec.scope.under),
            )
            .for_field("scope"));
        };
        let templates = self.model.list_templates(actor).await?;
        let parts = self.parts(actor, root, &lineage).await?;
        let assets = self.assets_in_scope(actor, &parts).await?;
        let assets = of_template(assets, spec.scope.template.as_deref(), &templates);
        let attributes: HashMap<&str, &[EffectiveAttribute]> = templates
            .iter()
            .map(|t| (t.spec.name.as_str(), t.effective_attributes.as_slice()))
            .collect();
        // A runner granted only parts below the scope is not shown the scope's name.
        let ids: Vec<i64> = lineage.iter().map(|(id, _)| *id).collect();
        let scope = if actor.scope.includes(&ids) {
            shown_path(actor, &lineage)
        } else {
            "(within your grants)".to_string()
        };
        let fill = |text: &str| {
            text.replace("{scope}", &scope)
                .replace("{from}", &period::iso(from, &zone))
                .replace("{to}", &period::iso(to, &zone))
                .replace("{generated_at}", &period::iso(generated_at, &zone))
        };
        let mut sections = Vec::with_capacity(spec.sections.len());
        let total = spec.sections.len();
        for (done, section) in spec.sections.iter().enumerate() {
            watch.section_done(done, total)?;
            sections.push(match section {
                ReportSection::Text { heading, body } => RenderedSection::Text {
                    heading: fill(heading),
                    body: fill(body),
                },
                ReportSection::Table {
                    title,
                    attributes: wanted,
                    aggregates,
                    interval,
                } => {
                    let cuts = match interval {
                        Some(interval) => period::boundaries(from, to, *interval, &zone)?,
                        None => vec![from, to],
                    };
                    self.table(fill(title), &assets, &attributes, wanted, aggregates, &cuts, time)
                        .await?
                }
                ReportSection::Trend { title, series } => self.trend(actor, fill(title), series, time).await?,
                ReportSection::Alarms { title } => RenderedSection::Alarms {
                    title: fill(title),
                    summary: self.alarm_summary(actor, &parts, time).await?,
                },
            });
        }
        Ok(RenderedReport {
            name: spec.name,
            scope,
            from,
            to,
            time_zone: zone.iana_name().unwrap_or(&spec.time_zone).to_string(),
            generated_at,
            sections,
        })
    }
}

impl Reports {
    /// The subtrees of the scope the actor may see: the scope's root, or, for an actor granted only parts below
    /// it, each of those parts.
    async fn parts(&self, actor: &Actor, root: i64, lineage: &[(i64, String)]) -> Result<Vec<i64>, AppError> {
        let ids: Vec<i64> = lineage.iter().map(|(id, _)| *id).collect();
        match &actor.scope {
            Scope::Subtrees(granted) if !actor.scope.includes(&ids) => {
                let mut parts = Vec::new();
                for &grant in granted {
                    let above = self.model.lineage(grant).await?;
                    if above.iter().any(|(id, _)| *id == root) {
                        parts.push(grant);
                    }
                }
                Ok(parts)
            }
            _ => Ok(vec![root]),
        }
    }

    /// The assets of `parts` that the actor may see, by path.
    async fn assets_in_scope(&self, actor: &Actor, parts: &[i64]) -> Result<Vec<AssetSummary>, AppError> {
        let mut assets = Vec::new();
        for &part in parts {
            assets.extend(self.model.subtree(actor, part).await?);
        }
        if assets.len() > MAX_ASSETS {
            return Err(AppError::new(
                ErrorKind::Unprocessable,
                format!("a report covers at most {MAX_ASSETS} assets; narrow its scope or name a template"),
            )
            .for_field("scope"));
        }
        assets.sort_by(|a, b| a.path.cmp(&b.path));
        assets.dedup_by_key(|a| a.id);
        Ok(assets)
    }

    /// A trend of the series the actor may see (the others are counted, not named).
    async fn trend(
        &self,
        actor: &Actor,
        title: String,
        series: &[SeriesRef],
        time: TimeRange,
    ) -> Result<RenderedSection, AppError> {
        let mut visible = Vec::with_capacity(series.len());
        for one in series {
            match self.model.asset_by_path(actor, &one.asset).await {
                Ok(_) => visible.push(one.clone()),
                Err(err) if matches!(err.code, ErrorKind::NotFound | ErrorKind::Forbidden) => {}
                Err(err) => return Err(err),
            }
        }
        let hidden = (series.len() - visible.len()) as u32;
        let trend = if visible.is_empty() {
            app::charts::Trend {
                from: time.from,
                to: time.to,
                series: Vec::new(),
                alarms: Vec::new(),
            }
        } else {
            let query = TrendQuery {
                series: visible,
                from: time.from,
                to: time.to,
                width: TREND_WIDTH,
            };
            self.charts.trend(actor, &query).await.map_err(|err| {
                // A series naming a static attribute or one the asset lacks: the definition is at fault.
                if matches!(err.code, ErrorKind::NotFound | ErrorKind::Unprocessable) {
                    AppError::new(ErrorKind::Unprocessable, format!("a trend section: {}", err.message))
                        .for_field("sections")
                } else {
                    err
                }
            })?
        };
        Ok(RenderedSection::Trend { title, trend, hidden })
    }

    /// The ISA-18.2 summary of the alarms raised in `parts` over the range, within the actor's grants, with the
    /// alarms active now that stood through the range's end.
    async fn alarm_summary(&self, actor: &Actor, parts: &[i64], time: TimeRange) -> Result<AlarmSummary, AppError> {
        let (mut raised, mut active, mut capped) = (Vec::new(), Vec::new(), false);
        for &part in parts {
            let query = |state, from, to| AlarmQuery {
                state,
                subtree: Some(part),
                from,
                to,
                limit: Some(MAX_LIST),
                ..AlarmQuery::default()
            };
            let some = self
                .alarms
                .query(actor, query(StateFilter::All, Some(time.from), Some(time.to)))
                .await?;
            capped |= some.len() >= MAX_LIST as usize;
            raised.extend(some);
            let standing_since = Some(time.to - AlarmSummary::STANDING_MS);
            active.extend(
                self.alarms
                    .query(actor, query(StateFilter::Active, None, standing_since))
                    .await?,
            );
        }
        // Grants may nest: an occurrence counts once.
        raised.sort_by_key(|a| a.id);
        raised.dedup_by_key(|a| a.id);
        Ok(AlarmSummary::of(&raised, &active, time.from, time.to, capped))
    }

    /// A table: a row per asset that has any of the attributes, and per piece between `cuts`.
    #[allow(clippy::too_many_arguments)]
    async fn table(
        &self,
        title: String,
        assets: &[AssetSummary],
        attributes: &HashMap<&str, &[EffectiveAttribute]>,
        wanted: &[String],
        aggregates: &[Aggregate],
        cuts: &[i64],
        time: TimeRange,
    ) -> Result<RenderedSection, AppError> {
        let width = [HOUR, MINUTE, 1_000]
            .into_iter()
            .find(|width| cuts.iter().all(|cut| cut % width == 0))
            .unwrap_or(1);
        let mut units: Vec<Option<String>> = vec![None; wanted.len()];
        let mut rows = Vec::new();
        let registry = self.timeseries.registry();
        let store = self.timeseries.store();
        for asset in assets {
            let defined = asset
                .template
                .as_deref()
                .and_then(|t| attributes.get(t))
                .copied()
                .unwrap_or_default();
            let found: Vec<Option<&EffectiveAttribute>> = wanted
                .iter()
                .map(|name| {
                    defined
                        .iter()
                        .find(|a| a.attribute.name == *name && a.attribute.is_series)
                })
                .collect();
            if found.iter().all(Option::is_none) {
                continue;
            }
            // Per attribute, the folded buckets of each piece.
            let mut pieces: Vec<Vec<Option<Folded>>> = Vec::with_capacity(wanted.len());
            for (i, attribute) in found.iter().enumerate() {
                let mut folded = vec![None; cuts.len() - 1];
                if let Some(attribute) = attribute {
                    units[i] = units[i].take().or_else(|| attribute.attribute.unit.clone());
                    if let Some(series) = registry
                        .find(asset.id, &attribute.attribute.name)
                        .await
                        .map_err(to_app)?
                    {
                        let aggregated = store.read_aggregated(series, time, width).await?;
                        for bucket in &aggregated.buckets {
                            let at = bucket.start.max(time.from);
                            // The piece whose start is the last cut at or before the bucket.
                            let piece = cuts.partition_point(|cut| *cut <= at).saturating_sub(1);
                            if let Some(slot) = folded.get_mut(piece) {
                                Folded::fold(slot, bucket);
                            }
                        }
                    }
                }
                pieces.push(folded);
            }
            for (piece, window) in cuts.windows(2).enumerate() {
                let mut cells = Vec::with_capacity(wanted.len() * aggregates.len());
                for folded in &pieces {
                    for aggregate in aggregates {
                        cells.push(folded[piece].as_ref().map(|f| f.value(*aggregate)));
                    }
                }
                rows.push(TableRow {
                    asset: asset.path.clone(),
                    from: window[0],
                    to: window[1],
                    cells,
                });
            }
        }
        let columns = wanted
            .iter()
            .zip(&units)
            .flat_map(|(attribute, unit)| {
                aggregates.iter().map(move |aggregate| TableColumn {
                    attribute: attribute.clone(),
                    aggregate: *aggregate,
                    unit: unit.clone(),
                })
            })
            .collect();
        Ok(RenderedSection::Table { title, columns, rows })
    }
}

/// A schedule's cron pattern, parsed.
fn cron(pattern: &str) -> Result<croner::Cron, AppError> {
    // Its shape (five or six fields) is checked as written (400); what the fields say, here (422).
    croner::parser::CronParser::new().parse(pattern).map_err(|err| {
        AppError::new(
            ErrorKind::Unprocessable,
            format!("the schedule {pattern:?} is not a cron pattern: {err}"),
        )
        .for_field("schedule")
    })
}

/// Why an attempt at a run ended without its files.
enum RunFailure {
    /// Cancelled, or taken over by another instance: nothing more to write.
    Stopped,
    /// It cannot succeed (the report or its owner's access is gone, the definition is wrong): no retry.
    Refused(String),
    /// Something that may pass (a store that did not answer): retried.
    Broken(String),
}

impl From<AppError> for RunFailure {
    fn from(err: AppError) -> Self {
        match err.code {
            ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::TooManyRequests => {
                RunFailure::Broken(err.message)
            }
            _ => RunFailure::Refused(err.message),
        }
    }
}

impl Reports {
    /// The worker's pass: queue the runs that schedules make due, then work out queued runs one at a time until
    /// none is left for this instance.
    pub async fn work(&self) {
        if let Err(err) = self.queue_due_runs(now_ms()).await {
            tracing::warn!(error = %err.message, "Scheduled report runs could not be queued; retrying.");
        }
        loop {
            let now = now_ms();
            let claimed = self.runs.claim(&self.holder, now, crate::leases::until_ms()).await;
            match claimed {
                Ok(Some(row)) => self.execute(row).await,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "Report runs could not be claimed; retrying.");
                    return;
                }
            }
        }
    }

    /// Waits for the next pass: a second, or less when a run was queued on this instance.
    pub async fn next_pass(&self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.wake.notified()).await;
    }

    /// For each scheduled report, the latest due time at or before `now` (if none of its runs has it yet, and
    /// it is not before the schedule was set): one run, inserted so that only one instance's insert counts.
    /// Older missed due times are not run: after downtime a report runs once, for its latest due time.
    pub async fn queue_due_runs(&self, now: i64) -> Result<(), AppError> {
        for row in self.store.list().await.map_err(to_app)? {
            let Some(schedule) = &row.spec.schedule else { continue };
            let (Ok(pattern), Ok(zone)) = (cron(&schedule.cron), period::zone(&row.spec.time_zone)) else {
                continue;
            };
            let Ok(instant) = jiff::Timestamp::from_millisecond(now) else {
                continue;
            };
            let Ok(due) = pattern.find_previous_occurrence(&instant.to_zoned(zone.clone()), true) else {
                continue;
            };
            let due = due.timestamp().as_millisecond();
            if due < row.updated_at || self.runs.last_due(row.id).await.map_err(to_app)? >= Some(due) {
                continue;
            }
            let (from, to) = period::resolve(row.spec.range, &zone, due)?;
            let run = NewRun {
                report_id: row.id,
                requested_by: row.owner_id,
                requester: row.owner.clone(),
                scheduled_for: Some(due),
                from,
                to,
                now,
            };
            if let Some(id) = self.runs.insert(&run).await.map_err(to_app)? {
                tracing::info!(
                    report = row.id,
                    run = id,
                    due,
                    "A scheduled report run is due; this instance queued it."
                );
            }
        }
        Ok(())
    }

    /// Works out a claimed run: renews its claim while working (and stops if it was cancelled or taken over),
    /// writes its files, and records how it ended.
    async fn execute(&self, row: RunRow) {
        let id = row.run.id;
        let watch = Arc::new(RunWatch::default());
        let renewal = {
            let (runs, holder, watch) = (self.runs.clone(), self.holder.clone(), watch.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
                loop {
                    tick.tick().await;
                    let progress = watch.progress.load(Ordering::Relaxed);
                    let until = crate::leases::until_ms();
                    match runs.renew(id, &holder, until, progress, "working").await {
                        Ok(true) => {}
                        Ok(false) => {
                            watch.stop.store(true, Ordering::Relaxed);
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(run = id, error = %err, "A report run's claim could not be renewed.")
                        }
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let outcome = self.produce(&row, &watch).await;
        renewal.abort();
        let now = now_ms();
        let end = match outcome {
            Ok(formats) => {
                tracing::info!(
                    run = id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "A report run is done."
                );
                RunEnd::Done { formats, at: now }
            }
            Err(RunFailure::Stopped) => {
                tracing::info!(
                    run = id,
                    "A report run stopped: cancelled, or taken over by another instance."
                );
                self.files.remove(id);
                return;
            }
            Err(RunFailure::Refused(message)) => {
                tracing::warn!(run = id, %message, "A report run failed and will not be retried.");
                RunEnd::Failed { message, at: now }
            }
            Err(RunFailure::Broken(message)) if row.run.attempts + 1 < self.config.max_attempts => {
                let wait = super::runs::backoff(
                    std::time::Duration::from_millis(self.config.retry_ms),
                    row.run.attempts + 1,
                );
                tracing::warn!(run = id, %message, retry_in_ms = wait.as_millis() as u64, "A report run failed; it will be retried.");
                RunEnd::Retry {
                    message,
                    not_before: now + wait.as_millis() as i64,
                }
            }
            Err(RunFailure::Broken(message)) => {
                tracing::error!(run = id, %message, "A report run failed on its last attempt.");
                RunEnd::Failed { message, at: now }
            }
        };
        let done = matches!(end, RunEnd::Done { .. });
        match self.runs.finish(id, &self.holder, end).await {
            Ok(true) => {}
            // Cancelled as it finished, or taken over: its files are not this attempt's to offer.
            Ok(false) if done => self.files.remove(id),
            Ok(false) => {}
            Err(err) => tracing::warn!(
                run = id,
                error = %err,
                "A report run's end could not be recorded; another instance will take it over."
            ),
        }
    }

    /// The run's report, as the one it runs as, written to its folder in every format.
    async fn produce(&self, row: &RunRow, watch: &Arc<RunWatch>) -> Result<Vec<String>, RunFailure> {
        let report = self
            .store
            .by_id(row.run.report_id)
            .await
            .map_err(|e| RunFailure::Broken(e.to_string()))?
            .ok_or_else(|| RunFailure::Refused("the report was deleted".into()))?;
        // A scheduled run runs as the report's owner; one made by the command line, as the command line.
        let actor = match row.requested_by {
            Some(user) => self.accounts.actor_of_user(user, "report run").await,
            None => Ok(Actor::command_line()),
        }
        .map_err(|err| RunFailure::Refused(format!("{} no longer may run it: {}", row.run.requester, err.message)))?;
        let stem = file_stem(&report.spec.name);
        let rendered = self
            .render_row(&actor, report, Some((row.run.from, row.run.to)), watch)
            .await
            .map_err(|err| {
                if watch.stop.load(Ordering::Relaxed) {
                    RunFailure::Stopped
                } else {
                    RunFailure::from(err)
                }
            })?;
        // The files take longest: look at the run itself before writing them, not only at the last renewal.
        let current = self
            .runs
            .get(row.run.id)
            .await
            .map_err(|e| RunFailure::Broken(e.to_string()))?;
        if watch.stop.load(Ordering::Relaxed) || current.is_none_or(|r| r.run.status != RunStatus::Running) {
            return Err(RunFailure::Stopped);
        }
        let folder = self.files.folder(row.run.id);
        let files = self.files.clone();
        let id = row.run.id;
        let writing = watch.clone();
        let written = tokio::task::spawn_blocking(move || write_files(&rendered, &files, id, &stem, &writing))
            .await
            .map_err(|e| RunFailure::Broken(e.to_string()))?;
        if watch.stop.load(Ordering::Relaxed) {
            return Err(RunFailure::Stopped);
        }
        let formats = written
            .map_err(|e| RunFailure::Broken(format!("the files could not be written to {}: {e}", folder.display())))?;
        watch.progress.store(100, Ordering::Relaxed);
        Ok(formats)
    }

    /// Deletes runs (and their files) that finished more than `reports.keep_days` ago.
    pub async fn forget_old_runs(&self) -> Result<usize, AppError> {
        let before = now_ms() - i64::from(self.config.keep_days) * 24 * HOUR;
        let ids = self.runs.delete_finished_before(before).await.map_err(to_app)?;
        for id in &ids {
            self.files.remove(*id);
        }
        Ok(ids.len())
    }
}

/// Writes the run's PDF, XLSX and CSV, and a ZIP of the three; the formats written. Stops between files when the
/// run is to stop.
fn write_files(
    report: &RenderedReport,
    files: &RunFiles,
    run: i64,
    stem: &str,
    watch: &RunWatch,
) -> Result<Vec<String>, anyhow::Error> {
    use std::io::Write;
    let zone = period::zone(&report.time_zone).map_err(|e| anyhow::anyhow!(e.message))?;
    std::fs::create_dir_all(files.folder(run))?;
    let mut written = Vec::new();
    let check = || {
        if watch.stop.load(Ordering::Relaxed) {
            Err(anyhow::anyhow!("the run was cancelled"))
        } else {
            Ok(())
        }
    };
    let pdf = super::pdf::write(report, &zone)?;
    check()?;
    let xlsx = super::xlsx::write(report, &zone)?;
    check()?;
    let mut csv = Vec::new();
    super::csv::write(report, &zone, &mut csv)?;
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (format, bytes) in [("pdf", &pdf), ("xlsx", &xlsx), ("csv", &csv)] {
        std::fs::write(files.file(run, stem, format), bytes)?;
        archive.start_file(format!("{stem}.{format}"), zip::write::SimpleFileOptions::default())?;
        archive.write_all(bytes)?;
        written.push(format.to_string());
    }
    let zip = archive.finish()?.into_inner();
    std::fs::write(files.file(run, stem, "zip"), zip)?;
    written.push("zip".into());
    Ok(written)
}

/// The assets of `template` or of a template based on it (all of them when none is named).
fn of_template(assets: Vec<AssetSummary>, template: Option<&str>, templates: &[TemplateView]) -> Vec<AssetSummary> {
    let Some(wanted) = template else { return assets };
    let bases: HashMap<&str, Option<&str>> = templates
        .iter()
        .map(|t| (t.spec.name.as_str(), t.spec.base.as_deref()))
        .collect();
    let mut accepted: HashSet<&str> = HashSet::new();
    for t in templates {
        let mut next = Some(t.spec.name.as_str());
        let mut seen = 0;
        while let Some(name) = next {
            if name.eq_ignore_ascii_case(wanted) {
                accepted.insert(t.spec.name.as_str());
                break;
            }
            seen += 1;
            if seen > 32 {
                break;
            }
            next = bases.get(name).copied().flatten();
        }
    }
    assets
        .into_iter()
        .filter(|a| a.template.as_deref().is_some_and(|t| accepted.contains(t)))
        .collect()
}

/// Buckets folded into one piece of a row.
#[derive(Debug, Clone, Copy)]
struct Folded {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: (i64, f64),
    last: (i64, f64),
}

impl Folded {
    fn fold(slot: &mut Option<Folded>, bucket: &Bucket) {
        if bucket.count == 0 {
            return;
        }
        let piece = Folded {
            count: bucket.count,
            sum: bucket.sum,
            min: bucket.min,
            max: bucket.max,
            first: (bucket.start, bucket.first),
            last: (bucket.start, bucket.last),
        };
        match slot {
            None => *slot = Some(piece),
            Some(folded) => {
                folded.count += piece.count;
                folded.sum += piece.sum;
                folded.min = folded.min.min(piece.min);
                folded.max = folded.max.max(piece.max);
                if piece.first.0 < folded.first.0 {
                    folded.first = piece.first;
                }
                if piece.last.0 >= folded.last.0 {
                    folded.last = piece.last;
                }
            }
        }
    }

    fn value(&self, aggregate: Aggregate) -> f64 {
        match aggregate {
            Aggregate::Average => self.sum / self.count as f64,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::First => self.first.1,
            Aggregate::Last => self.last.1,
            Aggregate::Sum => self.sum,
            Aggregate::Count => self.count as f64,
        }
    }
}
