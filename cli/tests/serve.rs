//! `ese serve` as a real process: its status endpoint, a clean term on SIGTERM that keeps every
//! acknowledged commit, TLS with a given certificate, and its refusals; and `ese serve` with
//! `ese backup --url` as two processes: a full and an incremental pulled while the service's
//! writers commit restore a gap-free prefix, over HTTPS too, and a SIGTERM of the service
//! while the client streams fails the client with the contract's code.

mod common;

use std::path::Path;
use std::time::Duration;

use common::serve::Served;
use common::*;
use ese_actors::{Engine, InstanceParams, KeyRange, Term};
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    rt().block_on(async {
        let res = client.get(url).send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    })
}

/// The orders the serve's writers left in `dir` (the service stopped): for each writer its
/// rows `order-WW-NNNNNNNN` must be 0..n without a gap, and `~last-WW` names its newest.
/// Answers the total.
fn count_orders(dir: &Path) -> u64 {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    count_orders_in(dir, &dir.join(format!("{name}.edb")))
}

/// [`count_orders`] of the database `db`, attached by an instance in `home`.
fn count_orders_in(home: &Path, db: &Path) -> u64 {
    rt().block_on(async {
        let engine = Engine::new();
        let inst = engine
            .create_instance("check", InstanceParams::new(home))
            .await
            .unwrap();
        inst.init().await.unwrap();
        let db = inst.attach_database(db).await.unwrap();
        let t = inst.open_table(db, "orders").await.unwrap();
        let s = inst.begin_session().await.unwrap();
        let mut total = 0;
        for w in 0..2 {
            let rows = s
                .scan(t, KeyRange::prefix(format!("order-{w:02}-").as_bytes()))
                .await
                .unwrap();
            for (i, (k, _)) in rows.iter().enumerate() {
                assert_eq!(k.as_ref(), format!("order-{w:02}-{i:08}").as_bytes());
            }
            if let Some((last, _)) = rows.last() {
                let named = s.get(t, format!("~last-{w:02}").as_bytes()).await.unwrap();
                assert_eq!(named.as_deref(), Some(last.as_ref()));
            }
            total += rows.len() as u64;
        }
        drop(s);
        inst.term(Term::empty()).await.unwrap();
        total
    })
}

/// The number in "... N writer commits acknowledged".
fn acked(stdout: &str) -> u64 {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == "writer")
        .unwrap_or_else(|| panic!("{stdout}"));
    words[i - 1].parse().unwrap()
}

#[test]
fn serve_reports_status_and_a_sigterm_terms_keeping_every_acknowledged_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let served = Served::start(&dir, &["--create", "--writers", "2"]);
    assert!(served.url.ends_with("/v1/instances/shop"), "{}", served.url);
    let client = reqwest::Client::new();
    let mut commits = 0;
    for _ in 0..100 {
        let (status, v) = get_json(&client, &served.url);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["instance"], "shop");
        assert_eq!(v["state"], "running");
        commits = v["commits"].as_u64().unwrap();
        if commits > 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(commits > 100, "the writers commit while serving: {commits}");
    let out = served.stop();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("stopped (SIGTERM)"), "{stdout}");
    let acked = acked(&stdout);
    assert!(acked >= commits / 2, "{acked} vs {commits}");
    // A clean term: every commit the writers were answered for is on disk, in order.
    let on_disk = count_orders(&dir);
    assert!(
        on_disk >= acked,
        "{on_disk} rows on disk, {acked} acknowledged"
    );

    // The same directory serves again (soft recovery of its own files) and stops on SIGINT.
    let again = Served::start(&dir, &[]);
    let (status, v) = get_json(&client, &again.url);
    assert_eq!(status, 200, "{v}");
    again.signal(libc::SIGINT);
    let out = again.wait(Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("stopped (SIGINT)"));
}

