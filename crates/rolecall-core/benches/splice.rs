//! Credentials-file refresh cost: rolecall's splice writer against the naive approach.
//!
//! For files of 100, 1,000 and 10,000 profiles, 20% of them managed, this times (a) `splice`
//! refreshing every managed section in one pass and (b) a whole-file rust-ini parse, the same
//! keys set, and a rewrite (which would also lose the user's comments and layout). It prints
//! the median and p95 of each, plus the sizes. Run with `make bench` or
//! `cargo bench -p rolecall-core --bench splice`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rolecall_core::credentials::{Credentials, SecretString};
use rolecall_core::credfile::{self, Edit, Section};

const SIZES: [usize; 3] = [100, 1_000, 10_000];
const MANAGED_SHARE: usize = 5; // one profile in five
const GOAL_MS: f64 = 10.0;

/// A deterministic pseudo-random string of `len` characters from `alphabet`.
fn noise(rng: &mut fastrand::Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.usize(..alphabet.len())]))
        .collect()
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn credentials(rng: &mut fastrand::Rng, expires: SystemTime) -> Credentials {
    Credentials {
        access_key_id: format!("ASIA{}", noise(rng, UPPER, 16)),
        secret_access_key: SecretString::from(noise(rng, BASE64, 40)),
        // Real role session tokens run 600 to 1,000 characters.
        session_token: Some(SecretString::from(noise(rng, BASE64, 800))),
        expiration: Some(expires),
    }
}

fn managed_name(i: usize) -> String {
    format!("rc-{i:05}")
}

/// A credentials file of `profiles` sections: user profiles with static keys, comments and
/// uneven spacing, and every fifth profile managed (written by `splice` itself).
fn generate(profiles: usize, rng: &mut fastrand::Rng) -> (String, Vec<String>) {
    let mut user =
        String::from("# AWS credentials\n# maintained by hand; rolecall adds its own\n\n");
    let mut managed = Vec::new();
    for i in 0..profiles {
        if i % MANAGED_SHARE == 0 {
            managed.push(managed_name(i));
            continue;
        }
        if i % 3 == 0 {
            user.push_str(&format!("# team {} account, rotated quarterly\n", i % 17));
        }
        let spacing = if i % 4 == 0 { "=" } else { " = " };
        user.push_str(&format!(
            "[user-{i:05}]\naws_access_key_id{spacing}AKIA{}\naws_secret_access_key{spacing}{}\n",
            noise(rng, UPPER, 16),
            noise(rng, BASE64, 40),
        ));
        if i % 2 == 0 {
            user.push_str("region = eu-west-1\n");
        }
        user.push('\n');
    }
    let expires = UNIX_EPOCH + Duration::from_secs(1_795_316_786);
    let edits: Vec<Edit> = managed
        .iter()
        .map(|name| upsert(name, credentials(rng, expires)))
        .collect();
    let text = credfile::splice(&user, &edits, Path::new("bench")).expect("generated file splices");
    (text.to_string(), managed)
}

fn upsert(name: &str, credentials: Credentials) -> Edit {
    Edit::Upsert {
        section: Section {
            name: name.to_owned(),
            credentials,
            region: Some("eu-west-1".into()),
            provenance: Some(rolecall_core::credfile::Provenance {
                role: Some(format!("arn:aws:iam::222222222222:role/{name}")),
                source: "bastion".to_owned(),
                generated: std::time::SystemTime::now(),
            }),
        },
        adopt: false,
    }
}

/// The naive refresh: parse the whole file, set the keys, serialise the whole file.
fn naive_refresh(text: &str, edits: &[Edit]) -> Vec<u8> {
    use rolecall_core::credentials::ExposeSecret;
    let mut ini = ini::Ini::load_from_str(text).expect("rust-ini parses the generated file");
    for edit in edits {
        let Edit::Upsert { section, .. } = edit else {
            continue;
        };
        let c = &section.credentials;
        let mut s = ini.with_section(Some(section.name.as_str()));
        s.set("x_rolecall_managed", "true")
            .set(
                "x_rolecall_expiration",
                c.expiration
                    .map(|e| humantime::format_rfc3339_seconds(e).to_string())
                    .unwrap_or_default(),
            )
            .set("aws_access_key_id", c.access_key_id.as_str())
            .set("aws_secret_access_key", c.secret_access_key.expose_secret())
            .set(
                "aws_session_token",
                c.session_token
                    .as_ref()
                    .map(|t| t.expose_secret())
                    .unwrap_or_default(),
            );
        if let Some(region) = &section.region {
            s.set("region", region.as_str());
        }
    }
    let mut out = Vec::with_capacity(text.len() + 1024);
    ini.write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

struct Stats {
    median: Duration,
    p95: Duration,
}

fn measure(runs: usize, mut f: impl FnMut()) -> Stats {
    f(); // warm up caches and the allocator
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    Stats {
        median: times[times.len() / 2],
        p95: times[(times.len() * 95).div_ceil(100).saturating_sub(1)],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    println!("credentials-file refresh: splice vs whole-file rust-ini rewrite");
    println!(
        "goal: splice median < {GOAL_MS} ms at 1,000 profiles (200 managed), time linear in \
         file size\n"
    );
    println!(
        "{:>8} {:>8} {:>11} {:>6} | {:>12} {:>12} {:>9} | {:>12} {:>12} {:>11}",
        "profiles",
        "managed",
        "bytes",
        "runs",
        "splice p50",
        "splice p95",
        "ns/byte",
        "rust-ini p50",
        "rust-ini p95",
        "ini bytes"
    );
    let mut goal_met = true;
    for profiles in SIZES {
        let (text, managed) = generate(profiles, &mut rng);
        let expires = UNIX_EPOCH + Duration::from_secs(1_795_320_386);
        let edits: Vec<Edit> = managed
            .iter()
            .map(|name| upsert(name, credentials(&mut rng, expires)))
            .collect();
        let runs = match profiles {
            0..=100 => 500,
            101..=1_000 => 100,
            _ => 20,
        };

        let out = credfile::splice(&text, &edits, Path::new("bench")).expect("splice succeeds");
        assert_eq!(credfile::inspect(&out).managed().count(), managed.len());
        let naive_len = naive_refresh(&text, &edits).len();

        let splice = measure(runs, || {
            black_box(credfile::splice(
                black_box(&text),
                black_box(&edits),
                Path::new("bench"),
            ))
            .ok();
        });
        let naive = measure(runs, || {
            black_box(naive_refresh(black_box(&text), black_box(&edits)));
        });
        let per_byte = splice.median.as_secs_f64() * 1e9 / out.len() as f64;
        if profiles == 1_000 && ms(splice.median) >= GOAL_MS {
            goal_met = false;
        }
        println!(
            "{:>8} {:>8} {:>11} {:>6} | {:>9.3} ms {:>9.3} ms {:>9.2} | {:>9.3} ms {:>9.3} ms {:>11}",
            profiles,
            managed.len(),
            out.len(),
            runs,
            ms(splice.median),
            ms(splice.p95),
            per_byte,
            ms(naive.median),
            ms(naive.p95),
            naive_len,
        );
    }
    println!(
        "\ngoal {}; the rust-ini rewrite also drops every comment and blank line of the user's file",
        if goal_met { "met" } else { "MISSED" }
    );
}
