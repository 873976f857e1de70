//! The backend as server functions see it: one trait per area, implemented in the `server` crate and provided as
//! Leptos context (a [`Services`] value) to both server-function and page-rendering requests. Keeping the traits
//! here, behind `ssr`, is what lets `app` stay free of sqlx, tantivy and taos.

#[cfg(feature = "ssr")]
mod ssr {
    use std::sync::Arc;

    use http::request::Parts;

    use crate::alarms::{
        AckRequest, AlarmComment, AlarmCounts, AlarmDetail, AlarmFilter, AlarmView, AssetRule, CreatedWebhook,
        DeliveryView, EffectiveRule, NewComment, NewWebhook, ServiceRequest, ShelveRequest, WebhookView,
    };
    use crate::assets::{
        AssetPatch, AssetSummary, AssetView, ImportReport, NewAsset, TemplateEdit, TemplateSpec, TemplateView,
    };
    use crate::auth::{
        Actor, AuditEntry, AuditFilter, CreatedToken, LoginRequest, NewToken, NewUser, PasswordChange, PasswordReset,
        SetupRequest, TimeZoneChange, TokenView, UserPatch, UserView,
    };
    use crate::charts::{DashboardSpec, DashboardView, SeriesRef, SeriesValue, Trend, TrendQuery};
    use crate::devices::{
        CreatedDeviceToken, DevicePatch, DeviceTokenView, DeviceView, NewDevice, NewDeviceToken, NewGatewayToken,
    };
    use crate::error::{AppError, ErrorKind};
    use crate::reports::{RenderedReport, ReportRun, ReportSpec, ReportView};
    use crate::search::{SearchQuery, SearchResults};
    use crate::system::SystemStatus;
    use crate::timeseries::{DataQuery, LatestValues, SeriesData};