/// A second Ctrl-C while the service stops cleanly (it answers -1000 to every request from
/// the first signal on, for at least a second) ends the process at once with 130, as a crash
/// would; the next start recovers the writers' commits as a gap-free prefix. It used to be
/// ignored: the operator could only wait, or reach for SIGKILL.
#[test]
fn a_second_sigint_during_the_clean_stop_exits_at_once_and_the_next_start_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let served = Served::start(&dir, &["--create", "--writers", "2"]);
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let (_, v) = get_json(&client, &served.url);
        if v["commits"].as_u64().unwrap_or(0) > 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    served.signal(libc::SIGINT);
    let mut closing = false;
    for _ in 0..250 {
        let (status, v) = get_json(&client, &served.url);
        if status == 503 && v["error"]["code"] == -1000 {
            closing = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        closing,
        "the service never answered TermInProgress after SIGINT"
    );
    served.signal(libc::SIGINT);
    let out = served.wait(Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT during the clean stop"), "{stderr}");
    assert!(
        !text(&out.stdout).contains("stopped ("),
        "no clean stop was reported"
    );

    let again = Served::start(&dir, &[]);
    let (status, v) = get_json(&client, &again.url);
    assert_eq!(status, 200, "{v}");
    let out = again.stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(count_orders(&dir) > 0);
}

#[test]
fn a_sigterm_during_a_remote_backup_ends_it_and_the_process_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    make_instance(&dir, 2000);
    let served = Served::start(&dir, &["--name", "main"]);
    let client = reqwest::Client::new();
    let begun = rt().block_on(async {
        let res = client
            .post(format!("{}/backups", served.url))
            .json(&serde_json::json!({"kind": "full"}))
            .send()
            .await
            .unwrap();
        res.status().as_u16()
    });
    assert_eq!(begun, 201);
    // Term without STOP_BACKUP would fail with BackupInProgress (-505) and keep running;
    // the service terms with it, so the backup ends (aborted by the server) and it exits.
    let out = served.stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The files are free again: another process opens them.
    let rows = read_rows(&dir.join("data.edb"), &tmp.path().join("scratch"));
    assert_eq!(rows.len(), 2000);
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    (ck.cert.pem(), ck.key_pair.serialize_pem())
}

#[test]
fn tls_serves_https_with_the_given_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    make_instance(&dir, 100);
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let served = Served::start(
        &dir,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(
        served.url.starts_with("https://127.0.0.1:"),
        "{}",
        served.url
    );
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let (status, v) = get_json(&trusting, &served.url);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["instance"], "inst");
    // A client that does not trust the certificate, and plain HTTP to the TLS port, fail.
    let strangers = rt().block_on(async {
        let untrusting = reqwest::Client::new().get(&served.url).send().await;
        let plain = served.url.replacen("https://", "http://", 1);
        let plain = reqwest::Client::new().get(plain).send().await;
        (untrusting.is_err(), plain.map(|r| r.status().as_u16()))
    });
    assert!(
        strangers.0,
        "an untrusted certificate must fail the handshake"
    );
    assert!(
        strangers.1.is_err(),
        "plain HTTP to the TLS port: {:?}",
        strangers.1
    );
    // Still serving after both.
    assert_eq!(get_json(&trusting, &served.url).0, 200);
    let out = served.stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn serve_refuses_what_it_cannot_do_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    make_instance(&dir, 10);
    let d = dir.to_str().unwrap();
    // Beyond loopback without tokens.
    let out = ese(&["serve", "--instance-dir", d, "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("without --token-file"),
        "{}",
        text(&out.stderr)
    );
    // A certificate file that holds none.
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let j = junk.to_str().unwrap();
    let out = ese(&[
        "serve",
        "--instance-dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        j,
        "--tls-key",
        j,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("junk.pem"),
        "{}",
        text(&out.stderr)
    );
    // A name that cannot be a path segment.
    let out = ese(&[
        "serve",
        "--instance-dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--name",
        "a/b",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("instance name"),
        "{}",
        text(&out.stderr)
    );
    // The files of a served instance belong to that process.
    let served = Served::start(&dir, &[]);
    let out = ese(&["serve", "--instance-dir", d, "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in use"),
        "{}",
        text(&out.stderr)
    );
    // ... and the first one still serves.
    assert_eq!(get_json(&reqwest::Client::new(), &served.url).0, 200);
    let out = served.stop();
    assert!(out.status.success());
}

#[test]
fn a_token_file_guards_the_service() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    make_instance(&dir, 10);
    let tokens = tmp.path().join("tokens");
    std::fs::write(
        &tokens,
        "# operator\ns3cret-token-0123456789 read,truncate,end\n",
    )
    .unwrap();
    let served = Served::start(&dir, &["--token-file", tokens.to_str().unwrap()]);
    let client = reqwest::Client::new();
    let (status, v) = get_json(&client, &served.url);
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], -1907, "{v}");
    let (status, v) = rt().block_on(async {
        let res = client
            .get(&served.url)
            .bearer_auth("s3cret-token-0123456789")
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 200, "{v}");
    let out = served.stop();
    assert!(out.status.success());
}

