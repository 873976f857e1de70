//! The evaluation of one alarm point, free of storage and clocks: a rule compiled against its attribute, the
//! point's condition (normal, pending on, active, pending off), and the transitions a sample or the passing of time
//! causes. Everything the engine persists or notifies comes out of [`on_sample`] and [`advance`].

use app::alarms::{AlarmRule, LimitLevel, RuleKind};
use app::assets::Limits;

/// A reading as rules see it: booleans are 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub ts: i64,
    pub value: f64,
}

/// Where a point's condition stands. The pending states remember since when and the value then, so that a
/// restart can finish a delay at the right time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Normal,
    PendingOn { since: i64, value: Option<f64> },
    Active,
    PendingOff { since: i64, value: Option<f64> },
}

impl Condition {
    /// Whether an occurrence is open (raised and not yet returned).
    pub fn is_raised(&self) -> bool {
        matches!(self, Condition::Active | Condition::PendingOff { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Condition::Normal => "normal",
            Condition::PendingOn { .. } => "pending_on",
            Condition::Active => "active",
            Condition::PendingOff { .. } => "pending_off",
        }
    }

    /// Rebuilds a stored condition.
    pub fn from_parts(name: &str, since: Option<i64>, value: Option<f64>) -> Condition {
        match (name, since) {
            ("pending_on", Some(since)) => Condition::PendingOn { since, value },
            ("active", _) => Condition::Active,
            ("pending_off", Some(since)) => Condition::PendingOff { since, value },
            _ => Condition::Normal,
        }
    }

    pub fn since(&self) -> Option<i64> {
        match self {
            Condition::PendingOn { since, .. } | Condition::PendingOff { since, .. } => Some(*since),
            _ => None,
        }
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Condition::PendingOn { value, .. } | Condition::PendingOff { value, .. } => *value,
            _ => None,
        }
    }
}

/// What a point's evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// The alarm is raised at `at` (an occurrence opens).
    Raise { at: i64, value: Option<f64> },
    /// The alarm returned to normal at `at` (the open occurrence ends).
    Return { at: i64, value: Option<f64> },
}

/// A point's state between samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointState {
    pub condition: Condition,
    /// The newest sample evaluated; older ones arriving later are history, not news, and are skipped.
    pub last: Option<Sample>,
}

impl PointState {
    pub fn new() -> PointState {
        PointState {
            condition: Condition::Normal,
            last: None,
        }
    }
}

impl Default for PointState {
    fn default() -> Self {
        PointState::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Test {
    Above { limit: f64, deadband: f64 },
    Below { limit: f64, deadband: f64 },
    Rate { max_per_ms: f64 },
    NoData { after_ms: i64 },
    Equals(f64),
}

/// A rule made ready for evaluation against one attribute's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compiled {
    test: Test,
    on_delay_ms: i64,
    off_delay_ms: i64,
    /// The limit a limit rule compares with (for messages).
    pub limit: Option<f64>,
}

impl Compiled {
    /// None when the rule cannot apply (a limit rule whose limit the attribute no longer has).
    pub fn new(rule: &AlarmRule, limits: &Limits) -> Option<Compiled> {
        let (test, limit) = match &rule.condition {
            RuleKind::Limit { level, deadband } => {
                let limit = limits.at(*level)?;
                let test = match level {
                    LimitLevel::Hi | LimitLevel::HiHi => Test::Above {
                        limit,
                        deadband: *deadband,
                    },
                    LimitLevel::Lo | LimitLevel::LoLo => Test::Below {
                        limit,
                        deadband: *deadband,
                    },
                };
                (test, Some(limit))
            }
            RuleKind::RateOfChange { max_per_minute } => (
                Test::Rate {
                    max_per_ms: max_per_minute / 60_000.0,
                },
                None,
            ),
            RuleKind::NoData { after_seconds } => (
                Test::NoData {
                    after_ms: i64::from(*after_seconds) * 1000,
                },
                None,
            ),
            RuleKind::State { equals } => (Test::Equals(*equals), Some(*equals)),
        };
        Some(Compiled {
            test,
            on_delay_ms: i64::from(rule.on_delay_seconds) * 1000,
            off_delay_ms: i64::from(rule.off_delay_seconds) * 1000,
            limit,
        })
    }

