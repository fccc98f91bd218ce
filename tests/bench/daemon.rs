//! Issue 4's benchmarks, against the real test bed: an idle `rolecall daemon` (memory and
//! wake-ups) and refresh fan-out (concurrent against sequential, the peer).
//!
//! 1. Idle: 20 role profiles from one MFA source (1 h each, default `refresh_before` 15m, so
//!    nothing is due), moto behind the fault proxy (no faults; it only counts STS calls), a
//!    private gnome-keyring and `rolecall daemon`. The MFA code goes in once through the agent;
//!    once all 20 are fresh the daemon is left alone for 60 s while this process samples
//!    `/proc/PID/task/*/status` every 100 ms (reading /proc does not wake the target). It prints
//!    RSS and PSS after the 60 s and the context switches (voluntary + involuntary) of every
//!    thread, with a per-thread breakdown and a timeline: a thread that appears mid-window
//!    counts from 0, one that exits counts to its last sample plus one wake-up (to exit).
//! 2. Fan-out: 100 role profiles, `rolecall --no-agent refresh --force` (MFA session cached) with
//!    `max_concurrent_refreshes` 1 (sequential, the peer), 8 (the default) and 32; median of 3
//!    runs each, interleaved. Once straight to moto (a few ms away) and once through the fault
//!    proxy with a standing `Delay(50ms)` as a stand-in for the 50-150 ms to real STS.
//!
//! 3. credential_process: a warm `rolecall credential-process PROFILE` (fresh role credentials
//!    in the file, nothing to renew) as a whole process, spawn to exit, p50 and p95 of
//!    [`CP_RUNS`] runs, interleaved with `/bin/true` (the floor: what starting any process
//!    costs) and the peer awscli-bastion's `bastion get-session-token` reading its cache, set up
//!    as its README says (`$BASTION_BIN`; the Makefile installs it into `build/bench-venv`);
//!    then the same with `rolecall daemon` running.
//!
//! 4. The tray app (`rolecall-app` beside `$ROLECALL_BIN`, under Xvfb): memory as PSS summed
//!    over the app and its WebKit child processes, right after start with no window ever opened,
//!    and after each of ten cycles of the MFA popup opening (sessions forgotten, "Enter MFA
//!    code…" clicked) and closing by itself (the code given at a terminal).
//!
//! Numbers are printed, never asserted. The rolecall binary is `$ROLECALL_BIN` (the Makefile
//! points it at `target/release/rolecall`; this harness only starts processes and reads /proc,
//! so it may be a dev build). Run with `make bench`, or one part with
//! `ROLECALL_BIN=$PWD/target/release/rolecall cargo bench --workspace --bench daemon
//! --profile dev -- idle` (or `fanout`).
// test code: an unwrap is an assertion (clippy's allow-unwrap-in-tests does not reach helpers)
#![allow(clippy::unwrap_used)]

#[allow(
    unused_macros,
    reason = "the bed's assertion macros serve the integration tests, not this bench"
)]
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use support::{App, Daemon, Fault, Rolecall, World, Xvfb, http_request, rolecall_bin, wait_until};

const IDLE_PROFILES: usize = 20;
const IDLE_WINDOW: Duration = Duration::from_secs(60);
const IDLE_RSS_GOAL_KB: u64 = 15 * 1024;
const IDLE_WAKEUP_GOAL: u64 = 1;
/// How often the threads are sampled: fine enough to time a thread's exit.
const IDLE_SAMPLE: Duration = Duration::from_millis(100);

const FANOUT_PROFILES: usize = 100;
const FANOUT_RUNS: usize = 3;
const FANOUT_LIMITS: [usize; 3] = [1, 8, 32];
const FANOUT_GOAL: f64 = 5.0;
const STS_LATENCY: Duration = Duration::from_millis(50);

const CP_RUNS: usize = 300;
/// The peer starts Python: fewer runs keep the bench short.
const CP_PEER_RUNS: usize = 20;
const CP_GOAL: Duration = Duration::from_millis(2);

const APP_IDLE_GOAL_KB: u64 = 90 * 1024;
const APP_POPUP_GOAL_KB: u64 = 140 * 1024;
const APP_POPUP_CYCLES: usize = 10;
const POPUP_TITLE: &str = "Rolecall: MFA code";

