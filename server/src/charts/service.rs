//! [`Charts`]: trends as charts ask for them. Each series is found by its asset's path and attribute (the caller's
//! grants apply, through [`Model`]) and read for the range at one value per pixel of the chart's width, so the
//! store answers raw readings when they fit and otherwise the coarsest rollup that serves the bucket width (never
//! more than a bucket per pixel, drawn as an average line and a min–max band: about two values per pixel).
//! It also answers the latest values of dashboard panels and holds the dashboards themselves ([`Dashboards`]).

use std::{collections::HashMap, sync::Arc};

use app::services::ModelService;
use app::{
    assets::EffectiveAttribute,
    auth::{Actor, Scope},
    charts::{
        AlarmMarker, DashboardSpec, DashboardView, SeriesRef, SeriesValue, Trend, TrendQuery, TrendSeries, HIDDEN_PATH,
        MAX_VALUE_SERIES,
    },
    error::{AppError, ErrorKind},
};

use super::{Dashboards, LiveReadings};
use crate::{
    alarms::Alarms,
    assets::Model,
    timeseries::{SeriesId, TimeRange, Timeseries},
};

pub struct Charts {
    model: Arc<Model>,
    timeseries: Arc<Timeseries>,
    alarms: Arc<Alarms>,
    live: Arc<LiveReadings>,
    dashboards: Arc<Dashboards>,
}

impl Charts {
    pub fn new(
        model: Arc<Model>,
        timeseries: Arc<Timeseries>,
        alarms: Arc<Alarms>,
        live: Arc<LiveReadings>,
        dashboards: Arc<Dashboards>,
    ) -> Self {
        Charts {
            model,
            timeseries,
            alarms,
            live,
            dashboards,
        }
    }

    pub fn dashboards(&self) -> &Dashboards {
        &self.dashboards
    }

    pub fn live(&self) -> &Arc<LiveReadings> {
        &self.live
    }

    /// The asset and time-series attribute a series names, if the caller may see it.
    async fn resolve(&self, actor: &Actor, series: &SeriesRef) -> Result<(i64, String, EffectiveAttribute), AppError> {
        let asset = self.model.asset_by_path(actor, &series.asset).await.map_err(|err| {
            if err.code == ErrorKind::NotFound {
                AppError::not_found(format!("no asset at {:?}", series.asset))
            } else {
                err
            }
        })?;
        let attribute = asset
            .attributes
            .into_iter()
            .find(|a| a.attribute.name == series.attribute)
            .ok_or_else(|| {
                AppError::not_found(format!(
                    "{:?} has no attribute named {:?}",
                    series.asset, series.attribute
                ))
            })?;
        if !attribute.attribute.is_series {
            return Err(AppError::new(
                ErrorKind::Unprocessable,
                format!(
                    "{:?} of {:?} is a static value, not a time series",
                    series.attribute, series.asset
                ),
            ));
        }
        Ok((asset.summary.id, asset.summary.path, attribute))
    }

    /// A dashboard as the caller may see it. Panels store full paths; the caller is shown each as they are shown
    /// paths elsewhere (ancestors outside their grants hidden), and a panel naming an asset outside their grants
    /// shows [`HIDDEN_PATH`] instead (the name of an asset one may not see is not shown). Such a dashboard cannot
    /// be changed by that caller (saving would overwrite what they cannot see).
    async fn within_grants(&self, actor: &Actor, mut view: DashboardView) -> Result<DashboardView, AppError> {
        if actor.scope == Scope::Everything {
            return Ok(view);
        }
        let mut shown: HashMap<String, Option<String>> = HashMap::new();
        let mut hidden = false;
        for panel in &mut view.spec.panels {
            for path in panel.content.asset_paths_mut() {
                let as_shown = match shown.get(path.as_str()) {
                    Some(as_shown) => as_shown.clone(),
                    None => {
                        let lineage = self.model.lineage_at(path).await?;
                        let ids: Vec<i64> = lineage.iter().map(|(id, _)| *id).collect();
                        let as_shown = (!lineage.is_empty() && actor.scope.includes(&ids))
                            .then(|| actor.scope.shown_path(&ids, path));
                        shown.insert(path.clone(), as_shown.clone());
                        as_shown
                    }
                };
                match as_shown {
                    Some(as_shown) => *path = as_shown,
                    None => {
                        *path = HIDDEN_PATH.to_string();
                        hidden = true;
                    }
                }
            }
        }
        if hidden {
            view.can_edit = false;
        }
        Ok(view)
    }

