//! `weft watch`: follow a server's change feed and print one event per line as JSON.

use crate::limits::WATCH_LINE_BYTES_MAX;
use crate::limits::WATCH_RECONNECT_WAIT_MAX;
use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::time::Duration;

/// The first wait before reconnecting; doubles up to [`WATCH_RECONNECT_WAIT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Time to connect and get the answer's head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `weft watch` was asked.
pub(super) struct WatchRequest {
    /// `http://HOST:PORT/v1/changes/DB`.
    pub(super) url: String,
    /// Start after this db_version.
    pub(super) since: u64,
    /// The bearer token.
    pub(super) token: Option<String>,
    /// Exit after this many events.
    pub(super) count: Option<u64>,
}

/// How a connection ended.
enum Ended {
    /// The stream broke or closed: reconnect.
    Cut(String),
    /// Printed the events asked for.
    Done,
}

/// Runs `weft watch` until interrupted (or `count` events).
pub(super) fn run(request: WatchRequest) -> anyhow::Result<()> {
    let rest = request
        .url
        .strip_prefix("http://")
        .context("the feed URL must be http://HOST:PORT/v1/changes/DATABASE")?;
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a.to_owned(), format!("/{p}")))
        .context("the feed URL must be http://HOST:PORT/v1/changes/DATABASE")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut last = request.since;
        let mut printed = 0u64;
        let mut wait = RECONNECT_MIN;
        loop {
            let feed = Feed {
                authority: &authority,
                path: &path,
            };
            match follow(feed, &request, &mut last, &mut printed).await? {
                Ended::Done => return Ok(()),
                Ended::Cut(reason) => {
                    eprintln!("weft watch: {reason}; reconnecting after db_version {last}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(WATCH_RECONNECT_WAIT_MAX);
                }
            }
        }
    })
}

/// Where a feed is: the server's `HOST:PORT` and the path asked for.
#[derive(Clone, Copy, Debug)]
struct Feed<'a> {
    authority: &'a str,
    path: &'a str,
}

/// One connection: prints events until it ends. Errors (a refusal) end the command.
async fn follow(
    feed: Feed<'_>,
    request: &WatchRequest,
    last: &mut u64,
    printed: &mut u64,
) -> anyhow::Result<Ended> {
    let Feed { authority, path } = feed;
    let connect = async {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        Ok::<_, anyhow::Error>((sender, connection))
    };
    let (mut sender, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => {
            return Ok(Ended::Cut(format!(
                "cannot connect to {authority}: {error}"
            )))
        }
        Err(_) => return Ok(Ended::Cut(format!("{authority} did not answer"))),
    };
    let connection = tokio::spawn(connection);
    let mut builder = Request::get(path)
        .header(HOST, authority)
        .header(ACCEPT, "text/event-stream")
        .header("last-event-id", last.to_string());
    if let Some(token) = &request.token {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let answer = tokio::time::timeout(
        CONNECT_TIMEOUT,
        sender.send_request(builder.body(Empty::<Bytes>::new())?),
    )
    .await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Ok(Ended::Cut(format!("request failed: {error}"))),
        Err(_) => return Ok(Ended::Cut("no answer".into())),
    };
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let reason = String::from_utf8_lossy(&bytes).trim().to_owned();
        if status.is_server_error() {
            return Ok(Ended::Cut(format!("{status}: {reason}")));
        }
        anyhow::bail!("{} refused ({status}): {reason}", request.url);
    }
    let mut buffer: Vec<u8> = Vec::new();
    let mut event = SseEvent::default();
    let mut out = std::io::stdout();
    let ended = loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => break Ended::Cut(format!("stream broke: {error}")),
            None => break Ended::Cut("the server closed the stream".into()),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        let mut done = false;
        while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(dispatched) = event.line(line) {
                writeln!(out, "{}", dispatched.data).context("writing to stdout")?;
                out.flush().context("writing to stdout")?;
                if let Some(id) = dispatched.id {
                    *last = id;
                }
                *printed += 1;
                if request.count.is_some_and(|count| *printed >= count) {
                    done = true;
                    break;
                }
            }
        }
        if done {
            break Ended::Done;
        }
        if buffer.len() > WATCH_LINE_BYTES_MAX {
            break Ended::Cut("a line longer than the limit".into());
        }
    };
    connection.abort();
    Ok(ended)
}

/// An event being assembled from SSE lines.
#[derive(Default)]
struct SseEvent {
    data: Option<String>,
    id: Option<u64>,
}

/// A complete event.
struct Dispatched {
    data: String,
    id: Option<u64>,
}

impl SseEvent {
    /// Takes one line; a blank line dispatches the event, if it has data.
    fn line(&mut self, line: &str) -> Option<Dispatched> {
        if line.is_empty() {
            let taken = std::mem::take(self);
            return taken.data.map(|data| Dispatched { data, id: taken.id });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" => self.id = value.parse().ok(),
            _ => {}
        }
        None
    }
}