/// A token file on an address beyond loopback without TLS: the service warns as it starts,
/// and `ese backup --url http://...` with a token warns that it sends it unencrypted; over
/// loopback neither does. Both still work.
#[test]
fn a_token_over_plain_http_beyond_loopback_is_warned_about_on_both_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    make_instance(&dir, 10);
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, "s3cret-token-0123456789 read,truncate,end\n").unwrap();
    let env = [(
        "ESE_TOKEN".to_string(),
        "s3cret-token-0123456789".to_string(),
    )];
    let sets = tmp.path().join("sets");
    let backup = |url: &str| {
        ese_env(
            &["backup", "--url", url, "--to", sets.to_str().unwrap(), "-q"],
            &env,
        )
    };

    // 0.0.0.0 reaches this machine, but is not a loopback address: the client cannot know
    // the path stays on this machine.
    let served = Served::start_on(
        &dir,
        "0.0.0.0:0",
        &["--token-file", tokens.to_str().unwrap()],
    );
    assert!(served.url.starts_with("http://0.0.0.0:"), "{}", served.url);
    let out = backup(&served.url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: the token goes unencrypted over http://"),
        "{}",
        text(&out.stderr)
    );
    let stopped = served.stop();
    assert!(
        text(&stopped.stderr).contains("warning: serving on 0.0.0.0:")
            && text(&stopped.stderr).contains("tokens travel unencrypted"),
        "{}",
        text(&stopped.stderr)
    );

    let served = Served::start(&dir, &["--token-file", tokens.to_str().unwrap()]);
    let out = backup(&served.url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    let stopped = served.stop();
    assert!(
        !text(&stopped.stderr).contains("warning"),
        "{}",
        text(&stopped.stderr)
    );
}

/// The set a backup printed (`set TARGET/NAME`).
fn set_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("set "))
        .unwrap_or_else(|| panic!("no set line in {stdout:?}"))
        .to_string()
}

/// The service's status counter of commits.
fn commits(client: &reqwest::Client, url: &str) -> u64 {
    let (status, v) = get_json(client, url);
    assert_eq!(status, 200, "{v}");
    v["commits"].as_u64().unwrap()
}

