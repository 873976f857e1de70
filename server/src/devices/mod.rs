//! Devices: identities that send readings, bound to an asset, with a field → attribute map and tokens (shown
//! once, stored as SHA-256, revocable; a gateway token writes for several devices).

mod routes;
mod service;
mod store;

pub use routes::{endpoints, router};
pub use service::{Devices, TokenGrant, DEVICE_TOKEN_PREFIX};
pub use store::{DeviceRow, DeviceStore, TokenRow};
