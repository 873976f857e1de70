//! Alarm rules, alarm occurrences and notifications as the API and the browser see them.
//!
//! A rule belongs to an attribute: declared on an attribute template it applies to every asset built from the
//! template; declared on one asset it applies to that asset alone. One rule on one asset is an *alarm point*
//! (asset, attribute, rule name); each time the point's condition becomes true an *occurrence* opens, and it
//! follows the ISA-18.2 states until it has both returned to normal and been acknowledged.

use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Most severe first, as lists and roll-ups show them.
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    pub fn parse(text: &str) -> Result<Severity, AppError> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            AppError::bad_request(format!("unknown severity {text:?}; use critical, high, medium or low"))
        })
    }
}

/// Which of the attribute's limits a limit rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum LimitLevel {
    LoLo,
    Lo,
    Hi,
    HiHi,
}

impl LimitLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitLevel::LoLo => "lolo",
            LimitLevel::Lo => "lo",
            LimitLevel::Hi => "hi",
            LimitLevel::HiHi => "hihi",
        }
    }

    /// High levels alarm above the limit, low ones below it.
    pub fn is_high(self) -> bool {
        matches!(self, LimitLevel::Hi | LimitLevel::HiHi)
    }
}

/// What makes a rule's condition true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum RuleKind {
    /// Beyond one of the attribute's limits; it returns to normal only once back inside by `deadband`.
    Limit {
        level: LimitLevel,
        #[serde(default, skip_serializing_if = "is_zero")]
        deadband: f64,
    },
    /// The value changes faster than `max_per_minute` (either way) between two readings.
    RateOfChange { max_per_minute: f64 },
    /// No reading for `after_seconds`.
    NoData { after_seconds: u32 },
    /// A boolean or integer state equals `equals` (`true`, `false` or a number).
    State { equals: f64 },
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// A rule as it is declared, on an attribute template or on one asset's attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmRule {
    /// Unique among the attribute's rules, such as `High` or `Sensor silent`.
    pub name: String,
    pub condition: RuleKind,
    pub severity: Severity,
    /// The condition must hold this long before the alarm is raised.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub on_delay_seconds: u32,
    /// The condition must stay clear this long before the alarm returns to normal.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub off_delay_seconds: u32,
    /// The alarm's text, with `{asset}`, `{attribute}`, `{value}`, `{unit}`, `{limit}` and `{rule}` filled in;
    /// none gives a sentence made from the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Notify again every this many minutes while the alarm is unacknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify_minutes: Option<u32>,
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

impl AlarmRule {
    /// Checks the rule on its own (the attribute's limits are checked where the rule meets them).
    pub fn validate(&self) -> Result<(), AppError> {
        let bad = |message: String| {
            Err(AppError::bad_request(message).with_details(leptos::serde_json::json!({ "rule": self.name })))
        };
        if self.name.trim().is_empty() || self.name.chars().count() > 100 || self.name.chars().any(char::is_control) {
            return bad("rule names are 1 to 100 characters without control characters".into());
        }
        if let Some(message) = &self.message {
            if message.chars().count() > MAX_MESSAGE_TEMPLATE_CHARS {
                return bad(format!(
                    "rule {:?}: a message is at most {MAX_MESSAGE_TEMPLATE_CHARS} characters",
                    self.name
                ));
            }
        }
        match &self.condition {
            RuleKind::Limit { deadband, .. } if !deadband.is_finite() || *deadband < 0.0 => bad(format!(
                "rule {:?}: the deadband must be a number of at least 0",
                self.name
            )),
            RuleKind::RateOfChange { max_per_minute } if !max_per_minute.is_finite() || *max_per_minute <= 0.0 => bad(
                format!("rule {:?}: max_per_minute must be a positive number", self.name),
            ),
            RuleKind::NoData { after_seconds } if *after_seconds == 0 => {
                bad(format!("rule {:?}: after_seconds must be at least 1", self.name))
            }
            RuleKind::State { equals } if !equals.is_finite() => {
                bad(format!("rule {:?}: equals must be a number or a boolean", self.name))
            }
            _ if self.renotify_minutes == Some(0) => {
                bad(format!("rule {:?}: renotify_minutes must be at least 1", self.name))
            }
            _ => Ok(()),
        }
    }

