//! The client's address, used by `allow_ips` and per-client rate limits: the
//! TCP peer, or, when the peer is a trusted proxy, the address that proxy
//! reports. `IpList` is the CIDR list behind both settings.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Set by Cloudflare's edge (and passed on by cloudflared) to the address
/// that connected to it.
pub(crate) const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
/// `client, proxy1, proxy2`: each proxy appends the address it saw.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Networks parsed at config load; an address matches if any contains it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList {
    nets: Vec<IpNet>,
}

impl IpList {
    pub fn new(nets: Vec<IpNet>) -> IpList {
        IpList { nets }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Expects a canonical address (`client_ip` returns one): IPv4 networks
    /// do not contain IPv4-mapped IPv6 addresses.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&address))
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a single address (`192.0.2.1`
/// means `192.0.2.1/32`). A network with host bits set (`10.0.0.1/8`) is
/// refused: it is usually a typo for something narrower.
pub(crate) fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(address.to_canonical()));
    }
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("`{text}` is not a network such as 10.0.0.0/8 or an address"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{text}` has host bits set; the network is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// The address a request came from. Headers count only when the TCP peer
/// is in `trusted` (anyone else could write them): then `CF-Connecting-IP`
/// if it holds an address, else `X-Forwarded-For` read from the right, the
/// first entry that is not itself a trusted proxy. When every entry is
/// trusted, or an entry cannot be read, the nearest address known so far
/// is the answer: nothing further left can be believed.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &IpList) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    if let Some(address) = headers
        .get_all(CF_CONNECTING_IP)
        .iter()
        .next_back()
        .and_then(|value| parse_address(value.as_bytes()))
    {
        return address;
    }
    let mut nearest = peer;
    // Several header lines form one list, in order.
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for entry in value.as_bytes().rsplit(|&byte| byte == b',') {
            if entry.trim_ascii().is_empty() {
                continue;
            }
            let Some(address) = parse_address(entry) else {
                return nearest;
            };
            if !trusted.contains(address) {
                return address;
            }
            nearest = address;
        }
    }
    nearest
}

/// `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, or either with a port (some
/// proxies append one).
fn parse_address(bytes: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let address = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests;
