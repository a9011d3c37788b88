//! Abuse controls checked before the body is read: a route's `allow_ips`,
//! then its rate limits (a token bucket per client address and one for the
//! whole route, as GCRA: one timestamp per bucket). Client state is bounded.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use http::request::Parts;
use tracing::debug;

use crate::client_ip::{IpList, client_ip};
use crate::error::IngressError;
use crate::telemetry::metric;

/// `rate_limit` as written (`http.rate_limit` or a route's own).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct RawRateLimit {
    /// All clients of the route together.
    #[serde(default)]
    pub per_route: Option<RawRate>,
    /// Each client address (IPv6: each /64).
    #[serde(default)]
    pub per_client: Option<RawRate>,
}

/// Integers are read wide so that a negative one is reported by key.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct RawRate {
    /// `10/s`, `600/m`, `1/10s`.
    pub rate: String,
    /// Requests admitted at once; the rate's count when unset.
    #[serde(default)]
    pub burst: Option<i64>,
    /// per_client only: addresses tracked at once.
    #[serde(default)]
    pub max_clients: Option<i64>,
}

/// Addresses tracked per route when `max_clients` is not set.
pub(crate) const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// A route's abuse controls; a route with none has no `Admission` at all.
#[derive(Debug)]
pub struct Admission {
    /// Only these networks may use the route; `None` allows every address.
    pub allow_ips: Option<IpList>,
    pub per_route: Option<Bucket>,
    pub per_client: Option<ClientBuckets>,
    /// Time zero of every bucket's timestamps.
    epoch: Instant,
}

impl Admission {
    /// `None` when there is nothing to check.
    pub fn new(
        allow_ips: Option<IpList>,
        per_route: Option<Rate>,
        per_client: Option<(Rate, usize)>,
    ) -> Option<Admission> {
        if allow_ips.is_none() && per_route.is_none() && per_client.is_none() {
            return None;
        }
        Some(Admission {
            allow_ips,
            per_route: per_route.map(Bucket::new),
            per_client: per_client.map(|(rate, max_clients)| ClientBuckets::new(rate, max_clients)),
            epoch: Instant::now(),
        })
    }

    /// Refuses a client outside `allow_ips` (403), then one over its own
    /// limit, then any client once the route is over its limit (429).
    pub fn check(&self, route: &str, parts: &Parts, trusted: &IpList) -> Result<(), IngressError> {
        let client = (self.allow_ips.is_some() || self.per_client.is_some()).then(|| {
            // Requests built without the accept loop (router tests) have no
            // peer; they share one unspecified address.
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
            client_ip(peer, &parts.headers, trusted)
        });
        if let (Some(allowed), Some(client)) = (&self.allow_ips, client)
            && !allowed.contains(client)
        {
            debug!(client = %client, "client address is not in the route's allow_ips");
            return Err(IngressError::IpNotAllowed);
        }
        let now = self.now();
        if let (Some(buckets), Some(client)) = (&self.per_client, client) {
            match buckets.check(client, now) {
                Checked::Allowed => {}
                Checked::Untracked => {
                    metrics::counter!(metric::RATE_LIMIT_UNTRACKED, "route" => route.to_owned())
                        .increment(1);
                }
                Checked::Limited { wait_nanos } => return Err(limited(wait_nanos)),
            }
        }
        if let Some(bucket) = &self.per_route {
            bucket.check(now).map_err(limited)?;
        }
        Ok(())
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

fn limited(wait_nanos: u64) -> IngressError {
    IngressError::RateLimited {
        retry_after: Duration::from_nanos(wait_nanos),
    }
}

/// A rate and a burst, in the units GCRA works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time for one token to come back.
    interval_nanos: u64,
    /// How far ahead of now a bucket's timestamp may run and still admit:
    /// `(burst - 1) * interval`.
    tolerance_nanos: u64,
}

impl Rate {
    /// Parses `10/s`, `600/m`, `5000/h`, `1/10s`; `burst` defaults to the
    /// count (`10/s` admits 10 at once).
    pub fn parse(text: &str, burst: Option<u64>) -> Result<Rate, String> {
        let shape = || format!("`{text}` is not a rate such as 10/s, 600/m or 1/10s");
        let (count, per) = text.trim().split_once('/').ok_or_else(shape)?;
        let count: u64 = count.trim().parse().map_err(|_| shape())?;
        let per = per.trim();
        let period = if per.starts_with(|c: char| c.is_ascii_digit()) {
            humantime::parse_duration(per)
        } else {
            humantime::parse_duration(&format!("1{per}"))
        }
        .map_err(|_| shape())?;
        if count == 0 {
            return Err(format!(
                "`{text}` admits nothing; remove the limit or raise it"
            ));
        }
        let period = u64::try_from(period.as_nanos()).map_err(|_| shape())?;
        let interval_nanos = period / count;
        if interval_nanos == 0 {
            return Err(format!("`{text}` is faster than one per nanosecond"));
        }
        let burst = burst.unwrap_or(count);
        if burst == 0 {
            return Err("burst must be at least 1".into());
        }
        let tolerance_nanos = (burst - 1)
            .checked_mul(interval_nanos)
            .ok_or_else(|| format!("burst {burst} at `{text}` is too large"))?;
        Ok(Rate {
            interval_nanos,
            tolerance_nanos,
        })
    }

