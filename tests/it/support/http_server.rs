//! The harness's app behind a real HTTP address, as a function URL puts the deployed one:
//! for commands that send to the stack's URL (`kadoa test`). HTTP/1.1, one request per
//! connection, `Content-Length` bodies: what reqwest sends.

use std::sync::Arc;

use kadoa_webhook::App;
use lambda_http::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `app` on a local port until the test ends; its URL.
pub async fn serve(app: Arc<App>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let app = app.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let mut request_line = lines.next().unwrap_or_default().split(' ');
                let method = request_line.next().unwrap_or("GET").to_owned();
                let mut builder =
                    lambda_http::http::Request::builder().method(method.as_str()).uri("https://local.lambda-url/");
                let mut length = 0usize;
                for line in lines.filter(|l| !l.is_empty()) {
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        builder = builder.header(name.trim(), value.trim());
                    }
                }
                while buffer.len() < head_end + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let body = buffer[head_end..].to_vec();
                let request = builder.body(Body::from(body)).unwrap();
                let answer = app.handle(request, None).await;
                let response = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    answer.status_code,
                    answer.body.len(),
                    answer.body
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}
