//! An HTTP proxy in front of moto that counts what DynamoDB read for a `kadoa` process:
//! each Query's and Scan's `ScannedCount` (the items DynamoDB looked at, before any
//! filter), each item GetItem and BatchGetItem returned; and the sort keys it returned.
//! One request per connection (it answers `Connection: close`).

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What was read since the last [`ReadCounter::take`].
#[derive(Debug, Default, Clone)]
pub struct Reads {
    /// Items DynamoDB read.
    pub items: u64,
    /// DynamoDB calls.
    pub calls: usize,
    /// The `sk` of every item returned.
    pub keys: Vec<String>,
    /// Operations called, in order.
    pub operations: Vec<String>,
}

#[derive(Clone)]
pub struct ReadCounter {
    pub endpoint: String,
    reads: Arc<Mutex<Reads>>,
}

impl ReadCounter {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let reads = Arc::new(Mutex::new(Reads::default()));
        let counter = Self { endpoint, reads: reads.clone() };
        let target = target.trim_end_matches('/').to_owned();
        let client = reqwest::Client::new();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (reads, target, client) = (reads.clone(), target.clone(), client.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &client, &target, &reads).await;
                });
            }
        });
        counter
    }

    /// What was read since the last call.
    pub fn take(&self) -> Reads {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }
}

async fn serve(mut stream: TcpStream, client: &reqwest::Client, target: &str, reads: &Mutex<Reads>) -> Option<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let mut headers = Vec::new();
    let mut length = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        if name == "content-length" {
            length = value.parse().ok()?;
        }
        if !["host", "content-length", "connection"].contains(&name.as_str()) {
            headers.push((name, value));
        }
    }
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    let operation = headers.iter().find(|(n, _)| n == "x-amz-target").map(|(_, v)| v.clone()).unwrap_or_default();
    let mut request = client.request(method.parse().ok()?, format!("{target}{path}")).body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = request.send().await.ok()?;
    let status = response.status();
    let response_headers = response.headers().clone();
    let bytes = response.bytes().await.ok()?;
    if let Some(operation) = operation.strip_prefix("DynamoDB_20120810.") {
        count(operation, &bytes, &mut reads.lock().unwrap());
    }
    let mut answer = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("OK"));
    for (name, value) in &response_headers {
        if !["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            answer.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or_default()));
        }
    }
    answer.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", bytes.len()));
    stream.write_all(answer.as_bytes()).await.ok()?;
    stream.write_all(&bytes).await.ok()?;
    stream.shutdown().await.ok()
}

fn count(operation: &str, body: &[u8], reads: &mut Reads) {
    let answer: Value = serde_json::from_slice(body).unwrap_or_default();
    let items: Vec<&Value> = match operation {
        "Query" | "Scan" => answer["Items"].as_array().into_iter().flatten().collect(),
        "GetItem" => answer.get("Item").into_iter().collect(),
        "BatchGetItem" => answer["Responses"]
            .as_object()
            .into_iter()
            .flat_map(|t| t.values())
            .flat_map(|v| v.as_array().into_iter().flatten())
            .collect(),
        _ => Vec::new(),
    };
    reads.items += match operation {
        "Query" | "Scan" => answer["ScannedCount"].as_u64().or(answer["Count"].as_u64()).unwrap_or_default(),
        _ => items.len() as u64,
    };
    reads.keys.extend(items.iter().filter_map(|item| item["sk"]["S"].as_str().map(str::to_owned)));
    reads.calls += 1;
    reads.operations.push(operation.to_owned());
}
