//! `tidegate-bench`: the broker's raw JetStream ceiling, then signed GitHub
//! deliveries through the release ingress, with throughput, latency, zero
//! loss and CPU time per delivery for each process.
#![allow(clippy::print_stdout)] // a report printer

mod durability;
mod load;
mod payload;
mod processes;
mod raw;
mod replay;
mod workers;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, ValueEnum};

use crate::processes::{CpuSample, Ingress, Machine, NatsServer};
use crate::raw::StreamState;

/// Benchmarks the tidegate ingress against the JetStream broker alone.
#[derive(Debug, Parser)]
#[command(name = "tidegate-bench", version)]
struct Args {
    /// `raw`: JetStream alone; `ingress`: HTTP through the ingress; `all`:
    /// raw, then ingress, and their ratio.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Concurrent HTTP connections, each sending one request at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Seconds of HTTP load.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Replay mode: small deliveries to prefill and replay (0 skips).
    #[arg(long, default_value_t = 1_000_000)]
    replay_small: u64,
    /// Replay mode: 7 KB GitHub pushes to prefill and replay (0 skips).
    #[arg(long, default_value_t = 100_000)]
    replay_large: u64,
    /// Replay mode: the CLI's `--window` (PubAcks in flight).
    #[arg(long, default_value_t = 512)]
    replay_window: u32,
    /// Workers mode: 7 KB deliveries pre-filled for the consume rate.
    #[arg(long, default_value_t = 50_000)]
    workers_prefill: u64,
    /// Workers mode: each forwarder's `consumer.concurrency`.
    #[arg(long, default_value_t = 64)]
    workers_concurrency: u32,
    /// Seconds of raw publishing.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    raw_duration: u64,
    /// PubAcks in flight at once in raw mode.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    window: u32,
    /// A running ingress (`http://127.0.0.1:8080`) instead of a spawned one;
    /// needs `--nats-url` for the zero-loss check.
    #[arg(long, requires = "nats_url")]
    ingress_url: Option<String>,
    /// A running nats-server instead of a spawned one. Raw mode adds its
    /// messages to that server's deliveries stream.
    #[arg(long)]
    nats_url: Option<String>,
    /// pid of the running ingress, to report its CPU time.
    #[arg(long)]
    ingress_pid: Option<u32>,
    /// pid of the running nats-server, to report its CPU time.
    #[arg(long)]
    nats_pid: Option<u32>,
    /// The GitHub route's webhook secret.
    #[arg(
        long,
        env = "GITHUB_WEBHOOK_SECRET",
        default_value = "tidegate-bench-secret",
        hide_env_values = true
    )]
    secret: String,
    /// The GitHub route's path.
    #[arg(long, default_value = "/v1/webhooks/connectors/github")]
    path: String,
    /// Release guard: exit non-zero when the ingress spends more CPU time
    /// per accepted delivery than this many microseconds (ingress mode).
    #[arg(long, value_name = "MICROSECONDS")]
    max_ingress_cpu_us: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    All,
    Raw,
    Ingress,
    /// `tidegate replay` over prefilled deliveries (not part of `all`).
    Replay,
    /// The forwarder: consume rate from a pre-filled stream, and end to end
    /// through the ingress, with one and two replicas (not part of `all`).
    Workers,
    /// The fsync trade-off: the ingress into one node and into a 3-node
    /// cluster, each with the default sync interval and with `always`
    /// (not part of `all`).
    Durability,
}

