//! The payload formats, parsed into pipeline [`Item`]s: Gantry's JSON (HTTP and MQTT) and InfluxDB line protocol
//! (through the `influxdb-line-protocol` crate, which follows the spec's escaping rules).

use std::{cell::Cell, marker::PhantomData};

use app::error::AppError;
use influxdb_line_protocol::{parse_lines, FieldValue};
use serde::{
    de::{Error as _, SeqAccess, Visitor},
    Deserialize, Deserializer,
};

use super::pipeline::{too_many_items, Item, ItemValue, MAX_ITEMS_PER_REQUEST};
use crate::timeseries::service::parse_instant;

thread_local! {
    /// List entries the JSON document being parsed may still hold (parsing is synchronous, on one thread).
    static ENTRIES_LEFT: Cell<usize> = const { Cell::new(0) };
}

const TOO_MANY: &str = "too many entries";

/// Deserializes a list while the document's entry budget lasts, so a huge body fails before it is all in memory.
fn capped<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    struct Capped<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Capped<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = seq.next_element()? {
                let left = ENTRIES_LEFT.get();
                if left == 0 {
                    return Err(A::Error::custom(TOO_MANY));
                }
                ENTRIES_LEFT.set(left - 1);
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_seq(Capped(PhantomData))
}

fn capped_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Vec<T>>, D::Error> {
    capped(deserializer).map(Some)
}

/// `{ "device"?, "readings": [...] }` for one device, or `{ "devices": [{ "device", "readings" }, ...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    #[serde(default)]
    device: Option<String>,
    #[serde(default, deserialize_with = "capped_option")]
    readings: Option<Vec<JsonReading>>,
    #[serde(default, deserialize_with = "capped_option")]
    devices: Option<Vec<JsonDevice>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDevice {
    device: String,
    #[serde(deserialize_with = "capped")]
    readings: Vec<JsonReading>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonReading {
    field: String,
    value: serde_json::Value,
    #[serde(default)]
    ts: Option<serde_json::Value>,
}

fn json_item(device: Option<&str>, reading: JsonReading, index: usize) -> Result<Item, AppError> {
    let value = match reading.value {
        serde_json::Value::Bool(b) => ItemValue::Boolean(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ItemValue::Integer(i),
            None => ItemValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        // JSON has no NaN or infinity; senders that spell them as text are told so.
        serde_json::Value::String(s)
            if ["nan", "inf", "+inf", "-inf", "infinity", "-infinity"].contains(&s.to_lowercase().as_str()) =>
        {
            ItemValue::Float(s.parse::<f64>().unwrap_or(f64::NAN))
        }
        serde_json::Value::String(s) => ItemValue::Text(s),
        other => {
            return Err(AppError::bad_request(format!(
                "reading {index}: a value is a number or a boolean, not {other}"
            )))
        }
    };
    let ts = match reading.ts {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(n.as_i64().ok_or_else(|| {
            AppError::bad_request(format!(
                "reading {index}: `ts` is whole milliseconds since 1970, not {n}"
            ))
        })?),
        Some(serde_json::Value::String(text)) => Some(
            parse_instant(&text, "ts").map_err(|e| AppError::bad_request(format!("reading {index}: {}", e.message)))?,
        ),
        Some(other) => {
            return Err(AppError::bad_request(format!(
                "reading {index}: `ts` is milliseconds or RFC 3339 text, not {other}"
            )))
        }
    };
    Ok(Item {
        device: device.map(str::to_string),
        field: reading.field,
        value,
        ts,
    })
}

/// Parses Gantry's JSON ingest body.
pub fn json(body: &[u8]) -> Result<Vec<Item>, AppError> {
    ENTRIES_LEFT.set(MAX_ITEMS_PER_REQUEST);
    let parsed: JsonBody = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            too_many_items()
        } else {
            AppError::bad_request(format!("the body is not a valid ingest document: {e}"))
        }
    })?;
    let mut items = Vec::new();
    match (parsed.readings, parsed.devices) {
        (Some(readings), None) => {
            for reading in readings {
                let index = items.len();
                items.push(json_item(parsed.device.as_deref(), reading, index)?);
            }
        }
        (None, Some(devices)) if parsed.device.is_none() => {
            for device in devices {
                for reading in device.readings {
                    let index = items.len();
                    items.push(json_item(Some(&device.device), reading, index)?);
                }
            }
        }
        _ => {
            return Err(AppError::bad_request(
                "send either `readings` (with an optional `device`) or `devices`, a list of { device, readings }",
            ))
        }
    }
    if items.is_empty() {
        return Err(AppError::bad_request("the body holds no readings"));
    }
    Ok(items)
}

