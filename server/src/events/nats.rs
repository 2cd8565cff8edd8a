//! NATS: each event published as its JSON to a subject made from a template
//! (`weft.{database}` by default), with the header `Nats-Msg-Id: DATABASE:DB_VERSION` (so a
//! JetStream stream can drop the repeat after a restart). A batch counts as delivered once
//! the client has flushed it to the NATS server.

use super::short_hash;
use std::time::Duration;
use tokio::sync::Mutex;
use weft_core::events::Event;

/// The subject template when none is given.
pub const DEFAULT_SUBJECT: &str = "weft.{database}";

/// How long a connection attempt or a flush may take.
pub const NATS_TIMEOUT: Duration = Duration::from_secs(10);

/// NATS as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://HOST:PORT`.
    pub url: String,
    /// The subject template; `{database}` is replaced by the database name.
    pub subject: String,
}

impl NatsConfig {
    /// Checks the URL and the subject template.
    pub fn check(&self) -> Result<(), String> {
        if !self.url.starts_with("nats://") {
            return Err(format!("NATS URL {:?} must start with nats://", self.url));
        }
        let sample = self.subject.replace("{database}", "db");
        if sample.is_empty()
            || sample.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
            || sample.split('.').any(str::is_empty)
        {
            return Err(format!(
                "NATS subject {:?}: tokens separated by '.', no spaces or wildcards",
                self.subject
            ));
        }
        Ok(())
    }
}

/// The NATS publisher: one client, connected on first use and again after a failure.
pub(crate) struct NatsSink {
    config: NatsConfig,
    client: Mutex<Option<async_nats::Client>>,
}

impl NatsSink {
    pub(crate) fn new(config: NatsConfig) -> NatsSink {
        NatsSink {
            config,
            client: Mutex::new(None),
        }
    }

    pub(crate) fn id(&self) -> String {
        format!(
            "nats-{}",
            short_hash(&format!("{} {}", self.config.url, self.config.subject))
        )
    }

    pub(crate) fn url(&self) -> &str {
        &self.config.url
    }

    /// Publishes `events` and flushes them.
    pub(crate) async fn deliver(&self, database: &str, events: &[Event]) -> Result<(), String> {
        let mut guard = self.client.lock().await;
        let client = match guard.as_ref() {
            Some(client) => client.clone(),
            None => {
                let connected =
                    tokio::time::timeout(NATS_TIMEOUT, async_nats::connect(&self.config.url))
                        .await
                        .map_err(|_| format!("no connection within {NATS_TIMEOUT:?}"))?
                        .map_err(|e| format!("cannot connect: {e}"))?;
                *guard = Some(connected.clone());
                connected
            }
        };
        drop(guard);
        let subject = self.config.subject.replace("{database}", database);
        let published = async {
            for event in events {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    "Nats-Msg-Id",
                    format!("{database}:{}", event.db_version).as_str(),
                );
                client
                    .publish_with_headers(
                        subject.clone(),
                        headers,
                        event.to_json_line().into_bytes().into(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
            client.flush().await.map_err(|e| e.to_string())
        };
        let result = tokio::time::timeout(NATS_TIMEOUT, published)
            .await
            .map_err(|_| format!("not flushed within {NATS_TIMEOUT:?}"))
            .and_then(|r| r);
        if result.is_err() {
            // Start over with a new connection next time.
            *self.client.lock().await = None;
        }
        result
    }
}
