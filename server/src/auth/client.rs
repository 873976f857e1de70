//! Who is calling, by address: the client's IP as the login throttle and the audit log see it. Behind a gateway
//! the TCP peer is the gateway, so every client would share one address (and one attacker's failed sign-ins
//! would lock every user out). When the peer is one of `server.trusted_proxies`, the address is read from
//! `X-Forwarded-For`, right to left, skipping hops that are trusted proxies themselves; from any other peer the
//! header is ignored, so a client cannot pick its own address.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use http::HeaderMap;
use ipnet::IpNet;

/// The client's address, put in each request's extensions by [`client_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The gateways whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(Arc::new(networks))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client behind `peer`: the rightmost `X-Forwarded-For` entry that is not a trusted proxy, when `peer` is
    /// one; else `peer` itself. A malformed entry stops the walk at the last trusted hop.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Ok(address) = hop.parse::<IpAddr>() else { break };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// Middleware: records the [`ClientAddress`] of every request.
pub async fn client_address(State(proxies): State<TrustedProxies>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = proxies.client_of(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_gateways() {
        let proxies = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap(), "10.1.0.0/16".parse().unwrap()]);
        let gateway: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.7".parse().unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        // A client behind the gateway; a spoofed entry to its left is not believed.
        assert_eq!(
            proxies.client_of(gateway, &forwarded(&["6.6.6.6, 203.0.113.9"])),
            ip("203.0.113.9")
        );
        // Two trusted hops.
        assert_eq!(
            proxies.client_of(gateway, &forwarded(&["203.0.113.9", "10.1.2.3"])),
            ip("203.0.113.9")
        );
        // Anyone else's header is ignored.
        assert_eq!(proxies.client_of(stranger, &forwarded(&["203.0.113.9"])), stranger);
        // No header, or garbage, leaves the gateway's own address.
        assert_eq!(proxies.client_of(gateway, &HeaderMap::new()), gateway);
        assert_eq!(proxies.client_of(gateway, &forwarded(&["not an address"])), gateway);
        // No trusted proxies configured: the header never counts.
        assert_eq!(
            TrustedProxies::default().client_of(gateway, &forwarded(&["203.0.113.9"])),
            gateway
        );
    }
}
