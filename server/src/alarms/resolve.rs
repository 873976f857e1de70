//! Which rules apply to a series: template rules through inheritance, then the asset's own, compiled per
//! series and cached until the model or the asset rules change (the change feed tells every instance), or for a
//! minute.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::alarms::{AlarmEventKind, AlarmRule};
use app::auth::Actor;
use app::error::ErrorKind;
use app::services::ModelService;

use super::engine::*;
use super::rules::{Compiled, Condition, PointState, Sample};
use super::store::PointRow;
use crate::error::ApiError;
use crate::metadata::now_ms;
use crate::timeseries::SeriesId;

const RULES_TTL: Duration = Duration::from_secs(60);

impl AlarmEngine {
    pub(super) fn check_generation(&self, inner: &mut Inner) {
        let generation = (self.model.generation(), self.rules_generation.load(Ordering::Acquire));
        if inner.generation != generation {
            inner.series.clear();
            inner.generation = generation;
        }
    }

    /// The rules of every attribute of an asset, template rules first; an asset rule of the same name replaces the
    /// template's.
    pub(super) async fn rules_of_asset(&self, asset_id: i64) -> Result<Vec<Arc<RuleContext>>, ApiError> {
        let asset = match self.model.get_asset(&Actor::command_line(), asset_id).await {
            Ok(asset) => asset,
            Err(error) if error.code == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let own = self.store.asset_rules(asset_id).await?;
        let mut out = Vec::new();
        for attribute in asset.attributes.iter().map(|a| &a.attribute).filter(|a| a.is_series) {
            let mut rules: Vec<AlarmRule> = attribute.alarms.clone();
            for extra in own.iter().filter(|r| r.attribute == attribute.name) {
                rules.retain(|r| r.name != extra.rule.name);
                rules.push(extra.rule.clone());
            }
            for rule in rules {
                let Some(compiled) = Compiled::new(&rule, &attribute.limits) else {
                    continue;
                };
                out.push(Arc::new(RuleContext {
                    asset_id,
                    asset_path: asset.summary.path.clone(),
                    attribute: attribute.name.clone(),
                    unit: attribute.unit.clone(),
                    rule,
                    compiled,
                }));
            }
        }
        Ok(out)
    }

    /// Resolves an asset's rules into the series cache and its points; points whose rule is gone stop, and an
    /// alarm they had open returns to normal.
    pub(super) async fn resolve_asset(&self, inner: &mut Inner, asset_id: i64) -> Result<(), ApiError> {
        let rules = self.rules_of_asset(asset_id).await?;
        let series = self.registry.series_of_asset(asset_id).await?;
        let series_of = |attribute: &str| series.iter().find(|(a, _)| a == attribute).map(|(_, id)| *id);
        for (attribute, id) in &series {
            let rules = rules.iter().filter(|r| &r.attribute == attribute).cloned().collect();
            inner.series.insert(
                *id,
                Arc::new(SeriesRules {
                    loaded: Instant::now(),
                    rules,
                }),
            );
        }
        if !self.ownership.owns(asset_id) {
            // Another instance evaluates the asset's points; this one only needs to know that they exist.
            return Ok(());
        }
        let mut history_needed: Vec<(SeriesId, (String, String))> = Vec::new();
        let points = inner.points.entry(asset_id).or_default();
        for context in &rules {
            let key = (context.attribute.clone(), context.rule.name.clone());
            let point = points.entry(key.clone()).or_default();
            point.context = Some(context.clone());
            if context.compiled.needs_history() && point.state.last.is_none() {
                if let Some(series) = series_of(&context.attribute) {
                    history_needed.push((series, key));
                }
            }
        }
        let now = now_ms();
        let mut retired = Vec::new();
        for (key, point) in points.iter_mut() {
            if !rules.iter().any(|r| r.attribute == key.0 && r.rule.name == key.1) {
                point.context = None;
                if point.state.condition != Condition::Normal {
                    point.state = PointState::new();
                    retired.push(key.clone());
                }
            }
        }
        for key in retired {
            let Some(point) = points.get_mut(&key) else { continue };
            let row = point_row(asset_id, &key, point);
            match point.occurrence.take() {
                Some(id) => {
                    let row = PointRow {
                        occurrence_id: None,
                        ..row
                    };
                    self.store.return_occurrence(id, now, None, &row, now).await?;
                    let suppressed = point.suppressed(now);
                    self.announce(AlarmEventKind::Returned, id, suppressed).await;
                }
                None => self.store.save_condition(&row, now).await?,
            }
        }
        if !history_needed.is_empty() {
            let ids: Vec<SeriesId> = history_needed.iter().map(|(id, _)| *id).collect();
            let latest = self.readings.latest(&ids).await.map_err(anyhow::Error::from)?;
            for (series, key) in history_needed {
                if let (Some(point), Some(last)) = (points.get_mut(&key), latest.get(&series)) {
                    point.state.last.get_or_insert(Sample {
                        ts: last.ts,
                        value: last.value,
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) async fn rules_of_series(
        &self,
        inner: &mut Inner,
        series: SeriesId,
    ) -> Result<Arc<SeriesRules>, ApiError> {
        if let Some(rules) = inner.series.get(&series) {
            if rules.loaded.elapsed() < RULES_TTL {
                return Ok(rules.clone());
            }
        }
        match self.registry.owner(series).await? {
            Some((asset_id, _)) => self.resolve_asset(inner, asset_id).await?,
            None => {
                inner.series.insert(
                    series,
                    Arc::new(SeriesRules {
                        loaded: Instant::now(),
                        rules: Vec::new(),
                    }),
                );
            }
        }
        Ok(inner.series.get(&series).cloned().unwrap_or_else(|| {
            Arc::new(SeriesRules {
                loaded: Instant::now(),
                rules: Vec::new(),
            })
        }))
    }
}
