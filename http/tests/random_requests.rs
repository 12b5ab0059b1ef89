//! Random requests, written raw over TCP so that paths reach the server exactly as written
//! (`..`, percent-encoded separators and dots, absolute forms: an HTTP client library would
//! normalise them away). Every answer must be a success or a 4xx, every refusal JSON with
//! an ESE error, nothing may hang, no byte of a file outside the instance may come back,
//! and afterwards a whole backup must still run and verify.
//!
//! `ESE_FUZZ_SEED` replays a run (each failure names its seed); `ESE_FUZZ_REQUESTS` sets
//! how many requests a run sends (2,000 by default; the run with tokens sends half).

mod support;

use std::time::Duration;

use ese_actors::{list_sets, verify_at, BackupTarget, Term, VerifyDepth};
use ese_http::client::{RemoteBackup, RemoteOptions};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Planted beside the instance's folder: no answer may contain it.
const SECRET: &str = "not-for-any-client-5f1c9a";
/// The tokens of the run with authentication (the router's file format).
const TOKENS: &str = "reader-0123456789abcdef read\nadmin-0123456789abcdef read,truncate,end\n";
/// The token that may end any backup (ignored by a router without tokens).
const ADMIN: &str = "admin-0123456789abcdef";
/// The salt of the run with tokens.
const TOKEN_RUN: u64 = 0x9e37_79b9_7f4a_7c15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_answer_json_errors_and_leave_a_working_server() {
    let h = host(Opts::default()).await;
    let (seed, n) = run_settings();
    fuzz(&h, seed, 0, n).await;
    a_whole_backup_still_verifies(&h, seed).await;
    h.inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_with_tokens_answer_json_errors() {
    let h = host(Opts {
        tokens: Some(TOKENS),
        ..Opts::default()
    })
    .await;
    let (seed, n) = run_settings();
    // Another stream of requests than the run without tokens, from the same seed.
    fuzz(&h, seed, TOKEN_RUN, n / 2).await;
    let begin = h
        .http
        .post(format!("{}/backups", h.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"kind": "full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(begin.status(), 201, "seed {seed}: a begin after the run");
    let id = begun_id(&begin.bytes().await.unwrap()).unwrap();
    let end = h.http.delete(h.backup(&id)).bearer_auth(ADMIN).send().await;
    assert_eq!(end.unwrap().status(), 204, "seed {seed}");
    h.inst.term(Term::empty()).await.unwrap();
}

/// The seed (from `ESE_FUZZ_SEED`, else the clock) and the number of requests.
fn run_settings() -> (u64, usize) {
    let seed = std::env::var("ESE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let n = std::env::var("ESE_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    (seed, n)
}

/// Sends `n` random requests to `h`'s router and checks each answer; `salt` varies the
/// stream a seed gives (failures name the seed, which replays them).
async fn fuzz(h: &Host, seed: u64, salt: u64, n: usize) {
    let secret = h.dir.path().join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    let addr = h.url.trim_start_matches("http://");
    let addr = &addr[..addr.find('/').unwrap()];
    let mut rng = Rng(seed ^ salt);
    // The ids the requests use (an ended one is dropped), and every id begun, for the end.
    let (mut ids, mut begun): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for i in 0..n {
        let req = random_request(&mut rng, &ids);
        let ctx = format!("seed {seed}, request {i}: {}", req.describe());
        let answer = tokio::time::timeout(Duration::from_secs(30), send(addr, &req.bytes))
            .await
            .unwrap_or_else(|_| panic!("{ctx}: no answer within 30 s"))
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        check(&answer, &req, &ctx);
        if answer.status == 201 {
            if let Some(id) = begun_id(&answer.body) {
                ids.push(id.clone());
                begun.push(id);
            }
        }
        // An id is used until its backup ends; then the run asks for a new one.
        if (answer.status / 100 == 2 && ended(&req)) || answer.status == 410 {
            ids.retain(|id| Some(id) != req.id.as_ref());
        }
    }
    // Nothing begun by the run is left running: a backup of the last phase must begin.
    for id in &begun {
        let _ = h.http.delete(h.backup(id)).bearer_auth(ADMIN).send().await;
    }
}

/// After the run: a client pulls a whole backup into a set, which verifies.
async fn a_whole_backup_still_verifies(h: &Host, seed: u64) {
    let to = h.dir.path().join("sets");
    let target = BackupTarget::parse(to.to_str().unwrap()).unwrap();
    let done = RemoteBackup::new(&h.url, RemoteOptions::default())
        .unwrap()
        .run(&target)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: a backup after the run failed: {e}"));
    let sets = list_sets(&target).await.unwrap();
    assert_eq!(sets.len(), 1, "seed {seed}");
    verify_at(&target, &sets[0].name, VerifyDepth::Full, None)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: the set does not verify: {e}"));
    assert!(done.manifest.content_bytes() > 0);
}

/// A request as bytes, with what the check needs to know of it.
struct Raw {
    method: &'static str,
    bytes: Vec<u8>,
    /// The id the router gave out that the request names, if it names one.
    id: Option<String>,
}

impl Raw {
    fn describe(&self) -> String {
        let head = String::from_utf8_lossy(&self.bytes);
        let head = head.split("\r\n\r\n").next().unwrap_or_default();
        head.replace("\r\n", " | ")
    }
}

/// An answer: status, headers (lower-case names) and the body, de-chunked.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn check(a: &Answer, req: &Raw, ctx: &str) {
    assert!(
        a.status / 100 == 2 || a.status / 100 == 4,
        "{ctx}: status {} ({})",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    assert!(
        !contains(&a.body, SECRET.as_bytes()),
        "{ctx}: a file outside the instance was served"
    );
    if a.status < 400 || req.method == "HEAD" {
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_else(|e| {
        panic!(
            "{ctx}: a {} that is not JSON ({e}): {:?}",
            a.status,
            String::from_utf8_lossy(&a.body)
        )
    });
    let e = &v["error"];
    let code = e["code"].as_i64().unwrap_or(0);
    let name = e["name"].as_str().unwrap_or_default();
    assert!(
        code < 0 && name.starts_with("JET_err") && e["message"].is_string(),
        "{ctx}: a {} without an ESE error: {v}",
        a.status
    );
    let json = a
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/json"));
    assert!(json, "{ctx}: a {} not typed as JSON", a.status);
}

/// The request ends the backup it names when it succeeds: a `DELETE` of it or its `end`.
fn ended(req: &Raw) -> bool {
    req.method == "DELETE" || req.describe().contains("/end HTTP/")
}

fn begun_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(v["id"].as_str()?.to_string())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One request on its own connection (`Connection: close`), the answer read to its end.
async fn send(addr: &str, req: &[u8]) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(req).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> std::io::Result<Answer> {
    let bad = |what: &str| std::io::Error::other(format!("{what}: {:?}", lossy_head(raw)));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = match chunked {
        true => dechunk(rest).ok_or_else(|| bad("a malformed chunked body"))?,
        false => rest.to_vec(),
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn lossy_head(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned()
}

/// A chunked body's data (trailers dropped); `None` if it is cut or malformed.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// splitmix64: a small deterministic generator, so that a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T: ?Sized>(&mut self, from: &[&'a T]) -> &'a T {
        from[self.below(from.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS",
];
const NAMES: &[&str] = &[
    "src",
    "src",
    "src",
    "nope",
    "..",
    "%2e%2e",
    "src%2f..",
    "src%2F%2E%2E",
    "%00",
    "SRC",
    "%C3%A9",
];
const IDS: &[&str] = &[
    "push-1",
    "0",
    "1",
    "18446744073709551616",
    "-1",
    "..",
    "%2e%2e",
    "%2e%2e%2f%2e%2e",
    "%2Fetc%2Fpasswd",
    "%2F",
    "a%00b",
    "x",
];
const ODD_TARGETS: &[&str] = &[
    "/",
    "/v1",
    "/v1/instances",
    "/v1/instances/",
    "/v2/instances/src",
    "//v1//instances//src//backups",
    "/v1/instances/src/backups?kind=full",
    "/v1/instances/src/backups/%zz",
    "/v1/instances/src/../../secret.txt",
    "/v1/instances/src/backups/../../../secret.txt",
    "http://elsewhere/v1/instances/src",
    "/v1/instances/src/backups/x/files/0?range=bytes%3D0-",
];
const RANGES: &[&str] = &[
    "bytes=0-",
    "bytes=1-",
    "bytes=65536-",
    "bytes=0-0",
    "bytes=-1",
    "bytes=5-1",
    "bytes=abc",
    "bytes=18446744073709551616-",
    "bytes=0-,5-",
    "items=0-",
    "",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "nonsense",
];
const AUTHS: &[&str] = &[
    "Bearer reader-0123456789abcdef",
    "Bearer admin-0123456789abcdef",
    "Bearer admin-0123456789abcdee",
    "Bearer ",
    "Bearer admin-0123456789abcdef-and-more",
    "Basic YWRtaW46YWRtaW4=",
    "bearer admin-0123456789abcdef",
    "nonsense",
];
const BODIES: &[&str] = &[
    r#"{"kind":"full"}"#,
    r#"{"kind":"full"}"#,
    r#"{"kind":"incremental"}"#,
    r#"{"kind":"copy"}"#,
    r#"{"kind":5}"#,
    r#"{"kind":"full","target":"/tmp/elsewhere"}"#,
    r#"{"kind":"full","target":"s3://bucket/prefix"}"#,
    r#"{"kind":"full","target":"../elsewhere"}"#,
    r#"{"kind":"full","extra":[1,2,3]}"#,
    r#"{"mode":"normal"}"#,
    r#"{"mode":"abort"}"#,
    r#"{"mode":"abort","truncate_done":true}"#,
    r#"{"mode":"normal","truncate_done":"yes"}"#,
    r#"{"mode":"banana"}"#,
    r#"{"kind":"full""#,
    "null",
    "[]",
    "\"full\"",
    "{}",
    "12345678901234567890123456789",
];

/// What the router serves, as (method, path below the instance); the random requests aim at
/// these most of the time, so that they reach the handlers and not only the router's
/// refusals. `{id}` is a backup id, `{file}` a file of it.
const ROUTES: &[(&str, &str, &[&str])] = &[
    ("GET", "", NO_BODY),
    ("POST", "/backups", BEGINS),
    ("POST", "/backups", BEGINS),
    ("GET", "/backups/{id}", NO_BODY),
    ("DELETE", "/backups/{id}", NO_BODY),
    ("GET", "/backups/{id}/databases", NO_BODY),
    ("GET", "/backups/{id}/databases", NO_BODY),
    ("POST", "/backups/{id}/logs", NO_BODY),
    ("GET", "/backups/{id}/files/{file}", NO_BODY),
    ("GET", "/backups/{id}/files/{file}", NO_BODY),
    ("GET", "/backups/{id}/files/{file}", NO_BODY),
    ("GET", "/backups/{id}/record", NO_BODY),
    ("GET", "/backups/{id}/truncation", NO_BODY),
    ("POST", "/backups/{id}/truncation", NO_BODY),
    ("POST", "/backups/{id}/end", ENDS),
];
const NO_BODY: &[&str] = &[""];
const BEGINS: &[&str] = &[
    r#"{"kind":"full"}"#,
    r#"{"kind":"full"}"#,
    r#"{"kind":"full"}"#,
    r#"{"kind":"incremental"}"#,
    r#"{"kind":"copy"}"#,
    r#"{"kind":"full","target":"/tmp/elsewhere"}"#,
];
const ENDS: &[&str] = &[
    r#"{"mode":"normal"}"#,
    r#"{"mode":"abort"}"#,
    r#"{"mode":"abort","truncate_done":true}"#,
    r#"{"mode":"normal","truncate_done":true}"#,
];
const FILES: &[&str] = &[
    "0",
    "0",
    "0",
    "0",
    "1",
    "1",
    "1",
    "2",
    "99",
    "-1",
    "data.edb",
    "18446744073709551616",
    "..%2f..%2fsecret.txt",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "../../secret.txt",
    "..",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "secret.txt",
    "0/more",
];

/// A random request: mostly a route the router serves, on the instance, with an id it gave
/// out; now and then any method, any name, any id, any path.
fn random_request(rng: &mut Rng, ids: &[String]) -> Raw {
    let (method, target, fitting, id) = match rng.chance(10) {
        true => (
            rng.pick(METHODS),
            rng.pick(ODD_TARGETS).to_string(),
            NO_BODY,
            None,
        ),
        false => random_route(rng, ids),
    };
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if rng.chance(30) {
        head += &format!("Range: {}\r\n", rng.pick(RANGES));
    }
    if rng.chance(30) {
        head += "TE: trailers\r\n";
    }
    if rng.chance(60) {
        head += &format!("Authorization: {}\r\n", rng.pick(AUTHS));
    }
    let body = match rng.chance(70) {
        true => rng.pick(fitting).as_bytes().to_vec(),
        false => random_body(rng),
    };
    if !body.is_empty() || rng.chance(20) {
        head += &format!("Content-Type: {}\r\n", rng.pick(CONTENT_TYPES));
    }
    head += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    Raw { method, bytes, id }
}

/// What [`random_route`] picked: method, target, the bodies that fit the route, and the id
/// the router gave out that it names (if it names one).
type Route = (
    &'static str,
    String,
    &'static [&'static str],
    Option<String>,
);

fn random_route(rng: &mut Rng, ids: &[String]) -> Route {
    let (mut method, path, fitting) = ROUTES[rng.below(ROUTES.len())];
    if rng.chance(10) {
        method = rng.pick(METHODS);
    }
    let name = match rng.chance(85) {
        true => "src",
        false => rng.pick(NAMES),
    };
    let real = ids.last().filter(|_| rng.chance(80)).cloned();
    let id = real.clone().unwrap_or_else(|| rng.pick(IDS).to_string());
    let named = real.filter(|_| path.contains("{id}"));
    let path = path.replace("{id}", &id).replace("{file}", rng.pick(FILES));
    (
        method,
        format!("/v1/instances/{name}{path}"),
        fitting,
        named,
    )
}

fn random_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=4 => Vec::new(),
        5..=7 => rng.pick(BODIES).as_bytes().to_vec(),
        8 => {
            // Nested deeper than serde_json's recursion limit.
            let depth = 200 + rng.below(800);
            let mut b = "[".repeat(depth).into_bytes();
            b.extend("]".repeat(depth).bytes());
            b
        }
        _ => (0..rng.below(2048)).map(|_| rng.next() as u8).collect(),
    }
}