fn wait_for_commits(client: &reqwest::Client, url: &str, n: u64) -> u64 {
    for _ in 0..400 {
        let c = commits(client, url);
        if c >= n {
            return c;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the writers never reached {n} commits");
}

/// `ese backup --url` of both kinds, run as processes against `ese serve` with writers, into
/// `sets`; then the service stops. Answers (the sets, commits before the incremental began,
/// writer commits acknowledged).
fn full_and_incremental(served: Served, sets: &Path, extra: &[&str]) -> (Vec<String>, u64, u64) {
    let client = reqwest::Client::new();
    let mut names = Vec::new();
    let mut before_incremental = 0;
    for kind in ["full", "incremental"] {
        before_incremental = wait_for_commits(&client, &served.url, before_incremental + 300);
        let mut args = vec![
            "backup",
            "--url",
            &served.url,
            "--to",
            sets.to_str().unwrap(),
        ];
        args.extend(["--kind", kind]);
        args.extend(extra);
        let out = ese(&args);
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        names.push(set_of(&text(&out.stdout)));
    }
    let out = served.stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
    (names, before_incremental, acked(&text(&out.stdout)))
}

/// Verifies each set and restores the chain: the restored orders are a gap-free prefix of each
/// writer's (checked by `count_orders_in`), at least what was acknowledged before the
/// incremental began, and no more than the source holds.
fn check_chain(tmp: &Path, source: &Path, sets: &Path, names: &[String], before: u64, acked: u64) {
    for set in names {
        let out = ese(&["verify", set]);
        assert!(out.status.success(), "verify {set}: {}", text(&out.stderr));
    }
    let restored = tmp.join("restored");
    let out = ese(&[
        "restore",
        sets.to_str().unwrap(),
        "--set",
        "latest",
        "--to",
        restored.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    let db = std::fs::read_dir(&restored)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "edb"))
        .expect("a restored database");
    let got = count_orders_in(&tmp.join("check"), &db);
    // `commits` counts the table's creation too: a handful of commits that are not orders.
    assert!(
        got + 5 >= before,
        "restored {got} orders, {before} commits before the incremental"
    );
    let on_disk = count_orders(source);
    assert!(got <= on_disk, "restored {got}, the source holds {on_disk}");
    assert!(on_disk >= acked, "{on_disk} on disk, {acked} acknowledged");
}

#[test]
fn serve_and_backup_url_as_two_processes_restore_a_gap_free_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let sets = tmp.path().join("sets");
    let served = Served::start(&dir, &["--create", "--writers", "2"]);
    let (names, before, acked) = full_and_incremental(served, &sets, &["-q"]);
    check_chain(tmp.path(), &dir, &sets, &names, before, acked);
}

#[test]
fn a_service_at_full_backup_pace_serves_a_chain_that_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let sets = tmp.path().join("sets");
    let args = ["--create", "--writers", "2", "--backup-pace", "full"];
    let served = Served::start(&dir, &args);
    let (names, before, acked) = full_and_incremental(served, &sets, &["-q"]);
    check_chain(tmp.path(), &dir, &sets, &names, before, acked);
}