fn main() {
    // `cargo test --all-targets` (make test) runs bench targets too, without `--bench`: the
    // minutes-long measurement belongs to `make bench` only
    if !std::env::args().any(|a| a == "--bench") {
        println!("daemon bench: skipped outside `cargo bench` (run `make bench`)");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!("rolecall binary: {}", rolecall_bin().display());
    if wanted("idle") {
        idle();
    }
    if wanted("fanout") {
        fanout();
    }
    if wanted("credential-process") {
        credential_process();
    }
    if wanted("app") {
        app();
    }
}

/// A config of `n` role profiles `role-NN` from the MFA source `bastion`.
fn config(n: usize, settings: &str, duration: &str) -> String {
    let mut text = format!(
        "[settings]\nsts_timeout = \"10s\"\n{settings}\n[sources.bastion]\n\
         mfa_serial = \"{}\"\n",
        support::MFA_SERIAL
    );
    for i in 0..n {
        let _ = write!(
            text,
            "\n[profiles.role-{i:03}]\nsource = \"bastion\"\n\
             role_arn = \"arn:aws:iam::{:012}:role/Bench{i}\"\nduration = \"{duration}\"\n",
            100_000_000_000u64 + i as u64
        );
    }
    text
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

// ---------------------------------------------------------------------------------------------
// 1. idle daemon

/// One thread's counters from `/proc/PID/task/TID/status`.
#[derive(Clone, Debug)]
struct ThreadSample {
    name: String,
    voluntary: u64,
    involuntary: u64,
}

impl ThreadSample {
    fn switches(&self) -> u64 {
        self.voluntary + self.involuntary
    }
}

fn status_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Every live thread of `pid`, by TID.
fn threads(pid: u32) -> BTreeMap<u32, ThreadSample> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // a thread may exit between the listing and the read
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let name = fs::read_to_string(entry.path().join("comm"))
            .map(|n| n.trim().to_owned())
            .unwrap_or_default();
        out.insert(
            tid,
            ThreadSample {
                name,
                voluntary: status_field(&status, "voluntary_ctxt_switches").unwrap_or(0),
                involuntary: status_field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0),
            },
        );
    }
    out
}

/// RSS and PSS in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (
        status_field(&status, "VmRSS").unwrap_or(0),
        status_field(&rollup, "Pss").unwrap_or(0),
    )
}

/// Per-thread accounting over the window.
struct ThreadTrack {
    name: String,
    /// The sample at the window's start; `None` for a thread started during the window.
    first: Option<ThreadSample>,
    last: ThreadSample,
    /// When the thread was first missing from a sample.
    gone_at: Option<Duration>,
}

