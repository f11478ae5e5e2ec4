//! Who is on the other end: the client's address and whether it reached us over HTTPS.
//!
//! The peer of the TCP connection is the client, unless it is one of the trusted reverse
//! proxies (`TRUSTED_PROXIES`). Only then are `X-Forwarded-For` and `X-Forwarded-Proto`
//! believed: anyone can send those headers, so from any other peer they are ignored.
//!
//! `X-Forwarded-For` is read from the right: each proxy appends the address it received the
//! request from, so the rightmost address that is not itself a trusted proxy is the first one
//! nobody we trust can vouch beyond — the client. Entries to its left were written by the
//! client and may be forged. An entry that is not an address stops the walk at the last
//! trusted hop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// From addresses (`10.0.0.1`) and networks (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("TRUSTED_PROXIES: {item:?} is neither an address nor a network"))?,
            };
            nets.push(net);
        }
        Ok(Self(Arc::new(nets)))
    }

    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// What is known of the client of a connection from `peer` carrying `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Client {
        let Some(peer) = peer.map(|p| p.to_canonical()) else { return Client::default() };
        if !self.trusts(peer) {
            return Client { addr: Some(peer), https: false, via_trusted_proxy: false };
        }
        let mut addr = peer;
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(hop) => {
                    addr = hop.to_canonical();
                    if !self.trusts(addr) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // The proxy that talks to us set (or appended) the last value.
        let https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        Client { addr: Some(addr), https, via_trusted_proxy: true }
    }
}

/// The client of a request, as a request extension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client {
    /// Its address; `None` only when the server was not given connection info.
    pub addr: Option<IpAddr>,
    /// A trusted proxy says the client used HTTPS.
    pub https: bool,
    /// The connection came from a trusted proxy (so its identity header may be believed).
    pub via_trusted_proxy: bool,
}

pub async fn layer(State(proxies): State<TrustedProxies>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = proxies.client(peer, req.headers());
    req.extensions_mut().insert(client);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let p = TrustedProxies::parse(&["10.0.0.0/8".into(), " 192.168.1.5 ".into()]).unwrap();
        let fwd = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        // From an untrusted peer: its own address, plain HTTP, whatever it claims.
        assert_eq!(
            p.client(ip("203.0.113.9"), &fwd),
            Client { addr: ip("203.0.113.9"), https: false, via_trusted_proxy: false }
        );
        // From a trusted one: the forwarded client, over HTTPS.
        assert_eq!(
            p.client(ip("10.1.2.3"), &fwd),
            Client { addr: ip("1.2.3.4"), https: true, via_trusted_proxy: true }
        );
        assert_eq!(p.client(ip("192.168.1.5"), &fwd).addr, ip("1.2.3.4"));
        assert_eq!(p.client(ip("192.168.1.6"), &fwd).addr, ip("192.168.1.6"));
        // IPv4-mapped IPv6 peers are the IPv4 address.
        assert_eq!(p.client(ip("::ffff:10.0.0.1"), &fwd).addr, ip("1.2.3.4"));
        // No header: the proxy itself.
        assert_eq!(p.client(ip("10.0.0.1"), &HeaderMap::new()).addr, ip("10.0.0.1"));
        assert_eq!(p.client(None, &fwd), Client::default());
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_and_forged_entries_are_ignored() {
        let p = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        // The client wrote "6.6.6.6" itself; the edge proxy appended its real address.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h).addr, ip("1.2.3.4"));
        // Several header lines are one list.
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h).addr, ip("1.2.3.4"));
        // Garbage stops at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, bogus, 10.0.0.9")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h).addr, ip("10.0.0.9"));
        let h = headers(&[("x-forwarded-proto", "http, https")]);
        assert!(p.client(ip("10.0.0.1"), &h).https);
        let h = headers(&[("x-forwarded-proto", "http")]);
        assert!(!p.client(ip("10.0.0.1"), &h).https);
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(TrustedProxies::parse(&["".into()]).unwrap().0.is_empty());
    }
}