    pub fn is_no_data(&self) -> bool {
        matches!(self.test, Test::NoData { .. })
    }

    /// Whether the rule needs the series' last stored reading to start (rates and silences span readings).
    pub fn needs_history(&self) -> bool {
        matches!(self.test, Test::Rate { .. } | Test::NoData { .. })
    }

    /// Whether the sample breaches the rule; `raised` applies the deadband of a limit already crossed.
    fn breached(&self, raised: bool, sample: Sample, previous: Option<Sample>) -> bool {
        match self.test {
            Test::Above { limit, deadband } => {
                if raised {
                    sample.value > limit - deadband
                } else {
                    sample.value > limit
                }
            }
            Test::Below { limit, deadband } => {
                if raised {
                    sample.value < limit + deadband
                } else {
                    sample.value < limit
                }
            }
            Test::Rate { max_per_ms } => match previous {
                Some(p) if sample.ts > p.ts => {
                    ((sample.value - p.value) / (sample.ts - p.ts) as f64).abs() > max_per_ms
                }
                _ => raised,
            },
            // A reading is data.
            Test::NoData { .. } => false,
            Test::Equals(target) => sample.value == target,
        }
    }
}

/// Finishes delays and silences that end by `now`, in time order.
pub fn advance(rule: &Compiled, state: &mut PointState, now: i64, out: &mut Vec<Transition>) {
    loop {
        match state.condition {
            Condition::PendingOn { since, value } if now >= since + rule.on_delay_ms => {
                state.condition = Condition::Active;
                out.push(Transition::Raise {
                    at: since + rule.on_delay_ms,
                    value,
                });
            }
            Condition::PendingOff { since, value } => {
                let returns_at = since + rule.off_delay_ms;
                // A no-data condition can hold again before its off-delay ends: the silence starts over after the
                // reading that ended it, and the alarm simply stays active.
                let silent_again = match (rule.test, state.last) {
                    (Test::NoData { after_ms }, Some(last)) => Some(last.ts + after_ms),
                    _ => None,
                };
                if silent_again.is_some_and(|at| at <= returns_at && now >= at) {
                    state.condition = Condition::Active;
                } else if now >= returns_at {
                    state.condition = Condition::Normal;
                    out.push(Transition::Return { at: returns_at, value });
                } else {
                    return;
                }
            }
            Condition::Normal => {
                if let (Test::NoData { after_ms }, Some(last)) = (rule.test, state.last) {
                    let silent_from = last.ts + after_ms;
                    if now >= silent_from {
                        state.condition = Condition::PendingOn {
                            since: silent_from,
                            value: None,
                        };
                        continue;
                    }
                }
                return;
            }
            _ => return,
        }
    }
}

/// Evaluates one sample; samples not newer than the last one evaluated are skipped.
pub fn on_sample(rule: &Compiled, state: &mut PointState, sample: Sample, out: &mut Vec<Transition>) {
    let previous = state.last;
    if previous.is_some_and(|p| sample.ts <= p.ts) {
        return;
    }
    // The sample proves the condition held (or not) up to its time: delays ending before it end first. A silence
    // ends with this very sample, so only delays are finished for no-data rules.
    if !rule.is_no_data() {
        advance(rule, state, sample.ts, out);
    } else if let Condition::PendingOn { .. } | Condition::PendingOff { .. } = state.condition {
        advance(rule, state, sample.ts, out);
    }
    let breached = rule.breached(state.condition.is_raised(), sample, previous);
    state.last = Some(sample);
    let value = Some(sample.value);
    match (state.condition, breached) {
        (Condition::Normal, true) => {
            if rule.on_delay_ms == 0 {
                state.condition = Condition::Active;
                out.push(Transition::Raise { at: sample.ts, value });
            } else {
                state.condition = Condition::PendingOn {
                    since: sample.ts,
                    value,
                };
            }
        }
        (Condition::PendingOn { .. }, false) => state.condition = Condition::Normal,
        (Condition::Active, false) => {
            if rule.off_delay_ms == 0 {
                state.condition = Condition::Normal;
                out.push(Transition::Return { at: sample.ts, value });
            } else {
                state.condition = Condition::PendingOff {
                    since: sample.ts,
                    value,
                };
            }
        }
        (Condition::PendingOff { .. }, true) => state.condition = Condition::Active,
        _ => {}
    }
}

/// When the point next needs [`advance`] without a new sample, if ever.
pub fn next_deadline(rule: &Compiled, state: &PointState) -> Option<i64> {
    match state.condition {
        Condition::PendingOn { since, .. } => Some(since + rule.on_delay_ms),
        Condition::PendingOff { since, .. } => Some(since + rule.off_delay_ms),
        Condition::Normal => match (rule.test, state.last) {
            (Test::NoData { after_ms }, Some(last)) => Some(last.ts + after_ms),
            _ => None,
        },
        Condition::Active => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::alarms::Severity;

    fn rule(condition: RuleKind, on: u32, off: u32) -> AlarmRule {
        AlarmRule {
            name: "r".into(),
            condition,
            severity: Severity::High,
            on_delay_seconds: on,
            off_delay_seconds: off,
            message: None,
            renotify_minutes: None,
        }
    }

    fn limits() -> Limits {
        Limits {
            lolo: Some(0.0),
            lo: Some(10.0),
            hi: Some(90.0),
            hihi: Some(100.0),
        }
    }

    fn run(compiled: &Compiled, state: &mut PointState, samples: &[(i64, f64)]) -> Vec<Transition> {
        let mut out = Vec::new();
        for &(ts, value) in samples {
            on_sample(compiled, state, Sample { ts, value }, &mut out);
        }
        out
    }

    #[test]
    fn a_high_limit_raises_above_and_returns_below_the_deadband() {
        let hi = rule(
            RuleKind::Limit {
                level: LimitLevel::Hi,
                deadband: 5.0,
            },
            0,
            0,
        );
        let compiled = Compiled::new(&hi, &limits()).unwrap();
        let mut state = PointState::new();
        let out = run(&compiled, &mut state, &[(1, 50.0), (2, 91.0), (3, 88.0), (4, 84.0)]);
        assert_eq!(
            out,
            vec![
                Transition::Raise {
                    at: 2,
                    value: Some(91.0)
                },
                Transition::Return {
                    at: 4,
                    value: Some(84.0)
                }
            ],
            "88 is inside the 5-unit deadband, 84 is out of it"
        );
    }

    #[test]
    fn a_low_limit_and_a_missing_limit() {
        let lo = rule(
            RuleKind::Limit {
                level: LimitLevel::LoLo,
                deadband: 0.0,
            },
            0,
            0,
        );
        let compiled = Compiled::new(&lo, &limits()).unwrap();
        let mut state = PointState::new();
        let out = run(&compiled, &mut state, &[(1, 5.0), (2, -1.0), (3, 0.0)]);
        assert_eq!(out.len(), 2);
        assert!(Compiled::new(&lo, &Limits::default()).is_none());
    }

    #[test]
    fn on_delay_needs_the_condition_to_hold_and_raises_at_the_deadline() {
        let hi = rule(
            RuleKind::Limit {
                level: LimitLevel::Hi,
                deadband: 0.0,
            },
            10,
            0,
        );
        let compiled = Compiled::new(&hi, &limits()).unwrap();
        let mut state = PointState::new();
        // A blip shorter than the delay raises nothing.
        assert!(run(&compiled, &mut state, &[(0, 95.0), (5_000, 50.0)]).is_empty());
        assert_eq!(state.condition, Condition::Normal);
        let out = run(&compiled, &mut state, &[(20_000, 95.0), (25_000, 96.0)]);
        assert!(out.is_empty());
        assert_eq!(next_deadline(&compiled, &state), Some(30_000));
        let mut out = Vec::new();
        advance(&compiled, &mut state, 29_999, &mut out);
        assert!(out.is_empty());
        advance(&compiled, &mut state, 31_000, &mut out);
        assert_eq!(
            out,
            vec![Transition::Raise {
                at: 30_000,
                value: Some(95.0)
            }]
        );
    }

    #[test]
    fn off_delay_keeps_the_alarm_through_short_returns() {
        let hi = rule(
            RuleKind::Limit {
                level: LimitLevel::Hi,
                deadband: 0.0,
            },
            0,
            10,
        );
        let compiled = Compiled::new(&hi, &limits()).unwrap();
        let mut state = PointState::new();
        let out = run(
            &compiled,
            &mut state,
            &[(0, 95.0), (1_000, 50.0), (5_000, 95.0), (6_000, 50.0), (20_000, 50.0)],
        );
        assert_eq!(
            out,
            vec![
                Transition::Raise {
                    at: 0,
                    value: Some(95.0)
                },
                Transition::Return {
                    at: 16_000,
                    value: Some(50.0)
                }
            ]
        );
    }

    #[test]
    fn rate_of_change_compares_consecutive_readings() {
        let fast = rule(RuleKind::RateOfChange { max_per_minute: 6.0 }, 0, 0);
        let compiled = Compiled::new(&fast, &limits()).unwrap();
        let mut state = PointState::new();
        // 1 per 10 s is 6 per minute: not above; 2 per 10 s is.
        let out = run(
            &compiled,
            &mut state,
            &[(0, 0.0), (10_000, 1.0), (20_000, 3.0), (30_000, 3.5)],
        );
        assert_eq!(
            out,
            vec![
                Transition::Raise {
                    at: 20_000,
                    value: Some(3.0)
                },
                Transition::Return {
                    at: 30_000,
                    value: Some(3.5)
                }
            ]
        );
    }

    #[test]
    fn no_data_raises_after_the_silence_and_returns_with_the_next_reading() {
        let silent = rule(RuleKind::NoData { after_seconds: 60 }, 0, 0);
        let compiled = Compiled::new(&silent, &limits()).unwrap();
        let mut state = PointState::new();
        assert!(run(&compiled, &mut state, &[(0, 1.0), (30_000, 1.0)]).is_empty());
        let mut out = Vec::new();
        advance(&compiled, &mut state, 80_000, &mut out);
        assert!(out.is_empty());
        advance(&compiled, &mut state, 95_000, &mut out);
        assert_eq!(
            out,
            vec![Transition::Raise {
                at: 90_000,
                value: None
            }]
        );
        out.clear();
        on_sample(
            &compiled,
            &mut state,
            Sample {
                ts: 100_000,
                value: 2.0,
            },
            &mut out,
        );
        assert_eq!(
            out,
            vec![Transition::Return {
                at: 100_000,
                value: Some(2.0)
            }]
        );
    }

    #[test]
    fn state_rules_and_stale_samples() {
        let tripped = rule(RuleKind::State { equals: 1.0 }, 0, 0);
        let compiled = Compiled::new(&tripped, &Limits::default()).unwrap();
        let mut state = PointState::new();
        let out = run(&compiled, &mut state, &[(10, 0.0), (20, 1.0), (15, 0.0), (20, 0.0)]);
        assert_eq!(out.len(), 1, "samples at or before the newest one are skipped");
        assert!(state.condition.is_raised());
    }

    #[test]
    fn conditions_survive_storage() {
        for condition in [
            Condition::Normal,
            Condition::Active,
            Condition::PendingOn {
                since: 5,
                value: Some(1.5),
            },
            Condition::PendingOff { since: 7, value: None },
        ] {
            assert_eq!(
                Condition::from_parts(condition.name(), condition.since(), condition.value()),
                condition
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Sample { after_ms: i64, value: f64 },
            Tick { after_ms: i64 },
            AcknowledgeAll,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                5 => (0i64..4_000, 0.0f64..20.0).prop_map(|(after_ms, value)| Op::Sample { after_ms, value }),
                2 => (0i64..10_000).prop_map(|after_ms| Op::Tick { after_ms }),
                1 => Just(Op::AcknowledgeAll),
            ]
        }

        fn any_rule() -> impl Strategy<Value = AlarmRule> {
            let condition = prop_oneof![
                (0.0f64..3.0).prop_map(|deadband| RuleKind::Limit {
                    level: LimitLevel::Hi,
                    deadband
                }),
                (0.0f64..3.0).prop_map(|deadband| RuleKind::Limit {
                    level: LimitLevel::Lo,
                    deadband
                }),
                (1.0f64..200.0).prop_map(|max_per_minute| RuleKind::RateOfChange { max_per_minute }),
                (1u32..5).prop_map(|after_seconds| RuleKind::NoData { after_seconds }),
            ];
            (condition, 0u32..4, 0u32..4).prop_map(|(condition, on, off)| rule(condition, on, off))
        }

        /// An occurrence as the store would hold it.
        #[derive(Debug, Clone)]
        struct Occurrence {
            start: i64,
            end: Option<i64>,
            acknowledged: bool,
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// Whatever the readings, ticks and acknowledgements: at most one open occurrence per point, open
            /// exactly while the condition is raised; occurrences start and end in time order and never reopen;
            /// an acknowledgement is never taken back.
            #[test]
            fn the_lifecycle_keeps_its_invariants(rule in any_rule(), ops in prop::collection::vec(op(), 1..120)) {
                let limits = Limits { lolo: None, lo: Some(5.0), hi: Some(15.0), hihi: None };
                let compiled = Compiled::new(&rule, &limits).unwrap();
                let mut state = PointState::new();
                let mut occurrences: Vec<Occurrence> = Vec::new();
                let mut now = 0i64;
                let mut last_transition = i64::MIN;
                for op in ops {
                    let before: Vec<Occurrence> = occurrences.clone();
                    let mut out = Vec::new();
                    match op {
                        Op::Sample { after_ms, value } => {
                            now += after_ms;
                            on_sample(&compiled, &mut state, Sample { ts: now, value }, &mut out);
                        }
                        Op::Tick { after_ms } => {
                            now += after_ms;
                            advance(&compiled, &mut state, now, &mut out);
                        }
                        Op::AcknowledgeAll => occurrences.iter_mut().for_each(|o| o.acknowledged = true),
                    }
                    for transition in out {
                        match transition {
                            Transition::Raise { at, .. } => {
                                prop_assert!(occurrences.iter().all(|o| o.end.is_some()), "raised while one is open");
                                prop_assert!(at >= last_transition && at <= now);
                                last_transition = at;
                                occurrences.push(Occurrence { start: at, end: None, acknowledged: false });
                            }
                            Transition::Return { at, .. } => {
                                let open = occurrences.iter_mut().find(|o| o.end.is_none());
                                prop_assert!(open.is_some(), "returned without an open occurrence");
                                let open = open.unwrap();
                                prop_assert!(at >= open.start && at <= now);
                                last_transition = at;
                                open.end = Some(at);
                            }
                        }
                    }
                    let open = occurrences.iter().filter(|o| o.end.is_none()).count();
                    prop_assert!(open <= 1);
                    prop_assert_eq!(open == 1, state.condition.is_raised());
                    for (old, new) in before.iter().zip(&occurrences) {
                        prop_assert!(!old.acknowledged || new.acknowledged, "an acknowledgement was undone");
                        prop_assert!(old.end.is_none() || old.end == new.end, "an ended occurrence changed");
                        prop_assert_eq!(old.start, new.start);
                    }
                    // A restart in between changes nothing: the stored form rebuilds the same condition.
                    let stored = Condition::from_parts(state.condition.name(), state.condition.since(), state.condition.value());
                    prop_assert_eq!(stored, state.condition);
                }
            }
        }
    }
}