impl ThreadTrack {
    fn delta_voluntary(&self) -> u64 {
        self.last.voluntary - self.first.as_ref().map_or(0, |f| f.voluntary)
    }
    fn delta_involuntary(&self) -> u64 {
        self.last.involuntary - self.first.as_ref().map_or(0, |f| f.involuntary)
    }
    fn delta(&self) -> u64 {
        self.delta_voluntary() + self.delta_involuntary()
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn idle() {
    let world = World::start();
    world.setup(&config(IDLE_PROFILES, "", "1h"));
    // the daemon talks to the proxy with no faults: it only counts STS calls (due renewals)
    let daemon = Daemon::start(&world);
    let pid = daemon.process.pid();
    let out = world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    assert_eq!(
        out.stdout.matches("renewed").count(),
        IDLE_PROFILES,
        "{}",
        out.stdout
    );
    let fresh = wait_until(Duration::from_secs(30), || {
        let status = world.rc(&["status", "--json"]).run().success().json();
        let all = status.as_array()?;
        (all.len() == IDLE_PROFILES && all.iter().all(|p| p["state"] == "fresh")).then_some(())
    });
    assert!(fresh.is_some(), "profiles not fresh:\n{}", daemon.log());
    // let the agent's last connection close before the window opens
    std::thread::sleep(Duration::from_secs(1));

    let sts_before = world.proxy.requests().len();
    let log_before = daemon.log().len();
    let (rss_start, pss_start) = memory(pid);
    let start = threads(pid);
    let mut tracks: BTreeMap<u32, ThreadTrack> = start
        .iter()
        .map(|(tid, s)| {
            let track = ThreadTrack {
                name: s.name.clone(),
                first: Some(s.clone()),
                last: s.clone(),
                gone_at: None,
            };
            (*tid, track)
        })
        .collect();
    // what happened when: switches per thread, threads started and exited
    let mut timeline: Vec<(Duration, String)> = Vec::new();
    let mut switch_events: Vec<(Duration, u64)> = Vec::new();
    let opened = Instant::now();
    let mut tick = 0;
    while opened.elapsed() < IDLE_WINDOW {
        tick += 1;
        let next = opened + IDLE_SAMPLE * tick;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let at = opened.elapsed();
        let now = threads(pid);
        for (tid, s) in &now {
            let track = tracks.entry(*tid).or_insert_with(|| {
                timeline.push((at, format!("{tid} {} started", s.name)));
                ThreadTrack {
                    name: s.name.clone(),
                    first: None,
                    last: ThreadSample {
                        name: s.name.clone(),
                        voluntary: 0,
                        involuntary: 0,
                    },
                    gone_at: None,
                }
            });
            if s.switches() > track.last.switches() {
                let n = s.switches() - track.last.switches();
                timeline.push((at, format!("{tid} {} +{n}", s.name)));
                switch_events.push((at, n));
            }
            track.last = s.clone();
            track.name.clone_from(&s.name);
        }
        for (tid, track) in &mut tracks {
            if track.gone_at.is_none() && !now.contains_key(tid) {
                track.gone_at = Some(at);
                timeline.push((at, format!("{tid} {} exited", track.name)));
            }
        }
    }
    let (rss, pss) = memory(pid);
    let end = threads(pid);
    let naive = end
        .values()
        .map(ThreadSample::switches)
        .sum::<u64>()
        .saturating_sub(start.values().map(ThreadSample::switches).sum());
    // A thread that exits woke up to do so, but its last switches are folded into the
    // process's totals, which /proc shows for no thread: count each exit as one wake-up.
    let exits = tracks.values().filter(|t| t.gone_at.is_some()).count() as u64;
    let switches: u64 = tracks.values().map(ThreadTrack::delta).sum();
    let wakeups = switches + exits;
    let renewals = world.proxy.requests().len() - sts_before;
    let log = daemon.log();
    let new_log = log.get(log_before..).unwrap_or_default();

    println!("\nidle daemon: {IDLE_PROFILES} role profiles (1h, refresh_before 15m), 60 s idle");
    println!("pid {pid}; STS calls during the window (due renewals): {renewals}");
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "metric", "goal", "measured", "result"
    );
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "RSS after 60 s (VmRSS)",
        format!("<= {}", mb(IDLE_RSS_GOAL_KB)),
        mb(rss),
        pass(rss <= IDLE_RSS_GOAL_KB)
    );
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "PSS after 60 s (smaps_rollup)",
        "-",
        mb(pss),
        ""
    );
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "RSS / PSS at window start",
        "-",
        format!(
            "{:.1} / {:.1}",
            rss_start as f64 / 1024.0,
            pss_start as f64 / 1024.0
        ),
        ""
    );
    let wake_ok = wakeups <= IDLE_WAKEUP_GOAL;
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "wake-ups in 60 s (all threads)*",
        format!("<= {IDLE_WAKEUP_GOAL} + renewals"),
        wakeups,
        if renewals == 0 { pass(wake_ok) } else { "n/a" }
    );
    // after the last thread exit (tokio's blocking pool idles out 10 s after its last task)
    let settled = tracks
        .values()
        .filter_map(|t| t.gone_at)
        .max()
        .unwrap_or_default();
    let steady: u64 = switch_events
        .iter()
        .filter(|(at, _)| *at > settled)
        .map(|(_, n)| n)
        .sum();
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        format!(
            "  of which after +{:.1} s (last exit)",
            settled.as_secs_f64()
        ),
        "-",
        format!(
            "{steady} in {:.0} s",
            (IDLE_WINDOW.saturating_sub(settled)).as_secs_f64()
        ),
        ""
    );
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "threads (start -> end)",
        "-",
        format!("{} -> {}", start.len(), end.len()),
        ""
    );
    println!(
        "* {switches} context switches (voluntary + involuntary, per thread, sampled every \
         {} ms) + {exits} thread exits (one wake-up each; the exiting thread's last switches are \
         not visible in /proc); end-minus-start sum over live threads: {naive}",
        IDLE_SAMPLE.as_millis()
    );
    println!("\nper thread (context switches during the window):");
    println!(
        "{:>8} {:<16} {:>9} {:>11} {:>6}  note",
        "tid", "comm", "voluntary", "involuntary", "total"
    );
    for (tid, t) in &tracks {
        let note = match (t.first.is_some(), t.gone_at) {
            (true, None) => String::new(),
            (false, None) => "started during the window".to_owned(),
            (true, Some(at)) => format!("exited at +{:.1} s", at.as_secs_f64()),
            (false, Some(at)) => format!("started, exited at +{:.1} s", at.as_secs_f64()),
        };
        println!(
            "{:>8} {:<16} {:>9} {:>11} {:>6}  {note}",
            tid,
            t.name,
            t.delta_voluntary(),
            t.delta_involuntary(),
            t.delta()
        );
    }
    if !timeline.is_empty() {
        println!("timeline (seconds into the window, tid comm what):");
        for (at, what) in timeline.iter().take(40) {
            println!("  +{:>5.1} s  {what}", at.as_secs_f64());
        }
        if timeline.len() > 40 {
            println!("  … {} more", timeline.len() - 40);
        }
    }
    if !new_log.trim().is_empty() {
        println!("daemon log during the window (last 10 lines):");
        let lines: Vec<&str> = new_log.lines().collect();
        for line in &lines[lines.len().saturating_sub(10)..] {
            println!("  {line}");
        }
    }
    println!(
        "peer (MACHINE.md, reference probes measured on this machine, not this daemon): \
         keyring 4 zbus store + aws-sdk: RSS 12.8 MB, ~40 switches / 20 s (~120 / min), 3 extra \
         threads (blocking-1 wakes ~2/s); keyring-core + dbus-secret-service store: RSS 3.9 MB, \
         0 switches / 20 s, 0 extra threads"
    );
    // `daemon` drops before `world` (declared later): SIGTERM while moto and the keyring live
}