    /// The bucket's next timestamp if a request at `now` is admitted, or
    /// how long until it would be.
    fn admit(self, tat: u64, now: u64) -> Result<u64, u64> {
        let tat = tat.max(now);
        let ahead = tat - now;
        if ahead > self.tolerance_nanos {
            Err(ahead - self.tolerance_nanos)
        } else {
            Ok(tat.saturating_add(self.interval_nanos))
        }
    }
}

/// One bucket shared by every client of a route; lock-free.
#[derive(Debug)]
pub struct Bucket {
    rate: Rate,
    /// Theoretical arrival time: the bucket is full once `now` reaches it.
    tat: AtomicU64,
}

impl Bucket {
    fn new(rate: Rate) -> Bucket {
        Bucket {
            rate,
            tat: AtomicU64::new(0),
        }
    }

    /// Takes a token at `now`, or says how long until one is available.
    fn check(&self, now: u64) -> Result<(), u64> {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = self.rate.admit(tat, now)?;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }
}

/// A bucket per client address, in shards of bounded maps. IPv6 clients
/// are keyed by their /64, which one subscriber usually holds whole.
pub struct ClientBuckets {
    rate: Rate,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// Keyed randomly so that nobody can aim addresses at one shard.
    hasher: RandomState,
}

struct Shard {
    tats: HashMap<IpAddr, u64>,
    /// A full shard drops its full buckets at most this often.
    next_sweep: u64,
}

/// How often a full shard may sweep (an O(shard) pass).
const SWEEP_EVERY_NANOS: u64 = 1_000_000_000;

enum Checked {
    Allowed,
    /// Admitted without a bucket: the table is full of active clients.
    Untracked,
    Limited {
        wait_nanos: u64,
    },
}

impl ClientBuckets {
    fn new(rate: Rate, max_clients: usize) -> ClientBuckets {
        let max_clients = max_clients.max(1);
        let shard_count = (max_clients / 1024).clamp(1, 64);
        let shards = (0..shard_count)
            .map(|_| {
                Mutex::new(Shard {
                    tats: HashMap::new(),
                    next_sweep: 0,
                })
            })
            .collect();
        ClientBuckets {
            rate,
            shards,
            per_shard: max_clients.div_ceil(shard_count),
            hasher: RandomState::new(),
        }
    }

    fn check(&self, client: IpAddr, now: u64) -> Checked {
        let key = client_key(client);
        let index = usize::try_from(self.hasher.hash_one(key) % self.shards.len() as u64)
            .expect("a shard index fits in usize");
        // Nothing in this function panics, so a poisoned lock still holds
        // consistent data.
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = shard.tats.get_mut(&key) {
            return match self.rate.admit(*tat, now) {
                Ok(next) => {
                    *tat = next;
                    Checked::Allowed
                }
                Err(wait_nanos) => Checked::Limited { wait_nanos },
            };
        }
        if shard.tats.len() >= self.per_shard {
            // A bucket whose timestamp has passed is full again, the same
            // as no bucket: dropping it changes no answer.
            if now >= shard.next_sweep {
                shard.tats.retain(|_, tat| *tat > now);
                shard.next_sweep = now.saturating_add(SWEEP_EVERY_NANOS);
            }
            // Still full: new addresses pass untracked rather than be
            // refused for others' traffic (the per-route limit still holds).
            if shard.tats.len() >= self.per_shard {
                return Checked::Untracked;
            }
        }
        shard
            .tats
            .insert(key, now.saturating_add(self.rate.interval_nanos));
        Checked::Allowed
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .tats
                    .len()
            })
            .sum()
    }
}

impl std::fmt::Debug for ClientBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuckets")
            .field("rate", &self.rate)
            .field("max_clients", &(self.per_shard * self.shards.len()))
            .finish_non_exhaustive()
    }
}

/// IPv4 addresses as they are; IPv6 addresses by their /64.
fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(address) => IpAddr::V6(Ipv6Addr::from_bits(
            address.to_bits() & !u128::from(u64::MAX),
        )),
    }
}

#[cfg(test)]
mod tests;