/// Timestamp precision of line protocol: how many of its units make a millisecond (or how many milliseconds one
/// unit is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// Parses the `precision` parameter of `/api/v2/write` (`ns`, `us`, `ms`, `s`) or `/write` (`n`, `u`, `ms`,
    /// `s`, `m`, `h`); both default to nanoseconds.
    pub fn parse(text: Option<&str>) -> Result<Precision, AppError> {
        Ok(match text.unwrap_or("ns") {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            other => {
                return Err(AppError::bad_request(format!(
                    "unknown precision {other:?}: use ns, us, ms or s (n, u, ms, s, m or h for /write)"
                )))
            }
        })
    }

    fn to_ms(self, value: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(value.div_euclid(1_000_000)),
            Precision::Microseconds => Some(value.div_euclid(1_000)),
            Precision::Milliseconds => Some(value),
            Precision::Seconds => value.checked_mul(1_000),
            Precision::Minutes => value.checked_mul(60_000),
            Precision::Hours => value.checked_mul(3_600_000),
        }
    }
}

/// Parses line protocol. The device is the `device` tag, else the measurement; each field is an item. A line that
/// does not parse fails the whole request (400, naming the line), as InfluxDB does.
pub fn line_protocol(body: &str, precision: Precision) -> Result<Vec<Item>, AppError> {
    let mut items = Vec::new();
    for (number, line) in parse_lines(body).enumerate() {
        let line = line.map_err(|e| AppError::bad_request(format!("line protocol, line {}: {e}", number + 1)))?;
        let device = line
            .series
            .tag_set
            .as_ref()
            .and_then(|tags| tags.iter().find(|(key, _)| key.as_str() == "device"))
            .map(|(_, value)| value.to_string())
            .unwrap_or_else(|| line.series.measurement.to_string());
        let ts = match line.timestamp {
            Some(raw) => Some(precision.to_ms(raw).ok_or_else(|| {
                AppError::bad_request(format!(
                    "line protocol, line {}: timestamp {raw} is out of range",
                    number + 1
                ))
            })?),
            None => None,
        };
        if items.len() + line.field_set.len() > MAX_ITEMS_PER_REQUEST {
            return Err(too_many_items());
        }
        for (field, value) in line.field_set.iter() {
            let value = match value {
                FieldValue::I64(v) => ItemValue::Integer(*v),
                FieldValue::U64(v) => match i64::try_from(*v) {
                    Ok(v) => ItemValue::Integer(v),
                    Err(_) => ItemValue::Float(*v as f64),
                },
                FieldValue::F64(v) => ItemValue::Float(*v),
                FieldValue::Boolean(v) => ItemValue::Boolean(*v),
                FieldValue::String(v) => ItemValue::Text(v.to_string()),
            };
            items.push(Item {
                device: Some(device.clone()),
                field: field.to_string(),
                value,
                ts,
            });
        }
    }
    if items.is_empty() {
        return Err(AppError::bad_request("the body holds no lines"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(device: &str, field: &str, value: ItemValue, ts: Option<i64>) -> Item {
        Item {
            device: Some(device.into()),
            field: field.into(),
            value,
            ts,
        }
    }

    #[test]
    fn json_single_device_and_batch_forms() {
        let items = json(
            br#"{"readings":[{"field":"flow","value":1.5},{"field":"on","value":true,"ts":1000},
            {"field":"n","value":7,"ts":"1970-01-01T00:00:02Z"}]}"#,
        )
        .unwrap();
        assert_eq!(
            items[0],
            Item {
                device: None,
                field: "flow".into(),
                value: ItemValue::Float(1.5),
                ts: None
            }
        );
        assert_eq!(items[1].value, ItemValue::Boolean(true));
        assert_eq!(items[1].ts, Some(1000));
        assert_eq!(
            (items[2].value.clone(), items[2].ts),
            (ItemValue::Integer(7), Some(2000))
        );
        let items = json(
            br#"{"devices":[{"device":"a","readings":[{"field":"x","value":1}]},
            {"device":"b","readings":[{"field":"y","value":2.25}]}]}"#,
        )
        .unwrap();
        assert_eq!(items[1], item("b", "y", ItemValue::Float(2.25), None));
    }

    #[test]
    fn json_mistakes_are_named() {
        for (body, needle) in [
            (&b"{"[..], "not a valid ingest document"),
            (br#"{"readings":[{"value":1}]}"#, "missing field `field`"),
            (
                br#"{"readings":[{"field":"x","value":1,"extra":1}]}"#,
                "unknown field `extra`",
            ),
            (br#"{"readings":[{"field":"x","value":null}]}"#, "a number or a boolean"),
            (br#"{"readings":[{"field":"x","value":1,"ts":"yesterday"}]}"#, "`ts`"),
            (
                br#"{"readings":[{"field":"x","value":1,"ts":1.5}]}"#,
                "whole milliseconds",
            ),
            (br#"{"readings":[]}"#, "no readings"),
            (br#"{"device":"a","devices":[]}"#, "either"),
        ] {
            let err = json(body).unwrap_err();
            assert!(
                err.message.contains(needle),
                "{}: {}",
                String::from_utf8_lossy(body),
                err.message
            );
        }
        // NaN spelled as text reaches the pipeline as a non-finite float, which refuses it.
        let items = json(br#"{"readings":[{"field":"x","value":"NaN"}]}"#).unwrap();
        assert!(matches!(items[0].value, ItemValue::Float(v) if v.is_nan()));
    }

    /// Examples from InfluxDB's line protocol reference, escaping and type rules included.
    #[test]
    fn line_protocol_follows_the_spec() {
        let body = "myMeasurement,tag1=value1,tag2=value2 fieldKey=\"fieldValue\" 1556813561098000000\n\
                    # a comment\n\
                    \n\
                    home,device=kitchen temp=21.5,hum=35i,on=t,count=42u 1556813561098000000\n\
                    my\\ Measurement,device=my\\,dev\\ 1 fieldKey=1.0,\"quoted\\ key\"=2\n\
                    cpu value=-1e-3\n";
        let items = line_protocol(body, Precision::Nanoseconds).unwrap();
        assert_eq!(
            items[0],
            item(
                "myMeasurement",
                "fieldKey",
                ItemValue::Text("fieldValue".into()),
                Some(1_556_813_561_098)
            )
        );
        assert_eq!(
            items[1],
            item("kitchen", "temp", ItemValue::Float(21.5), Some(1_556_813_561_098))
        );
        assert_eq!(items[2].value, ItemValue::Integer(35));
        assert_eq!(items[3].value, ItemValue::Boolean(true));
        assert_eq!(items[4].value, ItemValue::Integer(42));
        assert_eq!(items[5].device.as_deref(), Some("my,dev 1"));
        assert_eq!(items[6].field, "\"quoted key\"");
        assert_eq!(items[7], item("cpu", "value", ItemValue::Float(-0.001), None));
    }

    #[test]
    fn line_protocol_precisions_and_errors() {
        let at = |p| line_protocol("m v=1 1700000000", p).unwrap()[0].ts;
        assert_eq!(at(Precision::Seconds), Some(1_700_000_000_000));
        assert_eq!(at(Precision::Milliseconds), Some(1_700_000_000));
        assert_eq!(at(Precision::Microseconds), Some(1_700_000));
        assert_eq!(at(Precision::Hours), Some(1_700_000_000 * 3_600_000));
        assert!(Precision::parse(Some("fortnight")).is_err());
        assert_eq!(Precision::parse(None).unwrap(), Precision::Nanoseconds);
        for bad in [
            "m",
            "m v=",
            "m v=1 notatime",
            "m,t v=1",
            "m v=\"unterminated",
            "m v=1i2",
        ] {
            let err = line_protocol(bad, Precision::Nanoseconds).unwrap_err();
            assert!(err.message.contains("line 1"), "{bad}: {}", err.message);
        }
        assert!(line_protocol("m v=1\nbad line", Precision::Nanoseconds)
            .unwrap_err()
            .message
            .contains("line 2"));
        assert!(line_protocol("m v=1 9223372036854775807", Precision::Seconds).is_err());
        assert!(line_protocol("\n# only a comment\n", Precision::Nanoseconds).is_err());
    }

    /// Arbitrary input never panics (the cargo-fuzz target in `fuzz/` explores further).
    #[test]
    fn requests_over_the_reading_cap_are_refused_as_too_large() {
        use app::error::ErrorKind;
        let reading = r#"{"field":"f","value":1}"#;
        let readings = |n: usize| vec![reading; n].join(",");
        let at_cap = format!(r#"{{"readings":[{}]}}"#, readings(MAX_ITEMS_PER_REQUEST));
        assert_eq!(json(at_cap.as_bytes()).unwrap().len(), MAX_ITEMS_PER_REQUEST);
        let over = format!(r#"{{"readings":[{}]}}"#, readings(MAX_ITEMS_PER_REQUEST + 1));
        assert_eq!(json(over.as_bytes()).unwrap_err().code, ErrorKind::PayloadTooLarge);
        // Spread over devices, the total counts.
        let half = readings(MAX_ITEMS_PER_REQUEST / 2 + 1);
        let devices =
            format!(r#"{{"devices":[{{"device":"a","readings":[{half}]}},{{"device":"b","readings":[{half}]}}]}}"#);
        assert_eq!(json(devices.as_bytes()).unwrap_err().code, ErrorKind::PayloadTooLarge);
        let lines = "m a=1,b=2\n".repeat(MAX_ITEMS_PER_REQUEST / 2 + 1);
        let err = line_protocol(&lines, Precision::Milliseconds).unwrap_err();
        assert_eq!(err.code, ErrorKind::PayloadTooLarge);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let alphabet = b"m,=\\ \"v1.-e+tifu#\n\t0123456789abc";
        for _ in 0..20_000 {
            let len = (state % 40) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = line_protocol(&text, Precision::Nanoseconds);
            let _ = json(&bytes);
        }
    }
}