    /// A dashboard as stored: the paths a restricted caller wrote as they are shown them (`/…/Line 2/Pump 7`)
    /// become full paths, so that everyone who may see those assets reads the same panels. A path that names no
    /// asset the caller may see is kept as written (its panel says so when drawn).
    async fn with_full_paths(&self, actor: &Actor, mut spec: DashboardSpec) -> Result<DashboardSpec, AppError> {
        if actor.scope == Scope::Everything {
            return Ok(spec);
        }
        for panel in &mut spec.panels {
            for path in panel.content.asset_paths_mut() {
                match self.model.full_path(actor, path).await {
                    Ok(full) => *path = full,
                    Err(err) if err.code == ErrorKind::NotFound || err.code == ErrorKind::BadRequest => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(spec)
    }

    /// Refuses a change to a dashboard with panels outside the caller's grants.
    async fn may_change(&self, actor: &Actor, id: i64) -> Result<(), AppError> {
        let view = self.dashboards.get(actor, id).await?;
        let can_edit = view.can_edit;
        if can_edit && !self.within_grants(actor, view).await?.can_edit {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "this dashboard shows assets outside your grants; only someone who sees them all may change it",
            ));
        }
        Ok(())
    }

    /// The stored series behind each of a chart's series (created on first use, as ingestion would), for the
    /// live feed.
    pub async fn live_series(&self, actor: &Actor, series: &[SeriesRef]) -> Result<Vec<SeriesId>, AppError> {
        if series.is_empty() || series.len() > app::charts::MAX_TREND_SERIES {
            return Err(AppError::bad_request(format!(
                "name 1 to {} series (`s=asset path|attribute`)",
                app::charts::MAX_TREND_SERIES
            )));
        }
        let mut ids = Vec::with_capacity(series.len());
        for wanted in series {
            let (asset_id, _, attribute) = self.resolve(actor, wanted).await?;
            ids.push(
                self.timeseries
                    .registry()
                    .ensure(asset_id, &attribute.attribute.name)
                    .await?,
            );
        }
        Ok(ids)
    }
}

#[async_trait::async_trait]
impl app::services::ChartsService for Charts {
    async fn trend(&self, actor: &Actor, query: &TrendQuery) -> Result<Trend, AppError> {
        query.validate().map_err(AppError::bad_request)?;
        let range = TimeRange::new(query.from, query.to)?;
        let mut trend = Trend {
            from: query.from,
            to: query.to,
            series: Vec::with_capacity(query.series.len()),
            alarms: Vec::new(),
        };
        for (index, wanted) in query.series.iter().enumerate() {
            let (asset_id, asset_path, attribute) = self.resolve(actor, wanted).await?;
            let data = self
                .timeseries
                .read(asset_id, &attribute, range, query.width as usize)
                .await?;
            let occurrences = self
                .alarms
                .occurrences_of(actor, asset_id, &wanted.attribute, query.from, query.to)
                .await?;
            trend.alarms.extend(occurrences.into_iter().map(|alarm| AlarmMarker {
                series: index,
                alarm_id: alarm.id,
                severity: alarm.severity,
                started_at: alarm.started_at,
                ended_at: alarm.ended_at,
                message: alarm.message,
            }));
            trend.series.push(TrendSeries {
                asset_id,
                asset_path,
                unit: attribute.attribute.unit.clone(),
                limits: attribute.attribute.limits.clone(),
                attribute: attribute.attribute.name,
                data,
            });
        }
        Ok(trend)
    }

    /// The latest reading of each series with its unit and limit band. A series that cannot be read (no such
    /// asset, outside the caller's grants, a static attribute) says why in its own entry: one panel's bad
    /// reference does not blank the others.
    async fn values(&self, actor: &Actor, series: &[SeriesRef]) -> Result<Vec<SeriesValue>, AppError> {
        actor.require(app::auth::Permission::View)?;
        if series.is_empty() || series.len() > MAX_VALUE_SERIES {
            return Err(AppError::bad_request(format!(
                "name 1 to {MAX_VALUE_SERIES} series (`s=asset path|attribute`)"
            )));
        }
        let mut answers = Vec::with_capacity(series.len());
        let mut wanted = Vec::new();
        for (index, reference) in series.iter().enumerate() {
            let mut answer = SeriesValue {
                series: reference.clone(),
                unit: None,
                ts: None,
                value: None,
                band: "normal".into(),
                error: None,
            };
            match self.resolve(actor, reference).await {
                Ok((asset_id, _, attribute)) => {
                    answer.unit = attribute.attribute.unit.clone();
                    let id = self
                        .timeseries
                        .registry()
                        .find(asset_id, &attribute.attribute.name)
                        .await?;
                    if let Some(id) = id {
                        wanted.push((index, id, attribute.attribute.limits.clone()));
                    }
                }
                Err(err) if err.code == ErrorKind::Internal => return Err(err),
                Err(err) => answer.error = Some(err.message),
            }
            answers.push(answer);
        }
        let ids: Vec<SeriesId> = wanted.iter().map(|(_, id, _)| *id).collect();
        let latest = self.timeseries.store().latest(&ids).await?;
        for (index, id, limits) in wanted {
            if let Some(point) = latest.get(&id) {
                let answer = &mut answers[index];
                answer.ts = Some(point.ts);
                answer.value = Some(point.value);
                answer.band = limits.band(point.value).to_string();
            }
        }
        Ok(answers)
    }

    async fn dashboards(&self, actor: &Actor) -> Result<Vec<DashboardView>, AppError> {
        let mut views = Vec::new();
        for view in self.dashboards.list(actor).await? {
            views.push(self.within_grants(actor, view).await?);
        }
        Ok(views)
    }

    async fn dashboard(&self, actor: &Actor, id: i64) -> Result<DashboardView, AppError> {
        let view = self.dashboards.get(actor, id).await?;
        self.within_grants(actor, view).await
    }

    async fn create_dashboard(&self, actor: &Actor, spec: DashboardSpec) -> Result<DashboardView, AppError> {
        let spec = self.with_full_paths(actor, spec).await?;
        let view = self.dashboards.create(actor, spec).await?;
        self.within_grants(actor, view).await
    }

    async fn update_dashboard(
        &self,
        actor: &Actor,
        id: i64,
        spec: DashboardSpec,
        expected: Option<i64>,
    ) -> Result<DashboardView, AppError> {
        self.may_change(actor, id).await?;
        let spec = self.with_full_paths(actor, spec).await?;
        let view = self.dashboards.update(actor, id, spec, expected).await?;
        self.within_grants(actor, view).await
    }

    async fn delete_dashboard(&self, actor: &Actor, id: i64) -> Result<(), AppError> {
        self.may_change(actor, id).await?;
        self.dashboards.delete(actor, id).await
    }
}
