//! `faults-relay TARGET PARENT_PID`: accepts connections on the listening
//! socket it gets as stdin and forwards each to TARGET (`host:port`).
//!
//! The partition tests run every member in its own network namespace. The
//! test creates a listener on 127.0.0.1 in the host namespace and starts this
//! relay with `ip netns exec <member's namespace>`, handing it the listener
//! as stdin: the socket stays in the host namespace while the relay's
//! outgoing connections are made inside the member's namespace (to the
//! member's client port on that namespace's own loopback). So the test
//! reaches every member over host loopback, no address outside the
//! namespaces is ever used, and the partition rules (on the members' peer
//! addresses) never touch client traffic. Std only; exits when the test
//! process is gone.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args
        .next()
        .expect("usage: faults-relay HOST:PORT PARENT_PID");
    let parent = args
        .next()
        .expect("usage: faults-relay HOST:PORT PARENT_PID");
    std::thread::spawn(move || loop {
        if !std::path::Path::new(&format!("/proc/{parent}")).exists() {
            std::process::exit(0);
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    // SAFETY: the test hands the listening socket over as fd 0 and keeps no
    // other owner of it in this process.
    let listener = unsafe { TcpListener::from_raw_fd(0) };
    for conn in listener.incoming() {
        let Ok(client) = conn else {
            continue;
        };
        let target = target.clone();
        std::thread::spawn(move || {
            let Ok(server) = TcpStream::connect(&target) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || pump(client, server));
            pump(s2, c2);
            let _ = up.join();
        });
    }
}

/// Copies `from` to `to` until EOF or an error, then half-closes both ways.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