    /// The default text of an alarm raised by this rule.
    pub fn default_message(&self) -> &'static str {
        match &self.condition {
            RuleKind::Limit { level, .. } if level.is_high() => {
                "{asset} {attribute} is {value} {unit}, above {rule} limit {limit}"
            }
            RuleKind::Limit { .. } => "{asset} {attribute} is {value} {unit}, below {rule} limit {limit}",
            RuleKind::RateOfChange { .. } => "{asset} {attribute} changes too fast ({value} {unit})",
            RuleKind::NoData { .. } => "{asset} {attribute} has sent no data",
            RuleKind::State { .. } => "{asset} {attribute} is {value}",
        }
    }
}

/// Checks the rules of one attribute: each valid, names unique.
pub fn validate_rules(attribute: &str, rules: &[AlarmRule]) -> Result<(), AppError> {
    for (i, rule) in rules.iter().enumerate() {
        rule.validate()?;
        if rules[..i].iter().any(|other| other.name == rule.name) {
            return Err(AppError::bad_request(format!(
                "attribute {attribute:?} has two alarm rules named {:?}",
                rule.name
            )));
        }
    }
    Ok(())
}

/// A rule declared on one asset's attribute (in addition to the template's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssetRule {
    pub attribute: String,
    pub rule: AlarmRule,
}

/// An asset's own rules, as `PUT /api/v1/assets/{id}/rules` takes them (replacing the previous ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssetRules {
    pub rules: Vec<AssetRule>,
}

/// A rule as it applies to one asset, with where it was declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EffectiveRule {
    pub attribute: String,
    pub rule: AlarmRule,
    /// The template that declared the rule, or none for a rule of the asset itself.
    pub template: Option<String>,
}

/// Where an occurrence stands, per ISA-18.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum AlarmState {
    UnacknowledgedActive,
    AcknowledgedActive,
    UnacknowledgedReturned,
    /// Returned and acknowledged: the occurrence is over.
    Normal,
}

impl AlarmState {
    pub fn of(active: bool, acknowledged: bool) -> AlarmState {
        match (active, acknowledged) {
            (true, false) => AlarmState::UnacknowledgedActive,
            (true, true) => AlarmState::AcknowledgedActive,
            (false, false) => AlarmState::UnacknowledgedReturned,
            (false, true) => AlarmState::Normal,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AlarmState::UnacknowledgedActive => "Active, unacknowledged",
            AlarmState::AcknowledgedActive => "Active, acknowledged",
            AlarmState::UnacknowledgedReturned => "Returned, unacknowledged",
            AlarmState::Normal => "Normal",
        }
    }
}

/// One occurrence of an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmView {
    pub id: i64,
    pub asset_id: i64,
    pub asset_path: String,
    pub attribute: String,
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub state: AlarmState,
    pub active: bool,
    pub acknowledged: bool,
    /// Milliseconds UTC when the alarm was raised, and the value then.
    pub started_at: i64,
    pub start_value: Option<f64>,
    /// When it returned to normal, and the value then.
    pub ended_at: Option<i64>,
    pub end_value: Option<f64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    /// Shelved (until this time) or out of service: no notifications.
    pub shelved_until: Option<i64>,
    pub out_of_service: bool,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmComment {
    pub id: i64,
    pub author: String,
    pub at: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmDetail {
    pub alarm: AlarmView,
    pub comments: Vec<AlarmComment>,
}

/// Which occurrences a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum StateFilter {
    /// Active or not yet acknowledged (what an operator must see), including shelved ones.
    #[default]
    Open,
    Active,
    Unacknowledged,
    Shelved,
    /// Every occurrence, ended ones included (the history).
    All,
}

