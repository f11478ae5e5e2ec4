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
//!
//! Behind a single sign-on proxy, `AUTH_PROXY_HEADER` names the header in which the proxy
//! passes the signed-in user's name. It is believed from trusted proxies only, and the
//! identity it gives is `proxy:<name>`, a namespace no session cookie (32 hex digits) or other
//! identity can reach.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use application::UserId;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::problem::ApiError;

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

/// The longest user name a proxy may pass.
pub const PROXY_USER_MAX: usize = 256;

/// A trusted proxy named a user that is empty, too long or not visible ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidProxyUser;

/// `AUTH_PROXY_HEADER`: the header a trusted proxy names the user in, if any.
#[derive(Debug, Clone, Default)]
pub struct AuthProxy(pub Option<HeaderName>);

impl AuthProxy {
    pub fn parse(header: Option<&str>) -> Result<Self, String> {
        match header.map(str::trim).filter(|h| !h.is_empty()) {
            None => Ok(Self(None)),
            Some(h) => HeaderName::try_from(h)
                .map(|h| Self(Some(h)))
                .map_err(|_| format!("AUTH_PROXY_HEADER: {h:?} is not a header name")),
        }
    }

    /// The identity a request's trusted proxy names: `Ok(None)` when there is none to believe.
    pub fn user(&self, client: Option<&Client>, headers: &HeaderMap) -> Result<Option<UserId>, InvalidProxyUser> {
        let Some(name) = &self.0 else { return Ok(None) };
        if !client.is_some_and(|c| c.via_trusted_proxy) {
            return Ok(None);
        }
        let Some(value) = headers.get(name) else { return Ok(None) };
        let user = value.to_str().map_err(|_| InvalidProxyUser)?.trim();
        if user.is_empty() || user.chars().count() > PROXY_USER_MAX {
            return Err(InvalidProxyUser);
        }
        Ok(Some(UserId(format!("proxy:{user}"))))
    }
}

/// Outside the session layer (inside the bearer one): the identity a trusted proxy names,
/// which the session layer then leaves alone.
pub async fn identity_layer(State(proxy): State<AuthProxy>, mut req: Request, next: Next) -> Response {
    if req.extensions().get::<UserId>().is_none() {
        match proxy.user(req.extensions().get::<Client>(), req.headers()) {
            Ok(Some(user)) => {
                req.extensions_mut().insert(user);
            }
            Ok(None) => {}
            Err(InvalidProxyUser) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-proxy-user",
                    "Invalid user from the proxy",
                    format!("The authenticating proxy passed a user name that is empty, longer than {PROXY_USER_MAX} characters or not visible ASCII."),
                )
                .into_response();
            }
        }
    }
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

    #[test]
    fn the_proxy_user_is_believed_from_trusted_proxies_only_and_namespaced() {
        let p = AuthProxy::parse(Some("X-Forwarded-User")).unwrap();
        let trusted = Client { addr: ip("10.0.0.1"), https: false, via_trusted_proxy: true };
        let direct = Client { via_trusted_proxy: false, ..trusted };
        let h = headers(&[("x-forwarded-user", " alice@example.com ")]);
        assert_eq!(p.user(Some(&trusted), &h), Ok(Some(UserId("proxy:alice@example.com".into()))));
        assert_eq!(p.user(Some(&direct), &h), Ok(None));
        assert_eq!(p.user(None, &h), Ok(None));
        assert_eq!(p.user(Some(&trusted), &HeaderMap::new()), Ok(None));
        assert_eq!(p.user(Some(&trusted), &headers(&[("x-forwarded-user", "  ")])), Err(InvalidProxyUser));
        assert_eq!(AuthProxy::parse(None).unwrap().user(Some(&trusted), &h), Ok(None));
        assert!(AuthProxy::parse(Some("bad header")).is_err());
    }
}
