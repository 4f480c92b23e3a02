//! Binds the listener and serves until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::app::router;
use crate::config::Settings;
use crate::state::{AppState, Internal};

pub struct Server {
    listener: TcpListener,
    state: AppState,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] Internal),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

impl Server {
    /// Opens everything and binds `settings.listen` (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, ServeError> {
        let addr = settings.listen;
        let state = AppState::build(settings).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self { listener, state })
    }

    /// Serves on a listener the caller bound (tests bind port 0 first to know the issuer).
    pub async fn with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Self, ServeError> {
        let state = AppState::build(settings).await?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.state.spawn_key_reload();
        if let Some(certs) = &self.state.certs {
            certs.spawn_crl_refresh();
        }
        if let (Some(addr), Some(certs)) =
            (self.state.settings.mtls.listen, self.state.certs.clone())
        {
            let config = certs
                .server_config(&self.state.settings)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let app = crate::login::certificate::mtls_router(self.state.clone());
            let limits = crate::tls::MtlsLimits::from_settings(&self.state.settings);
            tokio::spawn(async move {
                if let Err(e) = crate::tls::serve_mtls(addr, config, app, limits).await {
                    tracing::error!(error = %e, "certificate-login listener stopped");
                }
            });
        }
        tracing::info!(addr = %self.local_addr(), issuer = %self.state.issuer(), "Sésame is listening");
        let app = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
