//! Search: a Tantivy index per instance of assets (with their current values and open alarms), devices,
//! templates, dashboards and open alarms, kept current from the change feed, the published current values
//! (`values`) and the alarm events (`alarms`); the query language of the search box (`query`), answered within
//! the caller's grants.

pub mod alarms;
pub mod index;
pub mod query;
mod routes;
mod service;
pub mod values;

pub use routes::{endpoints, router};
pub use service::{BuildProgress, Search, SearchSources};

/// `gantry search reindex`: tells every running instance to rebuild its index (an entry on the change feed), and
/// rebuilds this data dir's index here unless a running `gantry serve` holds it (which then rebuilds it). Returns
/// how many documents were written here, if any.
pub async fn reindex(
    config: &crate::config::Config,
    progress: std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>,
) -> anyhow::Result<Option<usize>> {
    use std::sync::Arc;
    let database = crate::metadata::connect(&config.database, &config.data_dir).await?;
    database.metadata().migrate().await?;
    let accounts = crate::auth::Accounts::new(
        database.auth_store(),
        config.auth.login_failures_per_minute,
        config.sessions.absolute_timeout(),
    );
    let audit = accounts.audit_handle();
    let actor = app::auth::Actor::command_line();
    audit
        .record(Some(&actor), "search.reindex", "search", None, serde_json::json!({}))
        .await?;
    let index = match index::SearchIndex::open(&config.data_dir.join("search")) {
        Ok(index) => index,
        Err(err) if err.downcast_ref::<index::IndexBusy>().is_some() => return Ok(None),
        Err(err) => return Err(err),
    };
    let dashboards = Arc::new(crate::charts::Dashboards::new(
        database.dashboard_store(),
        audit.clone(),
    ));
    let search = Search::new(
        index,
        SearchSources {
            models: database.model_store(),
            devices: database.device_store(),
            model: Arc::new(crate::assets::Model::open(&database, audit, dashboards)),
            series: database.series_registry(),
            store: crate::timeseries::open_store(config).await?,
            values: values::PendingValues::empty(),
            alarms: database.alarm_store(),
            dashboards: database.dashboard_store(),
            alarm_events: alarms::PendingAlarms::empty(),
        },
    );
    Ok(Some(search.rebuild_with(progress).await?))
}
