//! A TCP proxy in front of moto that a test can switch off: while it is down, open
//! connections are cut and new ones are refused, exactly what an outage looks like to the
//! SDK.

use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    up: Arc<watch::Sender<bool>>,
}

impl FaultProxy {
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (up, _) = watch::channel(true);
        let up = Arc::new(up);
        let proxy = Self { endpoint, up: up.clone() };
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut state = up.subscribe();
                if !*state.borrow() {
                    drop(client); // refused: closed before a byte is read
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {} // outage: cut the connection
                    }
                });
            }
        });
        proxy
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}
