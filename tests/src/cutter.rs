//! A TCP relay on loopback that forwards connections to a server and cuts each one after the
//! server has sent a given number of bytes: a server that goes away in the middle of an
//! answer, at a point the test chooses.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running relay; stops accepting when dropped.
pub struct Cutter {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Cutter {
    /// Relays 127.0.0.1:<new port> to `to`, cutting each connection once `limit` bytes came
    /// back from `to`.
    pub fn start(to: SocketAddr, limit: usize) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        std::thread::spawn(move || relay(client, to, limit));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Cutter { addr, stop }
    }
}

fn relay(client: TcpStream, to: SocketAddr, limit: usize) {
    let Ok(server) = TcpStream::connect(to) else {
        return;
    };
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Client to server, as it comes.
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Both);
    });
    // Server to client, until the limit.
    let (mut s_read, mut c_write) = (server, client);
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    while let Ok(n) = s_read.read(&mut buf) {
        if n == 0 {
            break;
        }
        let n = n.min(limit.saturating_sub(sent));
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
        if sent >= limit {
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
