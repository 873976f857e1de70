//! Start-up and shutdown: [`Application::build`] opens the stores, migrates, binds and assembles the router;
//! [`Application::run_until_stopped`] serves until SIGTERM, Ctrl-C or [`Application::shutdown_token`], then stops
//! gracefully: readiness answers 503 first, in-flight requests finish, and the whole stop stays under 30 s.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use app::{error::AppError, services::Services};
use axum::{
    extract::{MatchedPath, Request},
    middleware,
    serve::ListenerExt,
    Router,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

use crate::{
    alarms::{self, ownership::Ownership, AlarmEngine, Alarms, Forwarder, Notifier},
    assets::{self, Model},
    auth::{self, Accounts, CsrfPolicy, SessionBackend},
    changes,
    charts::{self, Charts, Dashboards, LiveReadings},
    config::Config,
    devices::{self, Devices},
    error::app_error_response,
    fanout,
    ingest::{self, Pipeline, PipelineOptions, ReadingsObserver},
    leases,
    metadata::{self, MetadataStore},
    metrics,
    overload::{self, RequestLimits},
    system::{self, Lifecycle, SystemInfo, SystemState},
    tasks::Tasks,
    timeseries::{self, Timeseries},
    ui,
};

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    router: Router,
    config: Config,
    lifecycle: Arc<Lifecycle>,
    metadata: Arc<dyn MetadataStore>,
    shutdown: CancellationToken,
    accounts: Arc<Accounts>,
    model: Arc<Model>,
    timeseries: Arc<Timeseries>,
    devices: Arc<Devices>,
    alarms: Arc<Alarms>,
    pipeline: Arc<Pipeline>,
    search: Arc<crate::search::Search>,
    reports: Arc<crate::reports::Reports>,
    tasks: Tasks,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let database = metadata::connect(&config.database, &config.data_dir).await?;
        let metadata = database.metadata();
        metadata.migrate().await?;
        let tasks = Tasks::new();
        let instance = leases::instance_name(config.cluster.instance_name.as_deref(), &database);
        tracing::info!(%instance, "This instance's name in the cluster's leases.");
        let sessions = SessionBackend::open(&config, &database).await?;
        sessions.spawn_expiry(&tasks);
        let accounts = Arc::new(
            Accounts::new(
                database.auth_store(),
                config.auth.login_failures_per_minute,
                config.sessions.absolute_timeout(),
            )
            .with_sessions(sessions.clone())
            .with_shared_stream_count(database.lease_store(), instance.clone()),
        );
        let dashboards = Arc::new(Dashboards::new(database.dashboard_store(), accounts.audit_handle()));
        let model = Arc::new(Model::open(&database, accounts.audit_handle(), dashboards.clone()));
        let store = timeseries::open_store(&config)
            .await
            .context("could not open the time-series store")?;
        let timeseries = Arc::new(
            Timeseries::new(
                store.clone(),
                database.series_registry(),
                model.clone(),
                config.timeseries.clone(),
            )
            .with_claims(database.lease_store(), &instance),
        );
        let shutdown = CancellationToken::new();
        timeseries.spawn_retention(&tasks, shutdown.clone());
        timeseries.spawn_maintenance(&tasks, shutdown.clone());
        let devices = Arc::new(Devices::new(
            database.device_store(),
            model.clone(),
            accounts.audit_handle(),
        ));
        devices.spawn_seen_writer(&tasks);
        let search_index = crate::search::index::SearchIndex::open(&config.data_dir.join("search"))
            .context("could not open the search index")?;
        let alarm_events = fanout::Topic::open(&config.cluster, "alarm-events", 1024, &tasks, shutdown.clone()).await?;
        let search_values =
            fanout::Topic::open(&config.cluster, "search-values", 256, &tasks, shutdown.clone()).await?;
        let value_publisher = crate::search::values::ValuePublisher::new(search_values.clone());
        value_publisher.spawn(&tasks, shutdown.clone());
        let search = Arc::new(crate::search::Search::new(
            search_index,
            crate::search::SearchSources {
                models: database.model_store(),
                devices: database.device_store(),
                model: model.clone(),
                series: database.series_registry(),
                store: store.clone(),
                values: crate::search::values::follow(&search_values, &tasks, shutdown.clone()),
                alarms: database.alarm_store(),
                dashboards: database.dashboard_store(),
                alarm_events: crate::search::alarms::follow(&alarm_events, &tasks, shutdown.clone()),
            },
        ));
        search.spawn(&tasks, shutdown.clone());
        let notifier = Arc::new(Notifier::new(
            database.alarm_store(),
            config.alarms.clone(),
            alarm_events,
        ));
        notifier.spawn_delivery(&tasks, shutdown.clone());
        let alarm_work = fanout::Topic::open(&config.cluster, "alarm-work", 4096, &tasks, shutdown.clone()).await?;
        let engine = AlarmEngine::new(
            database.alarm_store(),
            model.clone(),
            database.series_registry(),
            store.clone(),
            notifier,
            Arc::new(Ownership::new(instance.clone())),
            Forwarder::new(instance.clone(), alarm_work),
        );
        engine
            .start(database.lease_store(), &tasks, shutdown.clone())
            .await
            .map_err(|e| anyhow::anyhow!("could not take over alarm points: {}", e.into_app_error()))?;
        let on_change: changes::OnChange = {
            let (model, engine, devices, search) = (model.clone(), engine.clone(), devices.clone(), search.clone());
            Arc::new(move |changes: &[changes::Change]| {
                model.changed_elsewhere();
                search.changed(changes);
                engine.rules_changed();
                // Only these change a point's suppression; re-reading the points for any other change is waste.
                const SUPPRESSION: &[&str] = &[
                    "alarm.shelve",
                    "alarm.unshelve",
                    "alarm.out_of_service",
                    "alarm.in_service",
                ];
                if changes
                    .iter()
                    .any(|change| SUPPRESSION.contains(&change.action.as_str()))
                {
                    engine.points_changed_elsewhere();
                }
                engine.notifier().webhooks_changed();
                devices.forget_authentications();
            })
        };
        changes::follow(&database, on_change, &tasks, shutdown.clone());
        let alarms = Arc::new(Alarms::new(
            engine.clone(),
            model.clone(),
            accounts.audit_handle(),
            shutdown.clone(),
        ));
        let live_readings = LiveReadings::open(&config.cluster, &tasks, shutdown.clone()).await?;
        let charts = Arc::new(Charts::new(
            model.clone(),
            timeseries.clone(),
            alarms.clone(),
            live_readings.clone(),
            dashboards,
        ));
        let reports = Arc::new(crate::reports::Reports::new(
            database.report_store(),
            accounts.audit_handle(),
            crate::reports::ReportSources {
                model: model.clone(),
                timeseries: timeseries.clone(),
                charts: charts.clone(),
                alarms: alarms.clone(),
                accounts: accounts.clone(),
                runs: database.run_store(),
                files: crate::reports::RunFiles::new(config.reports.files_dir(&config.data_dir)),
                config: config.reports.clone(),
                holder: instance.clone(),
            },
        ));
        {
            // Every instance works report runs; schedules and claims make each run happen once. Forgetting old
            // runs is safe to do on several instances at once (each deletes what is left), so it is not claimed.
            let (reports, stopping) = (reports.clone(), tasks.stopping());
            tasks.supervise("report runs", move || {
                let (reports, stopping) = (reports.clone(), stopping.clone());
                async move {
                    let mut last_cleanup: Option<std::time::Instant> = None;
                    loop {
                        if last_cleanup.is_none_or(|at| at.elapsed() > std::time::Duration::from_secs(3600)) {
                            last_cleanup = Some(std::time::Instant::now());
                            match reports.forget_old_runs().await {
                                Ok(0) => {}
                                Ok(n) => tracing::info!(runs = n, "Old report runs and their files were deleted."),
                                Err(err) => {
                                    tracing::warn!(error = %err.message, "Old report runs could not be deleted.")
                                }
                            }
                        }
                        reports.work().await;
                        if stopping.run_until_cancelled(reports.next_pass()).await.is_none() {
                            return;
                        }
                    }
                }
            });
        }
        let pipeline = Pipeline::start(
            store.clone(),
            devices.clone(),
            model.clone(),
            database.series_registry(),
            vec![engine as Arc<dyn ReadingsObserver>, live_readings, value_publisher],
            PipelineOptions {
                queue_readings: config.ingest.queue_readings,
                max_batch: config.ingest.max_batch,
                max_age_ms: config.timeseries.retention.retention().raw_ms,
            },
            &tasks,
        );
        if config.server.role.serves_ingest() {
            ingest::mqtt::spawn(&config.mqtt, pipeline.clone(), &tasks, shutdown.clone())?;
        }
        tokio::task::spawn_blocking(auth::prepare_password_hashing)
            .await
            .context("preparing password hashing failed")?;

        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("could not listen on {}", config.server.listen))?;
        let address = listener.local_addr()?;

        let metrics = metrics::handle();
        let lifecycle = Arc::new(Lifecycle::new());
        let system_state = SystemState {
            lifecycle: lifecycle.clone(),
            metadata: metadata.clone(),
            timeseries: store.clone(),
            metrics: metrics.clone(),
            role: config.server.role,
            tasks: tasks.clone(),
            search: search.progress(),
        };

        let mut router = Router::new();
        if config.server.role.serves_web() {
            let api_v1 = auth::router(accounts.clone())
                .merge(assets::router(model.clone()))
                .merge(timeseries::router(timeseries.clone()))
                .merge(devices::router(devices.clone()))
                .merge(alarms::router(alarms.clone()))
                .merge(charts::router(charts.clone()))
                .merge(crate::search::router(search.clone()))
                .merge(crate::reports::router(reports.clone()))
                .merge(crate::api::docs_router())
                .fallback(not_found);
            router = router.nest("/api/v1", api_v1);
            let services = Services {
                system: Arc::new(SystemInfo {
                    state: system_state.clone(),
                }),
                auth: accounts.clone(),
                model: model.clone(),
                devices: devices.clone(),
                alarms: alarms.clone(),
                timeseries: timeseries.clone(),
                charts: charts.clone(),
                search: search.clone(),
                reports: reports.clone(),
            };
            let site_dir = ui::resolve_site_dir(config.server.site_dir.as_deref());
            if !ui::bundle_present(&site_dir) {
                tracing::warn!(
                    site_dir = %site_dir.display(),
                    "The browser bundle was not found; pages will render but not become interactive. Build it \
                     with `cargo xtask build`."
                );
            }
            router = router.merge(ui::router(services, &site_dir));
        } else {
            router = router.fallback(not_found);
        }
        let csrf_policy = Arc::new(CsrfPolicy::from_public_url(config.server.public_url.as_deref()));
        tracing::info!(sessions = sessions.name(), "Sessions are stored.");
        // People's requests pass these layers from the last added to the first; devices' (ingest) do not: they
        // carry their own tokens and no cookies.
        let mut router = router
            .layer(middleware::from_fn_with_state(accounts.clone(), auth::identify))
            .layer(middleware::from_fn_with_state(csrf_policy, auth::csrf))
            .layer(sessions.layer(&config));
        if config.server.role.serves_ingest() {
            router = router.merge(ingest::router(pipeline.clone(), config.ingest.clone()));
        }
        // Health, readiness and metrics stay outside the request limits: they must answer under overload.
        let limits = RequestLimits::new(config.server.max_concurrent_requests, config.server.request_timeout());
        let trusted_proxies = auth::TrustedProxies::new(config.server.trusted_proxy_networks()?);
        let router = router
            .layer(middleware::from_fn_with_state(limits, overload::limit_requests))
            .merge(system::router(system_state))
            .layer(middleware::from_fn_with_state(trusted_proxies, auth::client_address))
            .layer(CatchPanicLayer::custom(overload::panic_response))
            .layer(middleware::from_fn(auth::security_headers))
            .layer(middleware::from_fn(metrics::track_http))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                tracing::info_span!("http_request", method = %request.method(), route)
            }));

        // Histograms need their buckets drained now and then, whether or not anyone scrapes.
        let (upkeep, stopping) = (metrics.clone(), tasks.stopping());
        tasks.supervise("metrics upkeep", move || {
            let (upkeep, stopping) = (upkeep.clone(), stopping.clone());
            async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                while stopping.run_until_cancelled(tick.tick()).await.is_some() {
                    upkeep.run_upkeep();
                }
            }
        });

        Ok(Application {
            listener,
            address,
            router,
            config,
            lifecycle,
            metadata,
            shutdown,
            accounts,
            model,
            timeseries,
            devices,
            alarms,
            pipeline,
            search,
            reports,
            tasks,
        })
    }

    /// The metadata database (for tests that take it away).
    pub fn metadata(&self) -> Arc<dyn MetadataStore> {
        self.metadata.clone()
    }

    /// The accounts service (for `--demo` and tests that need a user before serving).
    pub fn accounts(&self) -> Arc<Accounts> {
        self.accounts.clone()
    }

    /// The time-series service (for `--demo`, ingestion and tests).
    pub fn timeseries(&self) -> Arc<Timeseries> {
        self.timeseries.clone()
    }

    /// The devices service (for `--demo` and the CLI).
    pub fn devices(&self) -> Arc<Devices> {
        self.devices.clone()
    }

    /// The alarms service (for tests).
    pub fn alarms(&self) -> Arc<Alarms> {
        self.alarms.clone()
    }

    /// The ingest pipeline (for the demo's simulated devices and tests).
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.clone()
    }

    /// The model service (for `--demo`).
    pub fn model(&self) -> Arc<Model> {
        self.model.clone()
    }

    pub fn search(&self) -> Arc<crate::search::Search> {
        self.search.clone()
    }

    /// The report service (for `--demo`).
    pub fn reports(&self) -> Arc<crate::reports::Reports> {
        self.reports.clone()
    }

    /// While no account exists, opens the one-time setup page and says so in the log.
    pub async fn announce_setup_if_needed(&self) -> anyhow::Result<()> {
        if let Some(token) = self
            .accounts
            .open_setup_if_empty()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            tracing::warn!(
                "No account exists yet. Open http://{}/setup and enter the one-time setup token {token}, or run \
                 `gantry user create --admin NAME`.",
                self.address
            );
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cancelling this token stops the server as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            config,
            lifecycle,
            metadata,
            shutdown,
            timeseries,
            tasks,
            ..
        } = self;
        tokio::spawn(cancel_on_signal(shutdown.clone()));

        let drain = config.server.shutdown_drain();
        let graceful = {
            let shutdown = shutdown.clone();
            let lifecycle = lifecycle.clone();
            async move {
                shutdown.cancelled().await;
                lifecycle.begin_draining();
                tracing::info!(
                    drain_secs = drain.as_secs(),
                    "Shutdown requested; readiness now answers 503 while the gateway drains this instance."
                );
                tokio::time::sleep(drain).await;
            }
        };
        // Streamed pages go out in several small writes; without TCP_NODELAY, Nagle's algorithm holds each one
        // back until the client's delayed ACK (~40 ms a page).
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "Could not set TCP_NODELAY on a connection.");
            }
        });
        let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(graceful);
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(drain + config.server.shutdown_timeout()).await;
        };
        tokio::select! {
            result = server => result.context("the HTTP server failed")?,
            () = deadline => tracing::warn!(
                "Requests still in flight at the shutdown deadline were abandoned."
            ),
        }
        // In-flight requests are done: the writer drains what is queued, then every task stops.
        tasks.stop(std::time::Duration::from_secs(3)).await;
        // Not needed for durability (acknowledged readings are in the store's log), but it makes the next start
        // quick and leaves the files compact.
        if let Err(err) = timeseries.store().flush().await {
            tracing::warn!(error = %err, "Flushing the time-series store at shutdown failed; its log keeps everything.");
        }
        metadata.close().await;
        tracing::info!("Gantry stopped.");
        Ok(())
    }
}

/// Unknown API paths (and everything an ingest-only instance does not serve) answer JSON, not a page.
async fn not_found() -> axum::response::Response {
    app_error_response(AppError::not_found("There is no such API route."))
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
        () = token.cancelled() => return,
    }
    token.cancel();
}
