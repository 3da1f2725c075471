//! The SSRF guard: refuse destinations in loopback, private and other
//! special-purpose ranges, checked on the addresses DNS resolution returns
//! (so a public name pointing at `127.0.0.1` is refused too), unless the
//! operator allow-lists a subnet.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use flextime_core::{Error, Result};
use hyper_util::client::legacy::connect::dns::Name;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Which destinations a dispatcher may connect to.
///
/// ```
/// use flextime_webhooks::dispatch::SsrfGuard;
/// let guard = SsrfGuard::default();
/// assert!(guard.check_ip("93.184.216.34".parse().unwrap()).is_ok());
/// let err = guard.check_ip("127.0.0.1".parse().unwrap()).unwrap_err();
/// assert!(err.to_string().contains("destination address 127.0.0.1 is not allowed"));
/// let open = SsrfGuard::default().allow("127.0.0.0/8".parse().unwrap());
/// assert!(open.check_ip("127.0.0.1".parse().unwrap()).is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SsrfGuard {
    allow: Vec<IpNet>,
    https_only: bool,
}

impl SsrfGuard {
    /// Allow a subnet that the guard would refuse (e.g. `127.0.0.0/8` in tests,
    /// or an internal network the operator trusts).
    #[must_use]
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allow.push(net);
        self
    }

    /// Allow several subnets.
    #[must_use]
    pub fn allow_all(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.allow.extend(nets);
        self
    }

    /// Refuse `http://` URLs.
    #[must_use]
    pub fn https_only(mut self, yes: bool) -> Self {
        self.https_only = yes;
        self
    }

    /// Whether `http://` is refused.
    pub fn is_https_only(&self) -> bool {
        self.https_only
    }

    /// `Forbidden` unless `ip` is a public unicast address or allow-listed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<()> {
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        // Allow-listing the IPv4 form also allows its mapped IPv6 forms.
        if let Some(v4) = embedded_v4(ip)
            && self.allow.iter().any(|n| n.contains(&IpAddr::V4(v4)))
        {
            return Ok(());
        }
        match forbidden_range(ip) {
            None => Ok(()),
            Some(range) => Err(not_allowed(ip, range)),
        }
    }

    /// Check a URL before connecting: scheme (and https-only), and the host
    /// when it is an IP literal (names are checked when they resolve).
    pub fn check_url(&self, url: &url::Url) -> Result<()> {
        match url.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => {
                return Err(Error::forbidden(format!(
                    "destination {}: only https:// URLs are allowed",
                    url.host_str().unwrap_or_default()
                )));
            }
            other => {
                return Err(Error::invalid_input(format!(
                    "unsupported URL scheme `{other}`"
                )));
            }
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Error::invalid_input("the URL has no host")),
        }
    }

    /// A resolver for the dispatcher's connector that drops refused
    /// addresses and fails with [`AddressNotAllowed`] when none is left.
    pub(crate) fn resolver(&self) -> GuardedResolver {
        GuardedResolver {
            guard: Arc::new(self.clone()),
        }
    }
}

fn not_allowed(ip: IpAddr, range: &str) -> Error {
    Error::forbidden(format!(
        "destination address {ip} is not allowed ({range}); allow-list its subnet to permit it"
    ))
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or
/// 6to4 IPv6 address.
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let o = v6.octets();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // NAT64 well-known prefix 64:ff9b::/96 and local-use 64:ff9b:1::/48.
    if s[0] == 0x64 && s[1] == 0xff9b {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // 6to4 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // Deprecated IPv4-compatible ::a.b.c.d (not :: and ::1).
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    None
}

const V4_RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.31.196.0/24", "AS112"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "AS112"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
];

const V6_RANGES: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard"),
    ("2001::/32", "Teredo"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
];

/// Why `ip` is refused (the range's name), or `None` for a public address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return v4_range(v4).or(match ip {
            // 6to4 and NAT64 of a public address are still tunnels we refuse.
            IpAddr::V6(v6) if v6.segments()[0] == 0x2002 => Some("6to4"),
            _ => None,
        });
    }
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    V4_RANGES.iter().find_map(|(net, name)| {
        net.parse::<Ipv4Net>()
            .ok()
            .filter(|n| n.contains(&ip))
            .map(|_| *name)
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    // Only global unicast (2000::/3) is reachable on the internet.
    let in_global = (ip.segments()[0] & 0xe000) == 0x2000;
    let named = V6_RANGES.iter().find_map(|(net, name)| {
        net.parse::<Ipv6Net>()
            .ok()
            .filter(|n| n.contains(&ip))
            .map(|_| *name)
    });
    named.or((!in_global).then_some("reserved"))
}

/// The error a guarded resolution fails with: no address of the name is
/// allowed.
#[derive(Debug)]
pub struct AddressNotAllowed(pub String);

impl fmt::Display for AddressNotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressNotAllowed {}

/// Resolves with the system resolver, then applies the guard (a tower
/// service, as hyper's connector takes it). Names only: the connector
/// connects to an IP literal without resolving, so the dispatcher checks
/// those with [`SsrfGuard::check_url`] before each attempt.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    guard: Arc<SsrfGuard>,
}

type Resolved = std::vec::IntoIter<SocketAddr>;
type ResolveError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = Resolved;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Resolved, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match guard.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let message = refused.map_or_else(
                    || format!("{host}: the name resolved to no address"),
                    |e| format!("{host}: {}", e.message()),
                );
                return Err(Box::new(AddressNotAllowed(message)) as ResolveError);
            }
            Ok(allowed.into_iter())
        })
    }
}

/// If `err`'s chain holds an [`AddressNotAllowed`], its message.
pub(crate) fn refused_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    std::iter::successors(Some(err), |e| e.source())
        .find_map(|e| e.downcast_ref::<AddressNotAllowed>())
        .map(|a| a.0.clone())
}
