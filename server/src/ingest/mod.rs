//! Device ingestion: the sources (HTTP JSON, InfluxDB line protocol, MQTT) and the one pipeline they feed
//! (parse → authorize → map to series → bounded queue → batched durable write → observers → acknowledgement).

pub mod demo;
pub mod mqtt;
pub mod parse;
pub mod pipeline;
mod routes;

pub use pipeline::{Item, ItemValue, Outcome, Pipeline, PipelineOptions, ReadingsObserver, Refusal};
pub use routes::router;
