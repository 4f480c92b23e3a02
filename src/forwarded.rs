//! Who the client is behind proxies. Two questions, two settings, never mixed:
//! whose `X-Forwarded-For` is believed (`trusted_proxies`, here), and who may forward a
//! verified client certificate (`mtls.proxy_*`, which must also prove itself with a secret).

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One trusted proxy: an address (`10.0.0.7`) or a CIDR range (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyNet(ipnet::IpNet);

impl ProxyNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl FromStr for ProxyNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Self(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("{s}: not an IP address or CIDR range"))
    }
}

impl TryFrom<String> for ProxyNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ProxyNet> for String {
    fn from(p: ProxyNet) -> String {
        p.0.to_string()
    }
}

/// An IPv4 address seen as `::ffff:a.b.c.d` on a dual-stack socket is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn trusted(proxies: &[ProxyNet], ip: IpAddr) -> bool {
    proxies.iter().any(|p| p.contains(ip))
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` hop that is not one. Every proxy appends the address it saw, so hops to
/// the left of the first untrusted one were written by the client and prove nothing. A hop
/// that is not an address stops the walk at the proxy that passed it on.
pub fn client_address(
    proxies: &[ProxyNet],
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
) -> IpAddr {
    let mut client = canonical(peer);
    if !trusted(proxies, client) {
        return client;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = canonical(ip);
        if !trusted(proxies, client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    fn nets(v: &[&str]) -> Vec<ProxyNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = nets(&["10.0.0.0/8", "127.0.0.1"]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let got = client_address(&p, peer, &xff("6.6.6.6, 203.0.113.9, 10.1.2.3"));
        assert_eq!(got.to_string(), "203.0.113.9");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let p = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_address(&p, peer, &xff("6.6.6.6")).to_string(),
            "192.0.2.1"
        );
    }

    #[test]
    fn garbage_stops_at_the_proxy_that_passed_it() {
        let p = nets(&["127.0.0.1"]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_address(&p, peer, &xff("nonsense")).to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn mapped_ipv4_matches_an_ipv4_range() {
        let p = nets(&["127.0.0.0/8"]);
        let peer: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            client_address(&p, peer, &xff("198.51.100.4")).to_string(),
            "198.51.100.4"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!("10.0.0.0/33".parse::<ProxyNet>().is_err());
        assert!("proxy.local".parse::<ProxyNet>().is_err());
    }
}