// ---------------------------------------------------------------------------------------------
// 2. fan-out

/// Checks the proxy delays requests independently: 8 parallel requests through a standing
/// `Delay(50ms)` take ~50 ms in all when they overlap, ~400 ms when serialised.
fn proxy_delay_overlap(world: &World) -> Duration {
    world.proxy.set_rule(Fault::Delay(STS_LATENCY));
    let url = format!("{}/moto-api/", world.proxy.url());
    let started = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || http_request("GET", &url, ""))
        })
        .collect();
    for h in handles {
        let answer = h.join().expect("probe thread");
        assert!(
            matches!(answer, Ok((200, _))),
            "proxy probe failed: {answer:?}"
        );
    }
    let took = started.elapsed();
    world.proxy.clear();
    took
}

/// CPU time (user + system) from `/proc/PID/stat`: the process's own, and that of its
/// children it has reaped. Ticks are USER_HZ, 100 on Linux.
fn cpu(pid: &str) -> (Duration, Duration) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the parenthesised comm: state is field 3, utime 14 … cstime 17
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).copied().unwrap_or(0);
    let tick = Duration::from_millis(10);
    (
        tick * u32::try_from(ticks(10) + ticks(11)).unwrap_or(u32::MAX),
        tick * u32::try_from(ticks(12) + ticks(13)).unwrap_or(u32::MAX),
    )
}

/// Where the CPU went during one run.
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    /// `rolecall refresh` (a reaped child of this process).
    rolecall: Duration,
    /// moto's Python process.
    moto: Duration,
    /// This process: the fault proxy's thread, plus the harness waiting.
    proxy: Duration,
}

struct Row {
    network: &'static str,
    limit: usize,
    runs: Vec<Duration>,
    cpu: Vec<CpuSplit>,
    /// Through the proxy: the most AssumeRole requests that arrived within one delay (so were
    /// all in flight at once), per run.
    in_flight: Vec<usize>,
}

