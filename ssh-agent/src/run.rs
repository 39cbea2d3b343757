//! The accept loop: peer check, one task per connection, a periodic rescan of the key
//! directories, and a clean exit on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::agent::Agent;
use crate::config::Settings;
use crate::error::StartError;
use crate::socket;

const RESCAN_EVERY: Duration = Duration::from_secs(2);

pub async fn run(settings: Settings, cli: &crate::cli::Cli) -> Result<(), StartError> {
    let bound = match socket::activated()? {
        Some(listener) => listener,
        None => socket::bind(&settings.socket, settings.default_socket).await?,
    };
    let agent = Arc::new(Agent::new(&settings));
    agent.rescan();
    match &bound.owned_path {
        Some(path) => info!("listening on {}", path.display()),
        None => info!("listening on the socket systemd passed"),
    }
    if let Some(path) = &bound.owned_path {
        println!(
            "{}",
            crate::shell::environment(cli, path, std::process::id())
        );
    }
    // Say at start whether tpmd answers, so a misconfiguration shows before the first ssh.
    {
        let agent = agent.clone();
        tokio::spawn(async move {
            match agent.tpmd.probe().await {
                Ok(description) => info!("tpmd answers: {description}"),
                Err(e) => warn!("{e}; listing keys works, signing will not until tpmd runs"),
            }
        });
    }
    let scanner = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RESCAN_EVERY);
            loop {
                tick.tick().await;
                agent.rescan();
            }
        })
    };
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| StartError::Other(format!("cannot handle SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| StartError::Other(format!("cannot handle SIGINT: {e}")))?;
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, _)) => match socket::check_peer(&stream) {
                    Ok(peer) => {
                        tokio::spawn(crate::connection::serve(agent.clone(), stream, peer));
                    }
                    Err(why) => warn!("{why}"),
                },
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin or die.
                    error!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    scanner.abort();
    if let Some(path) = &bound.owned_path {
        socket::remove_socket(path);
    }
    info!("stopped");
    Ok(())
}