impl StateFilter {
    pub fn parse(text: &str) -> Result<StateFilter, AppError> {
        match text {
            "open" => Ok(StateFilter::Open),
            "active" => Ok(StateFilter::Active),
            "unacknowledged" => Ok(StateFilter::Unacknowledged),
            "shelved" => Ok(StateFilter::Shelved),
            "all" | "history" => Ok(StateFilter::All),
            other => Err(AppError::bad_request(format!(
                "unknown state {other:?}; use open, active, unacknowledged, shelved or all"
            ))),
        }
    }
}

/// A list query; the REST query string and the alarm page use the same one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmQuery {
    #[serde(default)]
    pub state: StateFilter,
    /// Only these severities; empty means all.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// Only alarms of this asset and its subtree.
    #[serde(default)]
    pub subtree: Option<i64>,
    /// Only occurrences that started at or after / before these times (ms UTC).
    #[serde(default)]
    pub from: Option<i64>,
    #[serde(default)]
    pub to: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// An alarm list as people and addresses ask for it, in words (the REST query string, the alarm page's filters);
/// [`AlarmFilter::parse`] is the one reading of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmFilter {
    /// open (the default), active, unacknowledged, shelved, or all (also: history).
    #[serde(default)]
    pub state: Option<String>,
    /// Severities, comma-separated; none means all.
    #[serde(default)]
    pub severity: Option<String>,
    /// An asset id or path: only alarms of it and its subtree.
    #[serde(default)]
    pub subtree: Option<String>,
    /// Only occurrences that started at or after / before these times (ms UTC).
    #[serde(default)]
    pub from: Option<i64>,
    #[serde(default)]
    pub to: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