/// The most requests arriving within any `window`: with a delay of `window` on each, they
/// were all in flight together.
fn peak_in_flight(mut arrivals: Vec<Instant>, window: Duration) -> usize {
    arrivals.sort_unstable();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..arrivals.len() {
        while arrivals[hi].duration_since(arrivals[lo]) >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

impl Row {
    fn median(&self) -> Duration {
        let mut runs = self.runs.clone();
        runs.sort_unstable();
        runs[runs.len() / 2]
    }
}

fn fanout() {
    let mut world = World::start();
    world.setup(&config(FANOUT_PROFILES, "", "1h"));
    let direct = Rolecall::new(&world.sandbox)
        .keyring(&world.keyring)
        .sts(&world.moto.url());
    let proxied = world.rolecall.clone();
    // the MFA session, cached in the keychain for every run below; also warms moto up
    world.rolecall = direct.clone();
    let out = world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .timeout(Duration::from_secs(120))
        .run()
        .success();
    assert_eq!(out.stdout.matches("renewed").count(), FANOUT_PROFILES);
    let overlap = proxy_delay_overlap(&world);
    // the fixed cost of the command (start, config, keychain, file): nothing due, no STS call
    let mut fixed: Vec<Duration> = (0..FANOUT_RUNS)
        .map(|_| {
            let started = Instant::now();
            let out = world.rc(&["--no-agent", "refresh"]).run().success();
            let took = started.elapsed();
            assert_eq!(out.stdout.matches("still valid").count(), FANOUT_PROFILES);
            took
        })
        .collect();
    fixed.sort_unstable();
    let fixed = fixed[fixed.len() / 2];
    let moto_pid = world.moto.pid().to_string();

    let mut rows: Vec<Row> = Vec::new();
    for (network, rc) in [("moto direct", &direct), ("proxy +50ms", &proxied)] {
        world.rolecall = rc.clone();
        let delayed = network != "moto direct";
        if delayed {
            world.proxy.set_rule(Fault::Delay(STS_LATENCY));
        }
        let first = rows.len();
        for limit in FANOUT_LIMITS {
            rows.push(Row {
                network,
                limit,
                runs: Vec::new(),
                cpu: Vec::new(),
                in_flight: Vec::new(),
            });
        }
        // interleaved, so drift (page cache, moto's growing state) hits every limit alike
        for _ in 0..FANOUT_RUNS {
            for (i, limit) in FANOUT_LIMITS.iter().enumerate() {
                let settings = format!("max_concurrent_refreshes = {limit}\n");
                world.sandbox.write(
                    world.sandbox.config_path(),
                    &config(FANOUT_PROFILES, &settings, "1h"),
                );
                let calls = world.proxy.count("AssumeRole");
                let (own_before, children_before) = cpu("self");
                let (moto_before, _) = cpu(&moto_pid);
                let started = Instant::now();
                let out = world
                    .rc(&["--no-agent", "refresh", "--force"])
                    .timeout(Duration::from_secs(120))
                    .run();
                let took = started.elapsed();
                let (own_after, children_after) = cpu("self");
                let (moto_after, _) = cpu(&moto_pid);
                rows[first + i].cpu.push(CpuSplit {
                    rolecall: children_after.saturating_sub(children_before),
                    moto: moto_after.saturating_sub(moto_before),
                    proxy: own_after.saturating_sub(own_before),
                });
                let out = out.success();
                assert_eq!(
                    out.stdout.matches("renewed").count(),
                    FANOUT_PROFILES,
                    "{}",
                    out.stdout
                );
                if delayed {
                    let arrivals: Vec<Instant> = world
                        .proxy
                        .requests()
                        .iter()
                        .filter(|r| r.action.as_deref() == Some("AssumeRole"))
                        .skip(calls)
                        .map(|r| r.at)
                        .collect();
                    assert_eq!(
                        arrivals.len(),
                        FANOUT_PROFILES,
                        "not every AssumeRole went through the proxy"
                    );
                    rows[first + i]
                        .in_flight
                        .push(peak_in_flight(arrivals, STS_LATENCY));
                }
                rows[first + i].runs.push(took);
            }
        }
        world.proxy.clear();
    }

    println!(
        "\nfan-out: `rolecall --no-agent refresh --force` of {FANOUT_PROFILES} role profiles \
         (MFA session cached), median of {FANOUT_RUNS}; peer: sequential \
         (max_concurrent_refreshes = 1)"
    );
    println!(
        "{:<12} {:>6} {:>27} {:>10} {:>12} {:>10} {:>9} {:>7}",
        "STS", "limit", "runs", "median", "per profile", "speed-up", "goal", "result"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for row in &rows {
        let sequential = rows
            .iter()
            .find(|r| r.network == row.network && r.limit == 1)
            .map_or(row.median(), Row::median);
        let speedup = sequential.as_secs_f64() / row.median().as_secs_f64();
        let runs: Vec<String> = row.runs.iter().map(|d| format!("{:.0}", ms(*d))).collect();
        let (goal, result) = if row.limit == 1 {
            ("peer".to_owned(), "")
        } else {
            (
                format!(">= {FANOUT_GOAL:.0}x"),
                pass(speedup >= FANOUT_GOAL),
            )
        };
        println!(
            "{:<12} {:>6} {:>24} ms {:>7.0} ms {:>9.1} ms {:>9.1}x {:>9} {:>7}",
            row.network,
            row.limit,
            runs.join(" / "),
            ms(row.median()),
            ms(row.median()) / FANOUT_PROFILES as f64,
            speedup,
            goal,
            result
        );
    }
    println!("\nwhere the time went (CPU per run, mean of {FANOUT_RUNS}; busy = CPU / wall time):");
    println!(
        "{:<12} {:>6} {:>12} {:>12} {:>10} {:>12} {:>15}",
        "STS", "limit", "rolecall", "moto", "moto busy", "proxy+bench", "peak in flight"
    );
    for row in &rows {
        let n = u32::try_from(row.cpu.len().max(1)).unwrap_or(1);
        let total = |f: fn(&CpuSplit) -> Duration| row.cpu.iter().map(f).sum::<Duration>() / n;
        let wall = row.runs.iter().sum::<Duration>() / n;
        let moto = total(|c| c.moto);
        let in_flight: Vec<String> = row.in_flight.iter().map(ToString::to_string).collect();
        println!(
            "{:<12} {:>6} {:>9.0} ms {:>9.0} ms {:>9.0}% {:>9.0} ms {:>15}",
            row.network,
            row.limit,
            ms(total(|c| c.rolecall)),
            ms(moto),
            100.0 * moto.as_secs_f64() / wall.as_secs_f64(),
            ms(total(|c| c.proxy)),
            if in_flight.is_empty() {
                "-".to_owned()
            } else {
                in_flight.join(" / ")
            },
        );
    }
    // moto answers on one Python thread at a time (the GIL): its CPU per AssumeRole is a
    // floor on the whole run's time that no client concurrency removes
    let mut moto_cpu: Vec<Duration> = rows
        .iter()
        .flat_map(|r| r.cpu.iter().map(|c| c.moto))
        .collect();
    moto_cpu.sort_unstable();
    let moto_floor = moto_cpu
        .get(moto_cpu.len() / 2)
        .copied()
        .unwrap_or_default();
    let floor = fixed + moto_floor;
    let ceiling = |network: &str| {
        rows.iter()
            .find(|r| r.network == network && r.limit == 1)
            .map_or(0.0, |r| r.median().as_secs_f64() / floor.as_secs_f64())
    };
    println!(
        "fixed cost of the command, nothing due (no STS call): {:.0} ms; moto's CPU for \
         {FANOUT_PROFILES} AssumeRole (median run): {:.0} ms, serial under the GIL",
        ms(fixed),
        ms(moto_floor),
    );
    println!(
        "so no concurrency beats ~{:.0} ms against this moto: speed-up ceiling {:.1}x direct, \
         {:.1}x at +50ms",
        ms(floor),
        ceiling("moto direct"),
        ceiling("proxy +50ms"),
    );
    println!(
        "fault proxy check: 8 parallel requests through Delay({}ms) took {:.0} ms ({})",
        STS_LATENCY.as_millis(),
        ms(overlap),
        if overlap < STS_LATENCY * 4 {
            "delayed independently"
        } else {
            "SERIALISED: the +50ms row understates concurrency"
        }
    );
}

// ---------------------------------------------------------------------------------------------
// 3. credential_process

/// One command timed as a whole process, spawn to exit (its output discarded).
struct Timed {
    name: String,
    command: Command,
    runs: Vec<Duration>,
}

impl Timed {
    fn new(name: &str, mut command: Command) -> Timed {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Timed {
            name: name.to_owned(),
            command,
            runs: Vec::new(),
        }
    }

    fn run_once(&mut self) {
        let started = Instant::now();
        let status = self.command.status().unwrap();
        self.runs.push(started.elapsed());
        assert!(status.success(), "{} failed: {status}", self.name);
    }

    /// The `q` quantile (0.5 = median) of the runs.
    fn quantile(&self, q: f64) -> Duration {
        let mut runs = self.runs.clone();
        runs.sort_unstable();
        let at = ((runs.len() - 1) as f64 * q).round() as usize;
        runs[at]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Runs every command `runs` times, one of each in turn (so drift hits all alike); a command
/// with fewer runs wanted (the peer) drops out once it has them.
fn interleave(rows: &mut [(&mut Timed, usize)]) {
    let most = rows.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for i in 0..most {
        for (timed, n) in rows.iter_mut() {
            if i < *n {
                timed.run_once();
            }
        }
    }
}

/// `bastion get-session-token` with a valid cache, in a HOME of its own, as its README sets it
/// up (`[bastion]` keys, `[bastion-sts]` with the MFA device); `None` when it is not installed.
fn bastion(world: &World) -> Option<Timed> {
    let bin = support::bastion_bin()?;
    let home = world.sandbox.root().join("bastion-home");
    fs::create_dir_all(home.join(".aws/cli/cache")).unwrap();
    fs::write(
        home.join(".aws/credentials"),
        format!(
            "[bastion]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n\
             [bastion-sts]\nmfa_serial = {}\ncredential_process = {} get-session-token\n",
            support::TEST_ACCESS_KEY_ID,
            support::TEST_SECRET_ACCESS_KEY,
            support::MFA_SERIAL,
            bin.display()
        ),
    )
    .unwrap();
    let expiration =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(6 * 3600));
    fs::write(
        home.join(".aws/cli/cache/bastion-sts.json"),
        format!(
            r#"{{"Version": 1, "AccessKeyId": "AKIAI44QH8DHBEXAMPLE", "SecretAccessKey": "bench", "SessionToken": "bench", "Expiration": "{expiration}"}}"#
        ),
    )
    .unwrap();
    let mut command = Command::new(&bin);
    command
        .arg("get-session-token")
        .env_clear()
        .envs(world.sandbox.env())
        .env("HOME", &home);
    // it must answer from the cache, not ask for a code
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("AKIAI44QH8DHBEXAMPLE"),
        "bastion get-session-token did not answer from its cache: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Timed::new("awscli-bastion get-session-token", command))
}

fn credential_process() {
    let world = World::start();
    world.setup(support::CONFIG);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let rolecall = |name: &str| {
        let mut command = Command::new(rolecall_bin());
        command
            .args(["credential-process", "dev-admin"])
            .env_clear()
            .envs(world.rolecall.environment());
        Timed::new(name, command)
    };
    // warm: answered from the file, no STS call
    let out = world
        .rc(&["credential-process", "dev-admin"])
        .run()
        .success();
    assert!(out.stdout.contains("\"Version\":1"), "{}", out.stdout);
    let sts_before = world.proxy.requests().len();

    let mut floor = Timed::new("/bin/true", Command::new("/bin/true"));
    let mut alone = rolecall("rolecall, no agent running");
    let mut peer = bastion(&world);
    match peer.as_mut() {
        Some(peer) => interleave(&mut [
            (&mut floor, CP_RUNS),
            (&mut alone, CP_RUNS),
            (peer, CP_PEER_RUNS),
        ]),
        None => interleave(&mut [(&mut floor, CP_RUNS), (&mut alone, CP_RUNS)]),
    }
    let daemon = Daemon::start(&world);
    let mut floor_again = Timed::new("/bin/true (beside the daemon)", Command::new("/bin/true"));
    let mut with_agent = rolecall("rolecall, daemon running");
    interleave(&mut [(&mut floor_again, CP_RUNS), (&mut with_agent, CP_RUNS)]);
    drop(daemon);
    let renewals = world.proxy.requests().len() - sts_before;

    println!(
        "\ncredential_process, warm (fresh credentials, nothing to renew), whole process spawn \
         to exit; STS calls during the runs: {renewals}"
    );
    println!(
        "{:<38} {:>6} {:>10} {:>10} {:>10} {:>7}",
        "command", "runs", "p50", "p95", "goal p50", "result"
    );
    let row = |t: &Timed, goal: bool| {
        let p50 = t.quantile(0.5);
        println!(
            "{:<38} {:>6} {:>10} {:>10} {:>10} {:>7}",
            t.name,
            t.runs.len(),
            ms(p50),
            ms(t.quantile(0.95)),
            if goal {
                format!("<= {}", ms(CP_GOAL))
            } else {
                "-".to_owned()
            },
            if goal { pass(p50 <= CP_GOAL) } else { "" }
        );
    };
    row(&floor, false);
    row(&alone, true);
    row(&floor_again, false);
    row(&with_agent, true);
    match &peer {
        Some(peer) => row(peer, false),
        None => println!(
            "{:<38} (not installed: set BASTION_BIN, `make bench` does)",
            "awscli-bastion get-session-token"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. the tray app

/// `pid` and every process below it (the app's WebKit processes).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        // the parent is the 2nd field after the `(comm)`
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(parent) = parent {
            parents.push((child, parent));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let at = tree[i];
        tree.extend(parents.iter().filter(|(_, p)| *p == at).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// PSS summed over the tree, and each process's name and PSS.
fn tree_pss(pid: u32) -> (u64, Vec<(String, u64)>) {
    let parts: Vec<(String, u64)> = process_tree(pid)
        .into_iter()
        .map(|p| {
            let name = fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|n| n.trim().to_owned())
                .unwrap_or_default();
            (name, memory(p).1)
        })
        .collect();
    (parts.iter().map(|(_, kb)| kb).sum(), parts)
}

fn popup_open(app: &App, xvfb: &Xvfb) -> bool {
    app.windows(xvfb).iter().any(|w| w.title == POPUP_TITLE)
}

fn app() {
    let world = World::start();
    world.setup(support::CONFIG);
    // fresh before the app starts: it opens no window by itself
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    let pid = app.process.pid();
    app.wait_for_menu("every profile fresh", |m| {
        m.iter().filter(|i| i.label.ends_with(" left")).count() >= 3
    });
    // settled: start-up allocations done
    std::thread::sleep(Duration::from_secs(5));
    let (idle, idle_parts) = tree_pss(pid);
    assert!(!popup_open(&app, &xvfb), "a window opened by itself");

    let mut after: Vec<u64> = Vec::new();
    let mut open_peak = 0;
    for cycle in 0..APP_POPUP_CYCLES {
        // sessions forgotten through the app's agent: every profile needs a code again
        world.rc(&["clear"]).run().success();
        if wait_until(Duration::from_secs(3), || {
            popup_open(&app, &xvfb).then_some(())
        })
        .is_none()
        {
            app.click("Enter MFA code");
        }
        app.wait_for_window(&xvfb, POPUP_TITLE);
        open_peak = open_peak.max(tree_pss(pid).0);
        world
            .rc(&["refresh", "--mfa-code", "123456"])
            .run()
            .success();
        let closed = wait_until(Duration::from_secs(30), || {
            (!popup_open(&app, &xvfb)).then_some(())
        });
        assert!(
            closed.is_some(),
            "cycle {cycle}: the popup stayed open\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_secs(2));
        after.push(tree_pss(pid).0);
    }
    let (end, end_parts) = tree_pss(pid);
    let first = after[0];
    let last = after[after.len() - 1];

    println!("\ntray app: PSS summed over the app and its WebKit processes (smaps_rollup)");
    println!(
        "{:<46} {:>14} {:>14} {:>7}",
        "metric", "goal", "measured", "result"
    );
    println!(
        "{:<46} {:>14} {:>14} {:>7}",
        "idle after start, no window ever opened",
        format!("<= {}", mb(APP_IDLE_GOAL_KB)),
        mb(idle),
        pass(idle <= APP_IDLE_GOAL_KB)
    );
    println!(
        "{:<46} {:>14} {:>14} {:>7}",
        "with the MFA popup open (peak of 10)",
        "-",
        mb(open_peak),
        ""
    );
    println!(
        "{:<46} {:>14} {:>14} {:>7}",
        format!("after {APP_POPUP_CYCLES} popup open/close cycles"),
        format!("<= {}", mb(APP_POPUP_GOAL_KB)),
        mb(end),
        pass(end <= APP_POPUP_GOAL_KB)
    );
    println!(
        "{:<46} {:>14} {:>14} {:>7}",
        "growth, after cycle 1 to after cycle 10",
        "noise",
        format!("{:+.1} MB", (last as f64 - first as f64) / 1024.0),
        ""
    );
    println!(
        "after each cycle: {}",
        after
            .iter()
            .map(|kb| mb(*kb))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (what, parts) in [("idle", &idle_parts), ("end", &end_parts)] {
        let list: Vec<String> = parts
            .iter()
            .map(|(n, kb)| format!("{n} {}", mb(*kb)))
            .collect();
        println!("{what}: {}", list.join(", "));
    }
}
