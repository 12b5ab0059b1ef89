//! `kv-service --dir DIR [--listen ADDR]`: the example key-value service. Prints
//! `listening on ADDR` once it accepts connections; on SIGINT or SIGTERM it stops accepting,
//! finishes the requests in flight, stops a running backup and terms the instance cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;

use ese_actors::Engine;
use ese_kv_service::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, listen) = args()?;
    let engine = Engine::new();
    let service = Service::open(&engine, &dir).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, service.router())
        .with_graceful_shutdown(signal())
        .await?;
    service.shutdown().await?;
    println!("terminated cleanly");
    Ok(())
}

fn args() -> Result<(PathBuf, SocketAddr), String> {
    let mut dir = None;
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--listen" => listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((dir.ok_or("--dir is required")?, listen))
}

/// SIGINT or SIGTERM.
async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
