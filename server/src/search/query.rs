//! The search box's language, parsed into a typed query before the index sees it. Errors say where.
//!
//! ```text
//! pump 7 north                       words: every one must match (prefix, one typo in words of 4+ letters)
//! "north plant"                      a phrase: its words in that order
//! template:Pump category:utilities   filters (a value with spaces is quoted: under:"/South Plant")
//! kind:asset|device                  one of several kinds
//! "outlet temperature" > 100         an attribute condition on its current value (also >=, <, <=, =),
//! speed < 10 rpm                     with a unit that must match the attribute's
//! -spare                             a word or filter that must not match
//! ```

use app::search::SearchKind;

/// A filter on a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Assets of this template or of a template based on it.
    Template(String),
    Category(String),
    Label(String),
    /// Assets at or below this path.
    Under(String),
    Kind(Vec<SearchKind>),
    Severity(String),
    State(String),
    /// `has:alarm`: assets with an open alarm.
    HasAlarm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

impl Comparison {
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Comparison::Less => value < bound,
            Comparison::LessOrEqual => value <= bound,
            Comparison::Equal => value == bound,
            Comparison::GreaterOrEqual => value >= bound,
            Comparison::Greater => value > bound,
        }
    }
}

/// `"outlet temperature" > 100 °C`: the attribute's current value compared with a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub attribute: String,
    pub comparison: Comparison,
    pub value: f64,
    pub unit: Option<String>,
}

/// One part of a query, and whether it must not match.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// A word (lowercased), matched by prefix and with one typo when it has 4 letters or more.
    Word(String),
    /// Words in this order.
    Phrase(Vec<String>),
    Filter(Filter),
    Condition(Condition),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedQuery {
    /// Each clause with whether it is negated (`-word`).
    pub clauses: Vec<(Clause, bool)>,
}

impl ParsedQuery {
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

/// What is wrong with a query, and where (a character offset into it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {at})")]
pub struct QueryError {
    pub at: usize,
    pub message: String,
}

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// The most clauses a query may have.
pub const MAX_CLAUSES: usize = 32;

const FILTERS: &str = "template, category, label, under, kind, severity, state, has";

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word, with its offset.
    Bare(String, usize),
    Quoted(String, usize),
    Comparison(Comparison, usize),
    /// `-` right before a clause.
    Not(usize),
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let start = i;
            let end = chars[i + 1..]
                .iter()
                .position(|&c| c == '"')
                .map(|p| i + 1 + p)
                .ok_or_else(|| QueryError {
                    at: start,
                    message: "a quote is not closed".into(),
                })?;
            tokens.push(Token::Quoted(chars[i + 1..end].iter().collect(), start));
            i = end + 1;
        } else if matches!(c, '<' | '>' | '=') {
            let two = chars.get(i + 1) == Some(&'=');
            let comparison = match (c, two) {
                ('<', true) => Comparison::LessOrEqual,
                ('<', false) => Comparison::Less,
                ('>', true) => Comparison::GreaterOrEqual,
                ('>', false) => Comparison::Greater,
                _ => Comparison::Equal,
            };
            tokens.push(Token::Comparison(comparison, i));
            i += if two && c != '=' { 2 } else { 1 };
        } else if c == '-'
            && chars
                .get(i + 1)
                .is_some_and(|n| !n.is_whitespace() && !n.is_ascii_digit())
        {
            tokens.push(Token::Not(i));
            i += 1;
        } else {
            let start = i;
            // A filter's quoted value belongs to its word: `under:"/South Plant"`.
            let mut word = String::new();
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '<' | '>' | '=') {
                if chars[i] == '"' && word.ends_with(':') {
                    let end = chars[i + 1..]
                        .iter()
                        .position(|&c| c == '"')
                        .map(|p| i + 1 + p)
                        .ok_or_else(|| QueryError {
                            at: i,
                            message: "a quote is not closed".into(),
                        })?;
                    word.extend(&chars[i + 1..end]);
                    i = end + 1;
                    break;
                }
                word.push(chars[i]);
                i += 1;
            }
            tokens.push(Token::Bare(word, start));
        }
    }
    Ok(tokens)
}

fn kind_named(name: &str) -> Option<SearchKind> {
    SearchKind::ALL.into_iter().find(|kind| kind.as_str() == name)
}

