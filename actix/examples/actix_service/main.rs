//! `actix_service --dir DIR [--listen ADDR] [--target NAME=URL]...`: the example actix-web
//! key-value service with online backups (routes in `service.rs`). Prints `listening on
//! ADDR` once it accepts connections; on SIGINT or SIGTERM actix-web stops its workers
//! gracefully, then a running backup is stopped and the instance is termed cleanly.
//!
//! ```text
//! cargo run -p ese-actix --example actix_service -- --dir /tmp/kv
//! curl -X PUT --data v1 localhost:8080/kv/k1
//! curl localhost:8080/kv/k1
//! curl -H 'content-type: application/json' -d '{"to": "/tmp/kv-sets"}' localhost:8080/backup
//! ```

mod service;

use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::{App, HttpServer};
use ese_actix::InstanceRuntime;
use ese_actors::{BackupTarget, Engine};
use service::Service;

/// The command line.
struct Args {
    dir: PathBuf,
    listen: SocketAddr,
    targets: Vec<(String, String)>,
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    // The instance's own runtime: it outlives every actix-web worker.
    let rt = InstanceRuntime::dedicated(2)?;
    let mut service = Service::open(&rt, &Engine::new(), &args.dir).await?;
    for (name, url) in &args.targets {
        service = service.with_target(name, BackupTarget::parse(url)?);
    }
    let app = service.clone();
    let server = HttpServer::new(move || App::new().configure(|cfg| app.configure(cfg)))
        .bind(args.listen)?;
    for addr in server.addrs() {
        println!("listening on {addr}");
    }
    server.run().await?;
    service.shutdown().await?;
    println!("terminated cleanly");
    Ok(())
}

fn args() -> Result<Args, String> {
    let mut dir = None;
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?;
    let mut targets = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--listen" => listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            "--target" => {
                let (name, url) = value.split_once('=').ok_or("--target NAME=URL")?;
                targets.push((name.to_string(), url.to_string()));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let dir = dir.ok_or("--dir is required")?;
    Ok(Args {
        dir,
        listen,
        targets,
    })
}
