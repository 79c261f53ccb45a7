//! Start-up that tests reuse: bind the listener first (port 0 in tests), open
//! the store, apply migrations, start the worker pool, then serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::queue::{Queue, QueueHandle};
use crate::services::Services;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
}

/// A bound, migrated, running-workers application that has not started answering yet.
pub struct Application {
    listener: TcpListener,
    services: Services,
    queue: QueueHandle,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartupError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        })?;
        let listener = TcpListener::bind(&settings.listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.listen.clone(),
                source,
            })?;
        let store = Store::connect(&settings.data_dir).await?;
        store.migrate().await?;
        let blobs = BlobStore::new(&settings.data_dir)?;
        let settings = Arc::new(settings);
        let queue = Queue::start(store.clone(), blobs.clone(), &settings).await?;
        let services = Services {
            store,
            blobs,
            queue: queue.clone(),
            settings,
            compiled: Default::default(),
        };
        // Orphans a crash left behind go before the server answers.
        let grace = Duration::from_secs(services.settings.blobs.gc_grace_secs);
        services.sweep_orphan_blobs_logged(grace).await;
        Ok(Self {
            listener,
            services,
            queue,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until `shutdown` resolves, then stops the workers: a running job
    /// goes back to `queued` and runs again at the next start.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let blob_settings = &self.services.settings.blobs;
        let gc = self.services.spawn_blob_gc(
            Duration::from_secs(blob_settings.gc_interval_secs),
            Duration::from_secs(blob_settings.gc_grace_secs),
        );
        let app = crate::api::app(self.services);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(gc) = gc {
            gc.abort();
        }
        served?;
        self.queue.shutdown().await;
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        self.run_until(shutdown_signal()).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