#[test]
fn a_backup_pace_it_does_not_know_or_a_floor_too_low_or_out_of_place_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    make_instance(&dir, 10);
    let d = dir.to_str().unwrap();
    for bad in [
        &["--backup-pace", "fast"][..],
        &["--backup-pace", "yield", "--backup-floor-mib", "0"][..],
        // A held 1 MiB read may wait 1 s: ten of them outlast a 5 s lease.
        &["--backup-floor-mib", "1", "--lease-secs", "5"][..],
        // A floor means nothing at full pace: refused rather than ignored.
        &["--backup-pace", "full", "--backup-floor-mib", "8"][..],
    ] {
        let mut args = vec!["serve", "--instance-dir", d, "--listen", "127.0.0.1:0"];
        args.extend(bad);
        let out = ese(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--backup-"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn backup_url_over_https_trusts_the_given_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let sets = tmp.path().join("sets");
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let (c, k) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    let served = Served::start(
        &dir,
        &[
            "--create",
            "--writers",
            "2",
            "--tls-cert",
            c,
            "--tls-key",
            k,
        ],
    );
    // Without the certificate the client refuses the server.
    let out = ese(&[
        "backup",
        "--url",
        &served.url,
        "--to",
        sets.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&served.url),
        "{}",
        text(&out.stderr)
    );
    // The status endpoint is reached over TLS by the test's own client.
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut names = Vec::new();
    for kind in ["full", "incremental"] {
        assert_eq!(get_json(&trusting, &served.url).0, 200);
        let args = [
            "backup",
            "--url",
            &served.url,
            "--to",
            sets.to_str().unwrap(),
            "--kind",
            kind,
            "--ca-cert",
            c,
            "-q",
        ];
        let out = ese(&args);
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        names.push(set_of(&text(&out.stdout)));
    }
    let out = served.stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_chain(
        tmp.path(),
        &dir,
        &sets,
        &names,
        0,
        acked(&text(&out.stdout)),
    );
}

#[test]
fn a_sigterm_of_the_service_fails_a_streaming_client_with_the_contracts_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    // About 32 MiB: the stream outlasts the buffers between server and client by far.
    make_instance_sized(&dir, 16_000, 2000);
    let sets = tmp.path().join("sets");
    let served = Served::start(&dir, &[]);
    let rt = rt();
    let upstream: std::net::SocketAddr = served
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // 256 KiB every 10 ms: the image takes over a second. Once the service is told to stop,
    // the proxy carries at full speed, so what sits in the buffers drains well within the
    // second the service keeps answering.
    let proxy = rt.block_on(common::proxy::SlowProxy::start(upstream, 256 << 10));
    let url = proxy.url(&served.url);
    let to = sets.to_str().unwrap().to_string();
    let client = std::thread::spawn(move || ese(&["backup", "--url", &url, "--to", &to, "-q"]));
    while proxy.carried() < 2 << 20 {
        assert!(!client.is_finished(), "the client ended before it streamed");
        std::thread::sleep(Duration::from_millis(10));
    }
    served.signal(libc::SIGTERM);
    // The client is to see the cut and ask again while the service still answers.
    proxy.unthrottle();
    let out = served.wait(Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let client = client.join().unwrap();
    let err = text(&client.stderr);
    assert_eq!(client.status.code(), Some(1), "{err}");
    // A call during term gets TermInProgress; once the instance is gone, InvalidInstance.
    assert!(
        err.contains("-1000") || err.contains("-1115"),
        "the client names the contract's code: {err}"
    );
    // No set is left behind that could pass for a backup.
    let listed = ese(&["sets", sets.to_str().unwrap(), "--json"]);
    let listed = text(&listed.stdout);
    assert!(!listed.contains("\"complete\""), "{listed}");
    drop(rt);
}

/// A token file that holds no token (empty, or comments only: a template never filled in)
/// is refused as the service starts, naming the file, as the client refuses one. It used to
/// start serving, beyond loopback too, with every request refused 401: a service no backup
/// could use, found out only when the first backup failed.
#[test]
fn a_token_file_without_a_token_is_refused_at_start() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    make_instance(&dir, 10);
    for (i, body) in ["", "# tokens for the backup client\n\n"]
        .into_iter()
        .enumerate()
    {
        let tokens = tmp.path().join(format!("tokens-{i}"));
        std::fs::write(&tokens, body).unwrap();
        for listen in ["127.0.0.1:0", "0.0.0.0:0"] {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ese"))
                .args(["serve", "--instance-dir", dir.to_str().unwrap(), "-q"])
                .args(["--listen", listen, "--token-file", tokens.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut first = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut first)
                .unwrap();
            if !first.is_empty() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{listen}, token file {body:?}: served: {first}");
            }
            let out = child.wait_with_output().unwrap();
            let e = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{e}");
            assert!(
                e.contains(tokens.to_str().unwrap()) && e.contains("no token"),
                "{e}"
            );
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM of `ese backup --url` while it streams: the client aborts its
/// backup on the server and removes its partial set before it exits (130 or 143, as a shell
/// reports a process a signal ended). It used to die at once: the server kept the backup
/// until its lease ran out (60 s by default), so the operator's retry was refused
/// `JET_errBackupInProgress (-505)`, and the partial set stayed in the target as an orphan.
#[test]
fn an_interrupted_backup_url_aborts_its_backup_and_removes_its_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    // About 32 MiB at 1 MiB/s: the client is mid-stream when it is told to stop.
    make_instance_sized(&dir, 16_000, 2000);
    let served = Served::start(&dir, &[]);
    let http = reqwest::Client::new();
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let sets = tmp.path().join(format!("sets-{sig}"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ese"))
            .args([
                "backup",
                "--url",
                &served.url,
                "--to",
                sets.to_str().unwrap(),
            ])
            .args(["--max-rate-mib", "1", "-q"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        loop {
            let (_, v) = get_json(&http, &served.url);
            if v["backup_bytes_streamed"].as_u64().unwrap_or(0) > 0
                && v["remote_backups"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        let e = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "signal {sig}: {:?} {e}",
            out.status
        );
        let (_, v) = get_json(&http, &served.url);
        assert_eq!(
            v["remote_backups"],
            serde_json::json!([]),
            "signal {sig}: {v}"
        );
        let left: Vec<_> = match std::fs::read_dir(&sets) {
            Ok(rd) => rd.map(|e| e.unwrap().file_name()).collect(),
            Err(_) => Vec::new(),
        };
        assert!(left.is_empty(), "signal {sig}: {left:?}");
    }
    let sets = tmp.path().join("sets-after");
    let out = ese(&[
        "backup",
        "--url",
        &served.url,
        "--to",
        sets.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(served.stop().status.success());
}