fn filter(key: &str, value: &str, at: usize) -> Result<Filter, QueryError> {
    let error = |message: String| QueryError { at, message };
    if value.is_empty() {
        return Err(error(format!("`{key}:` needs a value")));
    }
    Ok(match key {
        "template" => Filter::Template(value.to_string()),
        "category" => Filter::Category(value.to_lowercase()),
        "label" => Filter::Label(value.to_lowercase()),
        "under" => Filter::Under(value.trim_end_matches('/').to_string()),
        "severity" => {
            let severity = value.to_lowercase();
            if !app::alarms::Severity::ALL.iter().any(|s| s.as_str() == severity) {
                return Err(error(format!(
                    "`{value}` is not a severity; severities are {}",
                    app::alarms::Severity::ALL.map(|s| s.as_str()).join(", ")
                )));
            }
            Filter::Severity(severity)
        }
        "state" => {
            let state = value.to_lowercase();
            if !super::index::ALARM_STATES.contains(&state.as_str()) {
                return Err(error(format!(
                    "`{value}` is not an alarm state; states are {}",
                    super::index::ALARM_STATES.join(", ")
                )));
            }
            Filter::State(state)
        }
        "kind" => Filter::Kind(
            value
                .split('|')
                .map(|name| {
                    kind_named(&name.to_lowercase()).ok_or_else(|| {
                        error(format!(
                            "`{name}` is not a kind; kinds are {}",
                            SearchKind::ALL.map(|k| k.as_str()).join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        "has" if value.eq_ignore_ascii_case("alarm") => Filter::HasAlarm,
        "has" => return Err(error(format!("`has:{value}` is not known; `has:alarm` is"))),
        _ => return Err(error(format!("`{key}:` is not a filter; filters are {FILTERS}"))),
    })
}

/// Words of a text as the index splits them: lowercased runs of letters and digits.
pub fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A text's words as one clause: a word, or a phrase of several; none for a text without letters or digits.
fn words_clause(text: &str) -> Option<Clause> {
    let mut words = words_of(text);
    match words.len() {
        0 => None,
        1 => words.pop().map(Clause::Word),
        _ => Some(Clause::Phrase(words)),
    }
}

/// Parses the search box's text.
pub fn parse(text: &str) -> Result<ParsedQuery, QueryError> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryError {
            at: MAX_QUERY_CHARS,
            message: format!("a query is at most {MAX_QUERY_CHARS} characters"),
        });
    }
    let tokens = tokenize(text)?;
    let mut query = ParsedQuery::default();
    let mut i = 0;
    while i < tokens.len() {
        let (negated, at) = match &tokens[i] {
            Token::Not(at) => {
                i += 1;
                (true, *at)
            }
            Token::Bare(_, at) | Token::Quoted(_, at) | Token::Comparison(_, at) => (false, *at),
        };
        let Some(token) = tokens.get(i) else {
            return Err(QueryError {
                at,
                message: "`-` must come right before what must not match".into(),
            });
        };
        // An attribute condition: a name (quoted, or one word), a comparison, a number, maybe a unit.
        if let Some(Token::Comparison(comparison, op_at)) = tokens.get(i + 1) {
            let attribute = match token {
                Token::Bare(word, _) | Token::Quoted(word, _) => word.clone(),
                _ => {
                    return Err(QueryError {
                        at: *op_at,
                        message: "a comparison needs an attribute name before it".into(),
                    })
                }
            };
            let number = match tokens.get(i + 2) {
                Some(Token::Bare(number, number_at)) => number
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| QueryError {
                        at: *number_at,
                        message: format!("`{number}` is not a number"),
                    })?,
                _ => {
                    return Err(QueryError {
                        at: *op_at,
                        message: "a comparison needs a number after it".into(),
                    })
                }
            };
            i += 3;
            // A unit follows when the next word is no clause of its own (no filter, no comparison after it).
            let unit = match (tokens.get(i), tokens.get(i + 1)) {
                (Some(Token::Bare(unit, _)), next)
                    if !unit.contains(':') && !matches!(next, Some(Token::Comparison(..))) && looks_like_unit(unit) =>
                {
                    i += 1;
                    Some(unit.clone())
                }
                _ => None,
            };
            query.clauses.push((
                Clause::Condition(Condition {
                    attribute,
                    comparison: *comparison,
                    value: number,
                    unit,
                }),
                negated,
            ));
        } else {
            let clause = match token {
                Token::Bare(word, at) => match word.split_once(':') {
                    Some((key, value)) if !key.is_empty() => Clause::Filter(filter(&key.to_lowercase(), value, *at)?),
                    _ => match words_clause(word) {
                        Some(clause) => clause,
                        None => {
                            i += 1;
                            continue;
                        }
                    },
                },
                Token::Quoted(text, _) => match words_clause(text) {
                    Some(clause) => clause,
                    None => {
                        i += 1;
                        continue;
                    }
                },
                Token::Comparison(_, at) => {
                    return Err(QueryError {
                        at: *at,
                        message: "a comparison needs an attribute name before it".into(),
                    })
                }
                Token::Not(at) => {
                    return Err(QueryError {
                        at: *at,
                        message: "`-` must come right before what must not match".into(),
                    })
                }
            };
            i += 1;
            query.clauses.push((clause, negated));
        }
        if query.clauses.len() > MAX_CLAUSES {
            return Err(QueryError {
                at,
                message: format!("a query has at most {MAX_CLAUSES} words, filters and conditions"),
            });
        }
    }
    Ok(query)
}

/// Whether the word after a condition's number is its unit rather than a word of its own: a unit with a sign in
/// it (`°C`, `m³/h`, `%`) or one of the common plain ones, so `speed < 10 pump` still searches for pumps.
fn looks_like_unit(word: &str) -> bool {
    const PLAIN: &[&str] = &[
        "rpm", "bar", "mbar", "pa", "kpa", "mpa", "psi", "hz", "khz", "a", "ma", "ka", "v", "mv", "kv", "w", "kw",
        "mw", "kwh", "mwh", "j", "kj", "k", "c", "f", "m", "mm", "cm", "km", "s", "ms", "min", "h", "l", "ml", "kg",
        "g", "t", "n", "nm", "ppm", "pct",
    ];
    word.chars().count() <= 12
        && word.parse::<f64>().is_err()
        && (word.chars().any(|c| !c.is_alphanumeric()) || PLAIN.contains(&word.to_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clauses(text: &str) -> Vec<(Clause, bool)> {
        parse(text).unwrap().clauses
    }

    #[test]
    fn words_phrases_and_negation() {
        assert_eq!(
            clauses("Pump 7  North"),
            vec![
                (Clause::Word("pump".into()), false),
                (Clause::Word("7".into()), false),
                (Clause::Word("north".into()), false)
            ]
        );
        assert_eq!(
            clauses("\"North Plant\" -spare"),
            vec![
                (Clause::Phrase(vec!["north".into(), "plant".into()]), false),
                (Clause::Word("spare".into()), true)
            ]
        );
        // A hyphenated or dotted name is its words in order.
        assert_eq!(
            clauses("p-101"),
            vec![(Clause::Phrase(vec!["p".into(), "101".into()]), false)]
        );
    }

    #[test]
    fn filters_with_quoted_values_and_several_kinds() {
        assert_eq!(
            clauses("template:Pump under:\"/South Plant/\" kind:asset|device -label:demo has:alarm"),
            vec![
                (Clause::Filter(Filter::Template("Pump".into())), false),
                (Clause::Filter(Filter::Under("/South Plant".into())), false),
                (
                    Clause::Filter(Filter::Kind(vec![SearchKind::Asset, SearchKind::Device])),
                    false
                ),
                (Clause::Filter(Filter::Label("demo".into())), true),
                (Clause::Filter(Filter::HasAlarm), false),
            ]
        );
    }

    #[test]
    fn attribute_conditions_with_and_without_units() {
        assert_eq!(
            clauses("\"outlet temperature\" > 100 °C compressor"),
            vec![
                (
                    Clause::Condition(Condition {
                        attribute: "outlet temperature".into(),
                        comparison: Comparison::Greater,
                        value: 100.0,
                        unit: Some("°C".into()),
                    }),
                    false
                ),
                (Clause::Word("compressor".into()), false),
            ]
        );
        // A word after the number that is no unit is a word of its own.
        assert_eq!(clauses("speed < 10 pump").len(), 2);
        assert_eq!(
            clauses("speed<=10.5 rpm template:Pump"),
            vec![
                (
                    Clause::Condition(Condition {
                        attribute: "speed".into(),
                        comparison: Comparison::LessOrEqual,
                        value: 10.5,
                        unit: Some("rpm".into()),
                    }),
                    false
                ),
                (Clause::Filter(Filter::Template("Pump".into())), false),
            ]
        );
        assert!(Comparison::Greater.holds(101.0, 100.0));
        assert!(!Comparison::Less.holds(10.0, 10.0));
    }

    #[test]
    fn errors_say_what_and_where() {
        let error = parse("pump colour:red").unwrap_err();
        assert_eq!(error.at, 5);
        assert!(error.message.contains("`colour:` is not a filter"), "{error}");
        let error = parse("kind:asset|pump").unwrap_err();
        assert!(error.message.contains("`pump` is not a kind"), "{error}");
        let error = parse("name \"north").unwrap_err();
        assert_eq!((error.at, error.message.as_str()), (5, "a quote is not closed"));
        let error = parse("speed > fast").unwrap_err();
        assert_eq!(error.at, 8);
        assert!(error.message.contains("`fast` is not a number"));
        let error = parse("> 5").unwrap_err();
        assert!(error.message.contains("needs an attribute name"), "{error}");
        let error = parse("speed >").unwrap_err();
        assert!(error.message.contains("needs a number"), "{error}");
        let error = parse("template:").unwrap_err();
        assert!(error.message.contains("needs a value"), "{error}");
        assert!(parse(&"a ".repeat(40)).unwrap_err().message.contains("at most 32"));
        assert!(parse(&"a".repeat(501)).is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