    /// Facts about the running instance.
    #[async_trait::async_trait]
    pub trait SystemService: Send + Sync + 'static {
        async fn status(&self, actor: &Actor) -> Result<SystemStatus, AppError>;
    }

    /// Accounts, sessions, tokens and the audit log. Everything but login and setup takes the [`Actor`] making
    /// the call; the implementation checks what that actor may do.
    #[async_trait::async_trait]
    pub trait AuthService: Send + Sync + 'static {
        /// Checks the credentials and starts a session on the request (with a new session id).
        async fn login(&self, request: &Parts, credentials: LoginRequest) -> Result<UserView, AppError>;
        /// Ends the request's session.
        async fn logout(&self, request: &Parts) -> Result<(), AppError>;
        /// Whether no user exists yet, so the one-time setup page is open.
        async fn setup_required(&self) -> Result<bool, AppError>;
        /// Creates the first admin with the setup token from the server log, and logs them in.
        async fn setup(&self, request: &Parts, setup: SetupRequest) -> Result<UserView, AppError>;

        async fn me(&self, actor: &Actor) -> Result<UserView, AppError>;
        async fn change_password(&self, actor: &Actor, change: PasswordChange) -> Result<(), AppError>;
        /// Sets the time zone the caller reads times in (an IANA name, checked) or clears it (the browser's).
        async fn set_time_zone(&self, actor: &Actor, change: TimeZoneChange) -> Result<UserView, AppError>;

        async fn list_users(&self, actor: &Actor) -> Result<Vec<UserView>, AppError>;
        async fn get_user(&self, actor: &Actor, id: i64) -> Result<UserView, AppError>;
        async fn create_user(&self, actor: &Actor, user: NewUser) -> Result<UserView, AppError>;
        async fn update_user(&self, actor: &Actor, id: i64, patch: UserPatch) -> Result<UserView, AppError>;
        async fn reset_password(&self, actor: &Actor, id: i64, reset: PasswordReset) -> Result<(), AppError>;

        /// Tokens of `user_id` (one's own, or anyone's for admins).
        async fn list_tokens(&self, actor: &Actor, user_id: i64) -> Result<Vec<TokenView>, AppError>;
        async fn create_token(&self, actor: &Actor, user_id: i64, token: NewToken) -> Result<CreatedToken, AppError>;
        async fn revoke_token(&self, actor: &Actor, token_id: i64) -> Result<(), AppError>;

        async fn audit_log(&self, actor: &Actor, filter: AuditFilter) -> Result<Vec<AuditEntry>, AppError>;
    }

    /// How far a long operation has got: (done, total).
    pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

    /// The plant model: templates, assets and the model file. Every operation, whichever door it comes through
    /// (REST, server function, CLI), is this trait's method; the implementation checks what the actor may do.
    #[async_trait::async_trait]
    pub trait ModelService: Send + Sync + 'static {
        async fn list_templates(&self, actor: &Actor) -> Result<Vec<TemplateView>, AppError>;
        async fn get_template(&self, actor: &Actor, id: i64) -> Result<TemplateView, AppError>;
        async fn create_template(&self, actor: &Actor, spec: TemplateSpec) -> Result<TemplateView, AppError>;
        /// Replaces a template's definition; with `expected`, refused (409) unless it is at that version.
        async fn replace_template(
            &self,
            actor: &Actor,
            id: i64,
            spec: TemplateSpec,
            expected: Option<i64>,
        ) -> Result<TemplateView, AppError>;
        /// One change to a template; with `expected`, refused (409) unless the template is at that version.
        async fn edit_template(
            &self,
            actor: &Actor,
            id: i64,
            expected: Option<i64>,
            edit: TemplateEdit,
        ) -> Result<TemplateView, AppError>;
        async fn delete_template(&self, actor: &Actor, id: i64) -> Result<(), AppError>;

        async fn get_asset(&self, actor: &Actor, id: i64) -> Result<AssetView, AppError>;
        /// The asset at a path as the caller sees it.
        async fn asset_by_path(&self, actor: &Actor, path: &str) -> Result<AssetView, AppError>;
        /// Children of `parent`, or the top of the caller's tree.
        async fn children(&self, actor: &Actor, parent: Option<i64>) -> Result<Vec<AssetSummary>, AppError>;
        /// The asset and everything below it, depth first.
        async fn subtree(&self, actor: &Actor, id: i64) -> Result<Vec<AssetSummary>, AppError>;
        async fn create_asset(&self, actor: &Actor, asset: NewAsset) -> Result<AssetView, AppError>;
        /// Renames, moves, describes or labels an asset; with `expected`, refused (409) unless the asset is at
        /// that version.
        async fn update_asset(
            &self,
            actor: &Actor,
            id: i64,
            patch: AssetPatch,
            expected: Option<i64>,
        ) -> Result<AssetView, AppError>;
        /// Moves an asset under the asset at `parent_path` (`/` or empty: to the top).
        async fn move_asset(
            &self,
            actor: &Actor,
            id: i64,
            parent_path: &str,
            expected: Option<i64>,
        ) -> Result<AssetView, AppError>;
        /// Deletes the asset and everything below it and returns how many assets went; without `confirm` it
        /// only says (409) how many that would be.
        async fn delete_asset(&self, actor: &Actor, id: i64, confirm: bool) -> Result<usize, AppError>;

        /// The model (or the subtree at a path) as a model file.
        async fn export(&self, actor: &Actor, subtree: Option<&str>) -> Result<String, AppError>;
        /// Reads a model file, checks all of it, and applies it (unless `dry_run`).
        async fn import(
            &self,
            actor: &Actor,
            text: &str,
            dry_run: bool,
            progress: Progress<'_>,
        ) -> Result<ImportReport, AppError>;
    }

    /// Devices and their tokens.
    #[async_trait::async_trait]
    pub trait DevicesService: Send + Sync + 'static {
        async fn list(&self, actor: &Actor) -> Result<Vec<DeviceView>, AppError>;
        /// The devices bound to an asset.
        async fn of_asset(&self, actor: &Actor, asset_id: i64) -> Result<Vec<DeviceView>, AppError>;
        async fn get(&self, actor: &Actor, id: i64) -> Result<DeviceView, AppError>;
        async fn create(&self, actor: &Actor, device: NewDevice) -> Result<DeviceView, AppError>;
        async fn update(&self, actor: &Actor, id: i64, patch: DevicePatch) -> Result<DeviceView, AppError>;
        /// Deletes the device and revokes its tokens.
        async fn delete(&self, actor: &Actor, id: i64) -> Result<(), AppError>;
        async fn tokens(&self, actor: &Actor, id: i64) -> Result<Vec<DeviceTokenView>, AppError>;
        /// A token for one device; its secret is shown once, in the answer.
        async fn create_token(
            &self,
            actor: &Actor,
            id: i64,
            new: NewDeviceToken,
        ) -> Result<CreatedDeviceToken, AppError>;
        /// A token that may post for several devices (a gateway's).
        async fn create_gateway_token(
            &self,
            actor: &Actor,
            new: NewGatewayToken,
        ) -> Result<CreatedDeviceToken, AppError>;
        async fn revoke_token(&self, actor: &Actor, token_id: i64) -> Result<(), AppError>;
    }

    /// Alarm occurrences, the rules that raise them and the webhooks that carry them out.
    #[async_trait::async_trait]
    pub trait AlarmsService: Send + Sync + 'static {
        /// Occurrences matching a filter as people write it (parsed, and its subtree resolved, in the service).
        async fn list(&self, actor: &Actor, filter: AlarmFilter) -> Result<Vec<AlarmView>, AppError>;
        async fn get(&self, actor: &Actor, id: i64) -> Result<AlarmDetail, AppError>;
        async fn acknowledge(&self, actor: &Actor, request: AckRequest) -> Result<Vec<AlarmView>, AppError>;
        async fn shelve(&self, actor: &Actor, id: i64, request: ShelveRequest) -> Result<AlarmView, AppError>;
        /// Takes the occurrence's point out of service or returns it.
        async fn set_service(&self, actor: &Actor, id: i64, request: ServiceRequest) -> Result<AlarmView, AppError>;
        async fn comment(&self, actor: &Actor, id: i64, comment: NewComment) -> Result<AlarmComment, AppError>;
        /// Active alarms by severity in the subtree of `asset`, or everywhere the caller may look.
        async fn counts(&self, actor: &Actor, asset: Option<i64>) -> Result<AlarmCounts, AppError>;
        /// The counts of several subtrees at once.
        async fn counts_of(&self, actor: &Actor, assets: &[i64]) -> Result<Vec<(i64, AlarmCounts)>, AppError>;

        /// The rules in force on an asset: its template's and its own.
        async fn rules_of_asset(&self, actor: &Actor, asset_id: i64) -> Result<Vec<EffectiveRule>, AppError>;
        /// Replaces an asset's own rules; each must fit its attribute.
        async fn set_asset_rules(
            &self,
            actor: &Actor,
            asset_id: i64,
            rules: Vec<AssetRule>,
        ) -> Result<Vec<EffectiveRule>, AppError>;
        async fn rules_of_template(&self, actor: &Actor, template_id: i64) -> Result<Vec<EffectiveRule>, AppError>;

        async fn webhooks(&self, actor: &Actor) -> Result<Vec<WebhookView>, AppError>;
        async fn create_webhook(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook, AppError>;
        async fn delete_webhook(&self, actor: &Actor, id: i64) -> Result<(), AppError>;
        /// A webhook's recent deliveries.
        async fn deliveries(&self, actor: &Actor, id: i64) -> Result<Vec<DeliveryView>, AppError>;
    }

    /// Readings as the query API and pages show them.
    #[async_trait::async_trait]
    pub trait TimeseriesService: Send + Sync + 'static {
        /// One attribute's readings: raw when they fit in the points asked for, else buckets from the coarsest
        /// resolution that serves the width.
        async fn data(
            &self,
            actor: &Actor,
            asset_id: i64,
            name: &str,
            query: &DataQuery,
        ) -> Result<SeriesData, AppError>;
        /// The latest reading of each of the asset's time-series attributes.
        async fn latest(&self, actor: &Actor, asset_id: i64) -> Result<LatestValues, AppError>;
    }

    /// Trend charts: series named by asset path, at the resolution the chart's width calls for.
    #[async_trait::async_trait]
    pub trait ChartsService: Send + Sync + 'static {
        async fn trend(&self, actor: &Actor, query: &TrendQuery) -> Result<Trend, AppError>;
        /// The latest value of each series (value and table panels); a series one may not see says so.
        async fn values(&self, actor: &Actor, series: &[SeriesRef]) -> Result<Vec<SeriesValue>, AppError>;
        /// One's own dashboards and the shared ones.
        async fn dashboards(&self, actor: &Actor) -> Result<Vec<DashboardView>, AppError>;
        async fn dashboard(&self, actor: &Actor, id: i64) -> Result<DashboardView, AppError>;
        async fn create_dashboard(&self, actor: &Actor, spec: DashboardSpec) -> Result<DashboardView, AppError>;
        async fn update_dashboard(
            &self,
            actor: &Actor,
            id: i64,
            spec: DashboardSpec,
            expected: Option<i64>,
        ) -> Result<DashboardView, AppError>;
        async fn delete_dashboard(&self, actor: &Actor, id: i64) -> Result<(), AppError>;
    }

    /// Search over everything the caller may see.
    #[async_trait::async_trait]
    pub trait SearchService: Send + Sync + 'static {
        async fn search(&self, actor: &Actor, query: &SearchQuery) -> Result<SearchResults, AppError>;
    }

    /// Report definitions, and a report worked out for a time range within the caller's grants.
    #[async_trait::async_trait]
    pub trait ReportsService: Send + Sync + 'static {
        async fn reports(&self, actor: &Actor) -> Result<Vec<ReportView>, AppError>;
        async fn report(&self, actor: &Actor, id: i64) -> Result<ReportView, AppError>;
        async fn create_report(&self, actor: &Actor, spec: ReportSpec) -> Result<ReportView, AppError>;
        async fn update_report(
            &self,
            actor: &Actor,
            id: i64,
            spec: ReportSpec,
            expected: Option<i64>,
        ) -> Result<ReportView, AppError>;
        async fn delete_report(&self, actor: &Actor, id: i64) -> Result<(), AppError>;
        /// The report for `[from, to)` (none: its own range as of now).
        async fn render_report(
            &self,
            actor: &Actor,
            id: i64,
            range: Option<(i64, i64)>,
        ) -> Result<RenderedReport, AppError>;
        /// Queues a run for `[from, to)` (none: its own range as of now), worked out by whichever instance takes
        /// it, as the caller.
        async fn start_run(&self, actor: &Actor, id: i64, range: Option<(i64, i64)>) -> Result<ReportRun, AppError>;
        /// The report's latest runs, newest first.
        async fn runs(&self, actor: &Actor, id: i64) -> Result<Vec<ReportRun>, AppError>;
        async fn run(&self, actor: &Actor, id: i64, run: i64) -> Result<ReportRun, AppError>;
        /// Stops a run that is not over (its requester, or engineers and admins).
        async fn cancel_run(&self, actor: &Actor, id: i64, run: i64) -> Result<ReportRun, AppError>;
    }

    /// Every service a server function can reach, cloned into each request's Leptos context.
    #[derive(Clone)]
    pub struct Services {
        pub system: Arc<dyn SystemService>,
        pub auth: Arc<dyn AuthService>,
        pub model: Arc<dyn ModelService>,
        pub devices: Arc<dyn DevicesService>,
        pub alarms: Arc<dyn AlarmsService>,
        pub timeseries: Arc<dyn TimeseriesService>,
        pub charts: Arc<dyn ChartsService>,
        pub search: Arc<dyn SearchService>,
        pub reports: Arc<dyn ReportsService>,
    }

    /// The request a server function or page render is answering (provided by leptos_axum).
    pub fn request_parts() -> Result<Parts, AppError> {
        leptos::prelude::use_context::<Parts>().ok_or_else(|| {
            leptos::logging::error!("The request was not provided as Leptos context.");
            AppError::internal()
        })
    }

    /// The authenticated caller of the current request, or 401.
    pub fn current_actor() -> Result<Actor, AppError> {
        request_parts()?
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| AppError::new(ErrorKind::Unauthorized, "please sign in"))
    }

    /// The services of the current request; an error (not a panic) when the server forgot to provide them.
    pub fn services() -> Result<Services, AppError> {
        leptos::prelude::use_context::<Services>().ok_or_else(|| {
            leptos::logging::error!("Services were not provided as Leptos context.");
            AppError::internal()
        })
    }
}

#[cfg(feature = "ssr")]
pub use ssr::*;