/// The target: ingress throughput against the raw ceiling, and p99.
const TARGET_RATIO: f64 = 0.80;
const TARGET_P99: Duration = Duration::from_millis(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // On Ctrl-C the benchmark future is dropped, and with it every child
    // process it spawned.
    tokio::select! {
        result = run(&args) => result,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let body = Bytes::from(payload::github_push());
    let machine = Machine::probe();
    println!(
        "machine: {} cores, {}, linux {}, {}",
        machine.cores, machine.cpu_model, machine.kernel, machine.nats_version
    );
    println!(
        "payload: GitHub push, {} bytes; envelope v2 headers {} bytes",
        body.len(),
        payload::header_block_len(&payload::envelope_headers("1_d", raw::SUBJECT))
    );
    if args.mode == Mode::Replay {
        return run_replay(args, &body).await;
    }
    if args.mode == Mode::Workers {
        let bench = workers::WorkersConfig {
            prefill: args.workers_prefill,
            prefill_window: args.replay_window as usize,
            replicas: vec![1, 2],
            concurrency: args.workers_concurrency,
            connections: usize::from(args.connections),
            duration: Duration::from_secs(args.duration),
            route_path: args.path.clone(),
            secret: args.secret.clone(),
        };
        return workers::run(&bench, &body).await;
    }
    if args.mode == Mode::Durability {
        let config = durability::DurabilityConfig {
            connections: usize::from(args.connections),
            duration: Duration::from_secs(args.duration),
            route_path: args.path.clone(),
            signature: payload::github_signature(&args.secret, &body),
            secret: args.secret.clone(),
        };
        return durability::run(&config, &body).await;
    }
    let mut zero_loss = true;
    let raw_rate = if args.mode == Mode::Ingress {
        None
    } else {
        let (rate, passed) = run_raw(args, &body).await?;
        zero_loss &= passed;
        Some(rate)
    };
    let mut over_budget = None;
    let ingress_rate = if args.mode == Mode::Raw {
        None
    } else {
        let (rate, passed, cpu_us) = run_ingress(args, &body).await?;
        zero_loss &= passed;
        if let Some(budget) = args.max_ingress_cpu_us {
            let within = cpu_us.is_some_and(|spent| spent <= budget);
            println!(
                "  CPU guard: ingress {} µs per delivery, budget {budget:.1} µs: {}",
                cpu_us.map_or_else(|| "n/a".to_owned(), |spent| format!("{spent:.1}")),
                verdict(within)
            );
            if !within {
                over_budget = Some((cpu_us, budget));
            }
        }
        Some(rate)
    };
    if let (Some(raw_rate), Some(ingress_rate)) = (raw_rate, ingress_rate) {
        let ratio = ingress_rate / raw_rate;
        println!(
            "\nratio: ingress {ingress_rate:.0}/s ÷ raw {raw_rate:.0}/s = {ratio:.2} (target ≥ {TARGET_RATIO:.2}: {})",
            verdict(ratio >= TARGET_RATIO)
        );
    }
    anyhow::ensure!(
        zero_loss,
        "the stream count does not match the acknowledged count"
    );
    if let Some((spent, budget)) = over_budget {
        match spent {
            Some(spent) => anyhow::bail!(
                "the ingress spent {spent:.1} µs of CPU per delivery, over the {budget:.1} µs budget"
            ),
            None => anyhow::bail!("no ingress CPU figure to hold against the budget (no pid?)"),
        }
    }
    Ok(())
}

/// A nats-server to use: the one given, or a fresh one for this phase
/// (so that each phase starts from an empty stream and its own CPU count).
struct Broker {
    url: String,
    pid: Option<u32>,
    _spawned: Option<NatsServer>,
}

async fn broker(args: &Args) -> anyhow::Result<Broker> {
    Ok(match &args.nats_url {
        Some(url) => Broker {
            url: url.clone(),
            pid: args.nats_pid,
            _spawned: None,
        },
        None => {
            let server = NatsServer::start().await?;
            Broker {
                url: server.url.clone(),
                pid: Some(server.process.pid()),
                _spawned: Some(server),
            }
        }
    })
}

/// Publishes straight to JetStream; returns msgs/s and the zero-loss verdict.
async fn run_raw(args: &Args, body: &[u8]) -> anyhow::Result<(f64, bool)> {
    let broker = broker(args).await?;
    raw::ensure_stream(&broker.url).await?;
    let config = raw::RawConfig {
        nats_url: broker.url.clone(),
        duration: Duration::from_secs(args.raw_duration),
        window: args.window as usize,
        payload: Bytes::copy_from_slice(body),
    };
    println!(
        "\nraw: publishing to JetStream for {} s, {} PubAcks in flight",
        args.raw_duration, args.window
    );
    let stored_before = StreamState::read(&broker.url).await?;
    let cpu_before = CpuSample::take(None, broker.pid)?;
    let result = raw::run(&config).await?;
    let cpu = cpu_before.until(&CpuSample::take(None, broker.pid)?);
    let stored = StreamState::read(&broker.url).await?.since(&stored_before);
    let seconds = result.elapsed.as_secs_f64();
    let rate = result.acked as f64 / seconds;
    println!(
        "  {} acked, {} errors in {seconds:.1} s: {rate:.0} msgs/s",
        result.acked, result.errors
    );
    println!(
        "  CPU per message: {}; publisher {}",
        cpu_per_unit(cpu.nats, result.acked, seconds),
        cpu_per_unit(Some(cpu.bench), result.acked, seconds)
    );
    print_machine_load(&cpu, seconds);
    let passed = stored.messages == result.acked;
    println!(
        "  zero loss: stream +{} ({} bytes each), PubAcks {}: {}",
        stored.messages,
        stored.bytes_per_message(),
        result.acked,
        verdict(passed)
    );
    Ok((rate, passed))
}

/// Sends deliveries through the ingress; returns accepted/s, the zero-loss
/// verdict and the ingress CPU µs per accepted delivery (when known).
async fn run_ingress(args: &Args, body: &Bytes) -> anyhow::Result<(f64, bool, Option<f64>)> {
    let broker = broker(args).await?;
    let (address, ingress_pid, spawned) = match &args.ingress_url {
        Some(url) => (parse_http_url(url)?, args.ingress_pid, None),
        None => {
            let ingress = Ingress::start(&broker.url, &args.path, &args.secret).await?;
            (ingress.address, Some(ingress.process.pid()), Some(ingress))
        }
    };
    let config = load::LoadConfig {
        address,
        path: args.path.clone(),
        connections: usize::from(args.connections),
        duration: Duration::from_secs(args.duration),
        body: body.clone(),
        signature: payload::github_signature(&args.secret, body),
    };
    println!(
        "\ningress: {} connections for {} s against http://{address}{}",
        args.connections, args.duration, args.path
    );
    let stored_before = StreamState::read(&broker.url).await?;
    let cpu_before = CpuSample::take(ingress_pid, broker.pid)?;
    let result = load::run(config).await;
    let cpu = cpu_before.until(&CpuSample::take(ingress_pid, broker.pid)?);
    let stored = StreamState::read(&broker.url).await?.since(&stored_before);
    let seconds = result.elapsed.as_secs_f64();
    let rate = result.accepted as f64 / seconds;
    let p99 = result.percentile(99.0);
    println!(
        "  {} accepted (2xx), {} non-2xx, {} errors in {seconds:.1} s: {rate:.0} accepted/s",
        result.accepted, result.non_2xx, result.errors
    );
    println!(
        "  latency: p50 {}, p99 {}, max {} (target p99 ≤ {}: {})",
        millis(result.percentile(50.0)),
        millis(p99),
        millis(result.max()),
        millis(TARGET_P99),
        verdict(p99 <= TARGET_P99)
    );
    println!(
        "  CPU per delivery: ingress {}; nats-server {}; load generator {}",
        cpu_per_unit(cpu.ingress, result.accepted, seconds),
        cpu_per_unit(cpu.nats, result.accepted, seconds),
        cpu_per_unit(Some(cpu.bench), result.accepted, seconds)
    );
    print_machine_load(&cpu, seconds);
    let passed = stored.messages == result.accepted;
    println!(
        "  zero loss: stream +{} ({} bytes each), 2xx {}: {}",
        stored.messages,
        stored.bytes_per_message(),
        result.accepted,
        verdict(passed)
    );
    if result.non_2xx + result.errors > 0
        && let Some(ingress) = &spawned
    {
        println!("{}", ingress.log_tail());
    }
    let cpu_us = cpu
        .ingress
        .filter(|_| result.accepted > 0)
        .map(|seconds| seconds * 1e6 / result.accepted as f64);
    Ok((rate, passed, cpu_us))
}

/// The replay target from the issue.
const TARGET_REPLAY_RATE: f64 = 20_000.0;

/// Prefills the stream and times `tidegate replay` over it: small
/// deliveries, then 7 KB pushes.
async fn run_replay(args: &Args, push: &[u8]) -> anyhow::Result<()> {
    let broker = broker(args).await?;
    raw::ensure_stream(&broker.url).await?;
    let mut passed = true;
    for (label, count, body) in [
        ("small", args.replay_small, replay::SMALL_BODY),
        ("7 KB", args.replay_large, push),
    ] {
        if count == 0 {
            continue;
        }
        let prefilled = replay::prefill(&broker.url, count, body, args.window as usize).await?;
        println!(
            "\nreplay, {label}: prefilled {count} envelopes of {} bytes in {:.1} s ({:.0}/s straight to JetStream)",
            prefilled.envelope_bytes,
            prefilled.elapsed.as_secs_f64(),
            count as f64 / prefilled.elapsed.as_secs_f64()
        );
        let before = replay::stream_messages(&broker.url).await?;
        let cpu_before = CpuSample::take(None, broker.pid)?;
        let run = replay::run_cli(&broker.url, &prefilled, args.replay_window).await?;
        let cpu = cpu_before.until(&CpuSample::take(None, broker.pid)?);
        let added = replay::stream_messages(&broker.url).await? - before;
        let rate = run.replayed as f64 / run.seconds;
        let wall_rate = run.replayed as f64 / run.wall.as_secs_f64();
        println!(
            "  tidegate replay --from-seq {} --to-seq {} --window {}: {} replayed in {:.2} s: {rate:.0}/s ({wall_rate:.0}/s from spawn to exit; target ≥ {TARGET_REPLAY_RATE:.0}/s: {})",
            prefilled.first,
            prefilled.last,
            args.replay_window,
            run.replayed,
            run.seconds,
            verdict(rate >= TARGET_REPLAY_RATE)
        );
        println!(
            "  peak RSS of tidegate (VmHWM): {:.1} MiB; CPU per message: tidegate {}, nats-server {}",
            run.peak_rss_kib as f64 / 1024.0,
            cpu_per_unit(Some(run.cpu_seconds), run.replayed, run.wall.as_secs_f64()),
            cpu_per_unit(cpu.nats, run.replayed, run.wall.as_secs_f64()),
        );
        let wall = run.wall.as_secs_f64();
        let measured = cpu.nats.unwrap_or(0.0) + cpu.bench + run.cpu_seconds;
        println!(
            "  machine busy: {:.2} cores, {:.2} of them not charged to tidegate, nats-server or the bench (other work, interrupts)",
            cpu.machine / wall,
            (cpu.machine - measured).max(0.0) / wall
        );
        let complete = run.replayed == count && added == count;
        println!(
            "  zero loss: stream +{added}, replayed {}, selected {count}: {}",
            run.replayed,
            verdict(complete)
        );
        passed &= complete;
    }
    anyhow::ensure!(passed, "a replay did not store exactly its selection");
    Ok(())
}

/// How busy the whole machine was, and how much of that was not the
/// processes under test (other work on a shared machine skews the result).
fn print_machine_load(cpu: &CpuSample, wall_seconds: f64) {
    let measured = cpu.ingress.unwrap_or(0.0) + cpu.nats.unwrap_or(0.0) + cpu.bench;
    println!(
        "  machine busy: {:.2} cores, {:.2} of them not charged to the measured processes (other work, interrupts)",
        cpu.machine / wall_seconds,
        (cpu.machine - measured).max(0.0) / wall_seconds
    );
}

/// `http://127.0.0.1:8080/` → `127.0.0.1:8080`.
fn parse_http_url(url: &str) -> anyhow::Result<SocketAddr> {
    let authority = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    authority
        .parse()
        .with_context(|| format!("--ingress-url must be http://<ip>:<port>, not {url}"))
}

/// `62.1 µs (1.24 cores)`, or `n/a` without a pid or deliveries.
fn cpu_per_unit(cpu_seconds: Option<f64>, units: u64, wall_seconds: f64) -> String {
    match cpu_seconds {
        Some(cpu) if units > 0 => format!(
            "{:.1} µs ({:.2} cores)",
            cpu * 1e6 / units as f64,
            cpu / wall_seconds
        ),
        _ => "n/a".to_owned(),
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

fn verdict(passed: bool) -> &'static str {
    if passed { "PASS" } else { "FAIL" }
}
