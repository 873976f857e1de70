//! Gantry's integration suite: one binary that spawns the real application (on port 0, with a fresh data dir and,
//! for PostgreSQL, a fresh database per test) and talks HTTP to it, or runs the real `gantry` binary.
//! Tests that hold for every metadata backend are written once and run against each (see `backend_tests!`).

mod helpers;

mod alarms;
mod assets;
mod auth;
mod charts;
mod cli;
mod clients;
mod cluster;
mod failover;
mod fuzzing;
mod hardening;
mod health;
mod ingest;
mod openapi;
mod reliability;
mod reports;
mod search;
mod shutdown;
mod timeseries_api;
mod timeseries_store;
mod ui;