impl AlarmFilter {
    /// The typed query, and the subtree as written (the service resolves it within the caller's grants).
    pub fn parse(&self) -> Result<(AlarmQuery, Option<String>), AppError> {
        let given = |text: &Option<String>| {
            text.as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        };
        let state = given(&self.state)
            .map(|state| StateFilter::parse(&state))
            .transpose()?
            .unwrap_or_default();
        let severities = given(&self.severity)
            .map(|list| {
                list.split(',')
                    .map(|s| Severity::parse(s.trim()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let query = AlarmQuery {
            state,
            severities,
            subtree: None,
            from: self.from,
            to: self.to,
            limit: self.limit,
        };
        Ok((query, given(&self.subtree)))
    }
}

/// Active alarms of a subtree by severity, and how many of the subtree's open alarms await acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub unacknowledged: u32,
}

impl AlarmCounts {
    pub fn active(&self) -> u32 {
        self.critical + self.high + self.medium + self.low
    }

    pub fn of(&self, severity: Severity) -> u32 {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }

    /// Counts one open occurrence: by severity while active, and as waiting while unacknowledged.
    pub fn count(&mut self, severity: Severity, active: bool, acknowledged: bool) {
        if active {
            match severity {
                Severity::Critical => self.critical += 1,
                Severity::High => self.high += 1,
                Severity::Medium => self.medium += 1,
                Severity::Low => self.low += 1,
            }
        }
        if !acknowledged {
            self.unacknowledged += 1;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AckRequest {
    /// The occurrences to acknowledge.
    pub ids: Vec<i64>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// The optional body of `POST /api/v1/alarms/{id}/ack` (the path names the alarm).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AckComment {
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ShelveRequest {
    /// How long the alarm point stays shelved; 0 unshelves it.
    pub minutes: u32,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ServiceRequest {
    /// False takes the alarm point out of service (engineers); true returns it.
    pub in_service: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewComment {
    pub text: String,
}

/// The most occurrences one list answers.
pub const MAX_LIST: u32 = 5_000;

/// The alarm load an operator faces, as ISA-18.2 measures it: occurrences raised per 10-minute period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmLoad {
    /// Start of the first period (ms UTC); periods follow without gaps.
    pub start: i64,
    pub period_ms: i64,
    /// Occurrences raised in each period, oldest first.
    pub per_period: Vec<u32>,
    /// The list the figure was counted from hit [`MAX_LIST`]: the real load is higher.
    pub capped: bool,
}

impl AlarmLoad {
    /// ISA-18.2's period.
    pub const PERIOD_MS: i64 = 10 * 60 * 1000;
    /// About one alarm per 10 minutes is "very likely to be acceptable"; two is "maximum manageable".
    pub const MANAGEABLE: u32 = 2;
    /// More than ten in 10 minutes is an alarm flood.
    pub const FLOOD: u32 = 10;

    /// Counts the start times that fall in `periods` periods ending at `now`.
    pub fn count(now: i64, periods: usize, starts: impl IntoIterator<Item = i64>, capped: bool) -> AlarmLoad {
        let end = now - now.rem_euclid(Self::PERIOD_MS) + Self::PERIOD_MS;
        let start = end - periods as i64 * Self::PERIOD_MS;
        let mut per_period = vec![0; periods];
        for at in starts {
            if (start..end).contains(&at) {
                per_period[((at - start) / Self::PERIOD_MS) as usize] += 1;
            }
        }
        AlarmLoad {
            start,
            period_ms: Self::PERIOD_MS,
            per_period,
            capped,
        }
    }

    pub fn total(&self) -> u32 {
        self.per_period.iter().sum()
    }

    pub fn average(&self) -> f64 {
        f64::from(self.total()) / self.per_period.len().max(1) as f64
    }

    pub fn peak(&self) -> u32 {
        self.per_period.iter().copied().max().unwrap_or(0)
    }

    /// Periods with more than `limit` alarms.
    pub fn periods_over(&self, limit: u32) -> usize {
        self.per_period.iter().filter(|&&n| n > limit).count()
    }
}

impl AlarmLoad {
    /// Counts the start times in the 10-minute periods covering `[from, to)` (the first starting at or before
    /// `from` on the 10-minute grid).
    pub fn between(from: i64, to: i64, starts: impl IntoIterator<Item = i64>, capped: bool) -> AlarmLoad {
        let periods = (to - from.div_euclid(Self::PERIOD_MS) * Self::PERIOD_MS + Self::PERIOD_MS - 1)
            .div_euclid(Self::PERIOD_MS)
            .max(1) as usize;
        let end = from.div_euclid(Self::PERIOD_MS) * Self::PERIOD_MS + periods as i64 * Self::PERIOD_MS;
        AlarmLoad::count(end - Self::PERIOD_MS, periods, starts, capped)
    }
}

/// An alarm that stood: still active at the end of a range, raised more than [`AlarmSummary::STANDING_MS`]
/// before it.
pub type StandingAlarm = AlarmView;

/// How often one alarm (an asset's attribute under one rule) was raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FrequentAlarm {
    pub asset_path: String,
    pub attribute: String,
    pub rule: String,
    pub severity: Severity,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeverityCount {
    pub severity: Severity,
    pub count: u32,
}

/// The alarms of a scope over a range as ISA-18.2 sums them up: how many, how severe, which alarms recur, which
/// stand, how fast operators acknowledged, and how often the rate was a flood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmSummary {
    /// Occurrences raised in the range.
    pub raised: u32,
    /// Raised per severity, every severity, most severe first.
    pub by_severity: Vec<SeverityCount>,
    /// The ten alarms raised most often, most often first.
    pub most_frequent: Vec<FrequentAlarm>,
    /// Active at the range's end and raised more than 24 hours before it, oldest first.
    pub standing: Vec<StandingAlarm>,
    /// Of those raised, how many were acknowledged, and the median and longest time it took (ms).
    pub acknowledged: u32,
    pub median_to_acknowledge_ms: Option<i64>,
    pub longest_to_acknowledge_ms: Option<i64>,
    /// Raised per 10 minutes: the average, the peak, and the periods over ISA-18.2's flood line (10).
    pub average_per_period: f64,
    pub peak_per_period: u32,
    pub flood_periods: u32,
    pub periods: u32,
    /// The occurrences were counted from a list cut at [`MAX_LIST`]: the real figures are higher.
    pub capped: bool,
}

impl AlarmSummary {
    pub const STANDING_MS: i64 = 24 * 3_600_000;
    pub const MOST_FREQUENT: usize = 10;

    /// The summary's figures as (label, text) lines, as the report's page and its PDF show them.
    pub fn facts(&self) -> [(&'static str, String); 3] {
        let severities = self
            .by_severity
            .iter()
            .map(|s| format!("{} {}", s.count, s.severity.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let acknowledged = match (self.median_to_acknowledge_ms, self.longest_to_acknowledge_ms) {
            (Some(median), Some(longest)) => format!(
                "{} of {}; median time to acknowledge {}, longest {}",
                self.acknowledged,
                self.raised,
                crate::reports::duration_text(median),
                crate::reports::duration_text(longest)
            ),
            _ => format!("{} of {}", self.acknowledged, self.raised),
        };
        [
            (
                "Raised",
                format!("{}{} ({severities})", self.raised, if self.capped { "+" } else { "" }),
            ),
            ("Acknowledged", acknowledged),
            (
                "Rate per 10 minutes",
                format!(
                    "average {:.2}, peak {}; {} of {} periods in flood (more than 10)",
                    self.average_per_period, self.peak_per_period, self.flood_periods, self.periods
                ),
            ),
        ]
    }

    /// Sums up `raised` (the occurrences that started in `[from, to)`) and `standing` candidates (any other
    /// occurrences known to be active at `to`; those of `raised` are considered too).
    pub fn of(raised: &[AlarmView], others: &[AlarmView], from: i64, to: i64, capped: bool) -> AlarmSummary {
        let in_range: Vec<&AlarmView> = raised.iter().filter(|a| (from..to).contains(&a.started_at)).collect();
        let by_severity = Severity::ALL
            .into_iter()
            .map(|severity| SeverityCount {
                severity,
                count: in_range.iter().filter(|a| a.severity == severity).count() as u32,
            })
            .collect();
        let mut frequency: std::collections::HashMap<(&str, &str, &str), (Severity, u32)> =
            std::collections::HashMap::new();
        for alarm in &in_range {
            let entry = frequency
                .entry((&alarm.asset_path, &alarm.attribute, &alarm.rule))
                .or_insert((alarm.severity, 0));
            entry.1 += 1;
        }
        let mut most_frequent: Vec<FrequentAlarm> = frequency
            .into_iter()
            .map(|((asset_path, attribute, rule), (severity, count))| FrequentAlarm {
                asset_path: asset_path.to_string(),
                attribute: attribute.to_string(),
                rule: rule.to_string(),
                severity,
                count,
            })
            .collect();
        most_frequent.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.severity.cmp(&a.severity))
                .then_with(|| (&a.asset_path, &a.attribute, &a.rule).cmp(&(&b.asset_path, &b.attribute, &b.rule)))
        });
        most_frequent.truncate(Self::MOST_FREQUENT);
        let mut standing: Vec<StandingAlarm> = Vec::new();
        for alarm in raised.iter().chain(others) {
            let stood = alarm.started_at <= to - Self::STANDING_MS && alarm.ended_at.is_none_or(|end| end > to);
            if stood && !standing.iter().any(|s| s.id == alarm.id) {
                standing.push(alarm.clone());
            }
        }
        standing.sort_by_key(|a| (a.started_at, a.id));
        let mut to_acknowledge: Vec<i64> = in_range
            .iter()
            .filter_map(|a| a.acknowledged_at.map(|at| (at - a.started_at).max(0)))
            .collect();
        to_acknowledge.sort_unstable();
        let load = AlarmLoad::between(from, to, in_range.iter().map(|a| a.started_at), capped);
        AlarmSummary {
            raised: in_range.len() as u32,
            by_severity,
            most_frequent,
            standing,
            acknowledged: to_acknowledge.len() as u32,
            median_to_acknowledge_ms: to_acknowledge.get(to_acknowledge.len() / 2).copied(),
            longest_to_acknowledge_ms: to_acknowledge.last().copied(),
            average_per_period: load.average(),
            peak_per_period: load.peak(),
            flood_periods: load.periods_over(AlarmLoad::FLOOD) as u32,
            periods: load.per_period.len() as u32,
            capped,
        }
    }
}

/// Longest shelving, so that nothing is silenced and forgotten.
pub const MAX_SHELVE_MINUTES: u32 = 7 * 24 * 60;

/// What happened to an alarm, as notifications carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum AlarmEventKind {
    Raised,
    Returned,
    Acknowledged,
    /// Still unacknowledged after the rule's re-notification period.
    Reminder,
    Shelved,
    Unshelved,
    OutOfService,
    InService,
}

/// One notification: to open browsers (server-sent events) and to webhooks. `id` is unique per notification, so a
/// receiver that gets one twice can drop the repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmEvent {
    pub id: String,
    pub kind: AlarmEventKind,
    pub at: i64,
    pub alarm: AlarmView,
}

/// A webhook that alarm notifications are posted to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewWebhook {
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// Only alarms at least this severe; none sends all.
    #[serde(default)]
    pub min_severity: Option<Severity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub min_severity: Option<Severity>,
    pub created_at: i64,
}

/// A new webhook with its signing secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    pub webhook: WebhookView,
    /// The HMAC-SHA256 key: each delivery carries `X-Gantry-Signature: sha256=<hex of HMAC(secret, body)>`.
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    /// The notification id (also the `X-Gantry-Delivery` header).
    pub id: String,
    pub alarm_id: i64,
    pub kind: AlarmEventKind,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// Longest message template of a rule.
pub const MAX_MESSAGE_TEMPLATE_CHARS: usize = 500;
/// Longest alarm message once filled in (an asset path can be long; `{asset}` may repeat).
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// Fills a message template, in one pass (a value that looks like a placeholder stays as it is), and cuts the
/// result at [`MAX_MESSAGE_CHARS`] however often placeholders repeat.
pub fn render_message(template: &str, fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let filled = after.find('}').and_then(|close| {
            let name = &after[..close];
            fields
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, value)| (value, close))
        });
        match filled {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
        if out.len() > 4 * MAX_MESSAGE_CHARS {
            rest = "";
            break;
        }
    }
    out.push_str(rest);
    // A missing unit leaves a double space, or a space before punctuation.
    let tidy = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ,", ",")
        .replace(" .", ".")
        .replace(" )", ")");
    match tidy.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &tidy[..end]),
        None => tidy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrence(id: i64, asset: &str, severity: Severity, started_at: i64) -> AlarmView {
        AlarmView {
            id,
            asset_id: 1,
            asset_path: asset.into(),
            attribute: "pressure".into(),
            rule: "High".into(),
            severity,
            message: String::new(),
            state: AlarmState::UnacknowledgedActive,
            active: true,
            acknowledged: false,
            started_at,
            start_value: None,
            ended_at: None,
            end_value: None,
            acknowledged_at: None,
            acknowledged_by: None,
            shelved_until: None,
            out_of_service: false,
            unit: None,
        }
    }

    #[test]
    fn a_summary_counts_ranks_and_finds_floods_and_standing_alarms() {
        const MINUTE: i64 = 60_000;
        let (from, to) = (100 * AlarmSummary::STANDING_MS, 101 * AlarmSummary::STANDING_MS);
        let mut raised = Vec::new();
        // Twelve of pump 1 in the first ten minutes (a flood), acknowledged after 1 to 12 minutes, cleared.
        for i in 0..12 {
            let mut alarm = occurrence(i, "/P/Pump 1", Severity::High, from + i * 30_000);
            alarm.acknowledged_at = Some(alarm.started_at + (i + 1) * MINUTE);
            alarm.ended_at = Some(alarm.started_at + 10_000);
            raised.push(alarm);
        }
        // Three critical ones of pump 2 later, still active; one before the range (not counted as raised).
        for i in 0..3 {
            raised.push(occurrence(
                100 + i,
                "/P/Pump 2",
                Severity::Critical,
                from + 3_600_000 + i * MINUTE,
            ));
        }
        raised.push(occurrence(200, "/P/Pump 3", Severity::Low, from - MINUTE));
        // Active since two days before the range's end: standing; one since 12 hours: not.
        let others = vec![
            occurrence(300, "/P/Tank", Severity::Medium, to - 2 * AlarmSummary::STANDING_MS),
            occurrence(301, "/P/Tank", Severity::Medium, to - AlarmSummary::STANDING_MS / 2),
        ];
        let summary = AlarmSummary::of(&raised, &others, from, to, false);
        assert_eq!(summary.raised, 15);
        let counts: Vec<(Severity, u32)> = summary.by_severity.iter().map(|s| (s.severity, s.count)).collect();
        assert_eq!(
            counts,
            vec![
                (Severity::Critical, 3),
                (Severity::High, 12),
                (Severity::Medium, 0),
                (Severity::Low, 0)
            ]
        );
        assert_eq!(summary.most_frequent[0].asset_path, "/P/Pump 1");
        assert_eq!(summary.most_frequent[0].count, 12);
        assert_eq!(summary.most_frequent[1].count, 3);
        assert_eq!(summary.acknowledged, 12);
        assert_eq!(summary.median_to_acknowledge_ms, Some(7 * MINUTE));
        assert_eq!(summary.longest_to_acknowledge_ms, Some(12 * MINUTE));
        assert_eq!(summary.periods, 144, "a day of 10-minute periods");
        assert_eq!(summary.peak_per_period, 12);
        assert_eq!(summary.flood_periods, 1);
        // The pre-range one started a day and a minute before the end and is active: it stood too.
        let standing: Vec<i64> = summary.standing.iter().map(|a| a.id).collect();
        assert_eq!(standing, vec![300, 200]);
    }

    #[test]
    fn rules_read_and_write_flat() {
        let text = r#"{"name":"High","condition":{"type":"limit","level":"hi","deadband":0.5},"severity":"high","on_delay_seconds":5}"#;
        let rule: AlarmRule = leptos::serde_json::from_str(text).unwrap();
        assert_eq!(
            rule.condition,
            RuleKind::Limit {
                level: LimitLevel::Hi,
                deadband: 0.5
            }
        );
        assert_eq!(rule.on_delay_seconds, 5);
        assert_eq!(leptos::serde_json::to_string(&rule).unwrap(), text);
        assert!(leptos::serde_json::from_str::<AlarmRule>(
            r#"{"name":"x","condition":{"type":"limit","level":"hi"},"severity":"high","bogus":1}"#
        )
        .is_err());
    }

    #[test]
    fn rules_are_checked() {
        let rule = |condition| AlarmRule {
            name: "r".into(),
            condition,
            severity: Severity::Low,
            on_delay_seconds: 0,
            off_delay_seconds: 0,
            message: None,
            renotify_minutes: None,
        };
        assert!(rule(RuleKind::NoData { after_seconds: 0 }).validate().is_err());
        assert!(rule(RuleKind::RateOfChange { max_per_minute: -1.0 })
            .validate()
            .is_err());
        assert!(rule(RuleKind::Limit {
            level: LimitLevel::Lo,
            deadband: f64::NAN
        })
        .validate()
        .is_err());
        assert!(rule(RuleKind::State { equals: 1.0 }).validate().is_ok());
        let twice = vec![
            rule(RuleKind::State { equals: 1.0 }),
            rule(RuleKind::State { equals: 0.0 }),
        ];
        assert!(validate_rules("a", &twice).is_err());
    }

    #[test]
    fn messages_fill_in_and_tidy_spaces() {
        let text = render_message(
            "{asset} {attribute} is {value} {unit}, above {rule} limit {limit}",
            &[
                ("asset", "/A/Pump 1".into()),
                ("attribute", "pressure".into()),
                ("value", "9.5".into()),
                ("unit", String::new()),
                ("rule", "High".into()),
                ("limit", "9".into()),
            ],
        );
        assert_eq!(text, "/A/Pump 1 pressure is 9.5, above High limit 9");
    }

    #[test]
    fn messages_stay_short_whatever_the_template() {
        let long_path = format!("/{}", "Plant ".repeat(200));
        let template = "{asset}".repeat(100_000);
        let text = render_message(&template, &[("asset", long_path)]);
        assert!(
            text.chars().count() <= MAX_MESSAGE_CHARS + 1,
            "{} chars",
            text.chars().count()
        );
        // Filled in once: a value that looks like a placeholder is left as it is; unknown ones stay too.
        let text = render_message(
            "{asset} {nope} {value}",
            &[("asset", "{value}".into()), ("value", "1".into())],
        );
        assert_eq!(text, "{value} {nope} 1");
        let rule = AlarmRule {
            name: "High".into(),
            condition: RuleKind::NoData { after_seconds: 5 },
            severity: Severity::High,
            on_delay_seconds: 0,
            off_delay_seconds: 0,
            message: Some("{asset}".repeat(1_000)),
            renotify_minutes: None,
        };
        assert!(rule.validate().unwrap_err().message.contains("at most 500 characters"));
    }

    #[test]
    fn states_follow_isa_18_2() {
        assert_eq!(AlarmState::of(true, false), AlarmState::UnacknowledgedActive);
        assert_eq!(AlarmState::of(false, true), AlarmState::Normal);
        assert_eq!(StateFilter::parse("history").unwrap(), StateFilter::All);
        assert!(StateFilter::parse("bogus").is_err());
        let filter = AlarmFilter {
            state: Some(" active ".into()),
            severity: Some("critical, high".into()),
            subtree: Some("/Site A".into()),
            ..AlarmFilter::default()
        };
        let (query, subtree) = filter.parse().unwrap();
        assert_eq!(query.state, StateFilter::Active);
        assert_eq!(query.severities, [Severity::Critical, Severity::High]);
        assert_eq!(subtree.as_deref(), Some("/Site A"));
        let (query, subtree) = AlarmFilter {
            state: Some(String::new()),
            ..AlarmFilter::default()
        }
        .parse()
        .unwrap();
        assert_eq!((query.state, subtree), (StateFilter::Open, None));
        assert!(AlarmFilter {
            severity: Some("urgent".into()),
            ..AlarmFilter::default()
        }
        .parse()
        .is_err());
    }

    #[test]
    fn the_load_counts_alarms_per_ten_minutes() {
        let period = AlarmLoad::PERIOD_MS;
        let now = 100 * period + 5_000;
        let starts = [now, now - 1000, now - period, now - 6 * period, now - 7 * period, 0];
        let load = AlarmLoad::count(now, 6, starts, false);
        assert_eq!(load.per_period.len(), 6);
        // The last period is the current one; the oldest reaches back five more; older ones are not counted.
        assert_eq!(load.per_period, vec![0, 0, 0, 0, 1, 2]);
        assert_eq!(load.start, 95 * period);
        assert_eq!(load.total(), 3);
        assert_eq!(load.peak(), 2);
        assert_eq!(load.periods_over(1), 1);
        assert!((load.average() - 0.5).abs() < 1e-9);
    }
}
