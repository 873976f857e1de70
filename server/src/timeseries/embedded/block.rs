//! The two byte formats of the embedded store: compressed blocks of one series' readings (pco for timestamps and
//! values), and the log records that make a batch durable before it reaches a block.

use super::super::{SeriesId, StoreError, TimeRange};

/// A run of one series' readings, sorted by time, no timestamp twice.
pub type Points = Vec<(i64, f64)>;

/// Encodes sorted points as `[n: u32][timestamp bytes: u32][pco timestamps][pco values]`.
pub fn encode(points: &[(i64, f64)]) -> Result<Vec<u8>, StoreError> {
    let timestamps: Vec<i64> = points.iter().map(|p| p.0).collect();
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let config = pco::ChunkConfig::default();
    let ts_bytes = pco::standalone::simple_compress(&timestamps, &config).map_err(compress_error)?;
    let value_bytes = pco::standalone::simple_compress(&values, &config).map_err(compress_error)?;
    let mut out = Vec::with_capacity(8 + ts_bytes.len() + value_bytes.len());
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    out.extend_from_slice(&(ts_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&ts_bytes);
    out.extend_from_slice(&value_bytes);
    Ok(out)
}

fn compress_error(err: pco::errors::PcoError) -> StoreError {
    StoreError::Storage(format!("compressing a block: {err}"))
}

/// Decodes a block written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Points, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("block: {what}"));
    if bytes.len() < 8 {
        return Err(corrupt("shorter than its header"));
    }
    let n = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let ts_len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    let body = &bytes[8..];
    if body.len() < ts_len {
        return Err(corrupt("timestamps cut short"));
    }
    let timestamps: Vec<i64> =
        pco::standalone::simple_decompress(&body[..ts_len]).map_err(|e| corrupt(&format!("timestamps: {e}")))?;
    let values: Vec<f64> =
        pco::standalone::simple_decompress(&body[ts_len..]).map_err(|e| corrupt(&format!("values: {e}")))?;
    if timestamps.len() != n || values.len() != n {
        return Err(corrupt("lengths disagree with the header"));
    }
    Ok(timestamps.into_iter().zip(values).collect())
}

/// A durable log record: what one call to the store changed, replayed on start-up for whatever had not reached
/// a block yet.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    Write(Vec<(SeriesId, i64, f64)>),
    Delete(SeriesId, TimeRange),
}

const WRITE: u8 = 1;
const DELETE: u8 = 2;

impl LogRecord {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            LogRecord::Write(readings) => {
                let mut out = Vec::with_capacity(1 + readings.len() * 24);
                out.push(WRITE);
                for (series, ts, value) in readings {
                    out.extend_from_slice(&series.to_le_bytes());
                    out.extend_from_slice(&ts.to_le_bytes());
                    out.extend_from_slice(&value.to_le_bytes());
                }
                out
            }
            LogRecord::Delete(series, range) => {
                let mut out = Vec::with_capacity(25);
                out.push(DELETE);
                out.extend_from_slice(&series.to_le_bytes());
                out.extend_from_slice(&range.from.to_le_bytes());
                out.extend_from_slice(&range.to.to_le_bytes());
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<LogRecord, StoreError> {
        let corrupt = || StoreError::Corrupt("a log record has the wrong length or an unknown type".into());
        let word = |chunk: &[u8]| <[u8; 8]>::try_from(chunk).map_err(|_| corrupt());
        match bytes.split_first() {
            Some((&WRITE, body)) if body.len() % 24 == 0 => body
                .chunks_exact(24)
                .map(|r| {
                    Ok((
                        i64::from_le_bytes(word(&r[0..8])?),
                        i64::from_le_bytes(word(&r[8..16])?),
                        f64::from_le_bytes(word(&r[16..24])?),
                    ))
                })
                .collect::<Result<_, _>>()
                .map(LogRecord::Write),
            Some((&DELETE, body)) if body.len() == 24 => Ok(LogRecord::Delete(
                i64::from_le_bytes(word(&body[0..8])?),
                TimeRange {
                    from: i64::from_le_bytes(word(&body[8..16])?),
                    to: i64::from_le_bytes(word(&body[16..24])?),
                },
            )),
            _ => Err(corrupt()),
        }
    }
}

/// Merges `newer` into `older` (both sorted, unique timestamps); on equal timestamps the newer value wins.
pub fn merge(older: &[(i64, f64)], newer: &[(i64, f64)]) -> Points {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let (mut i, mut j) = (0, 0);
    while i < older.len() && j < newer.len() {
        match older[i].0.cmp(&newer[j].0) {
            std::cmp::Ordering::Less => {
                out.push(older[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(newer[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(newer[j]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&older[i..]);
    out.extend_from_slice(&newer[j..]);
    out
}

/// Sorts points by time, keeping the last-written value of a repeated timestamp.
pub fn sort_last_wins(points: &mut Points) {
    // A stable sort keeps arrival order among equal timestamps, so the last of each run is the newest.
    points.sort_by_key(|p| p.0);
    let mut out: Points = Vec::with_capacity(points.len());
    for &p in points.iter() {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    *points = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let points: Points = (0..5000)
            .map(|i| (1_700_000_000_000 + i * 1000, (i as f64 * 0.01).sin()))
            .collect();
        assert_eq!(decode(&encode(&points).unwrap()).unwrap(), points);
        assert_eq!(decode(&encode(&[]).unwrap()).unwrap(), Vec::new());
    }

    #[test]
    fn a_damaged_block_is_an_error_not_a_panic() {
        let bytes = encode(&[(1, 1.0), (2, 2.0)]).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn log_records_round_trip() {
        let write = LogRecord::Write(vec![(1, 2, 3.5), (-4, i64::MIN, f64::MAX)]);
        assert_eq!(LogRecord::decode(&write.encode()).unwrap(), write);
        let delete = LogRecord::Delete(7, TimeRange { from: 1, to: 9 });
        assert_eq!(LogRecord::decode(&delete.encode()).unwrap(), delete);
        assert!(LogRecord::decode(&[WRITE, 1, 2]).is_err());
        assert!(LogRecord::decode(&[]).is_err());
    }

    #[test]
    fn merging_prefers_the_newer_value() {
        let merged = merge(&[(1, 1.0), (2, 2.0), (4, 4.0)], &[(2, 20.0), (3, 30.0), (5, 50.0)]);
        assert_eq!(merged, vec![(1, 1.0), (2, 20.0), (3, 30.0), (4, 4.0), (5, 50.0)]);
        let mut points = vec![(3, 1.0), (1, 1.0), (3, 2.0), (2, 1.0), (3, 3.0)];
        sort_last_wins(&mut points);
        assert_eq!(points, vec![(1, 1.0), (2, 1.0), (3, 3.0)]);
    }
}
