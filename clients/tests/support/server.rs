//! A minimal sync server made of the same parts as `weft serve` (a tokio-tungstenite
//! listener, `Session::responder` and the driver) on 127.0.0.1: real sockets, a real SQLite
//! file.

use futures_util::{future, SinkExt, StreamExt};
use std::path::PathBuf;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use weft_core::sync::{ReadOnly, Role, Session, SessionConfig, SessionEvent};
use weft_core::Replica;
use weft_net::driver::{drive, Wakeups};

/// Serves one database file to any number of connections until the test ends; the URL of
/// its database `test`.
pub async fn serve(db: PathBuf, read_only: bool) -> String {
    serve_with_token(db, read_only, None).await
}

/// [`serve`], refusing (HTTP 401) every connection whose bearer token is not `token`, as a
/// Weft server refuses an expired one.
pub async fn serve_with_token(db: PathBuf, read_only: bool, token: Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (commits, _) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let db = db.clone();
            let commits = commits.clone();
            let token = token.clone();
            tokio::spawn(async move {
                // tungstenite's handshake callback fixes this closure's Result types.
                #[allow(clippy::result_large_err)]
                let check = |request: &Request, response: Response| {
                    let expected = token.as_ref().map(|t| format!("Bearer {t}"));
                    let given = request
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok());
                    match expected {
                        Some(expected) if given != Some(expected.as_str()) => {
                            let mut refusal = ErrorResponse::new(Some("token expired".into()));
                            *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                            Err(refusal)
                        }
                        _ => Ok(response),
                    }
                };
                let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
                    return;
                };
                let socket = socket
                    .filter_map(|m| {
                        future::ready(match m {
                            Ok(Message::Binary(b)) => Some(Ok(b.to_vec())),
                            Ok(_) => None,
                            Err(e) => Some(Err(e)),
                        })
                    })
                    .with(|f: Vec<u8>| future::ready(Ok::<_, WsError>(Message::Binary(f.into()))));
                let replica = Replica::open(&db).unwrap();
                let mut config = SessionConfig::new(Role::Server, "test");
                if read_only {
                    config = config.with_authorizer(std::sync::Arc::new(ReadOnly));
                }
                let session = Session::responder(&replica, config).unwrap();
                let wakeups = Wakeups {
                    commits: Some(commits.subscribe()),
                    poll_every: None,
                };
                drive(socket, replica, session, wakeups, |event, _| {
                    if let SessionEvent::Applied {
                        db_version: Some(v),
                        ..
                    } = event
                    {
                        commits.send_replace(*v);
                    }
                    std::ops::ControlFlow::Continue(())
                })
                .await;
            });
        }
    });
    format!("ws://{address}/v1/sync/test")
}
