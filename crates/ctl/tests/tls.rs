//! TLS, differentially: real etcd 3.5.1 serving its client port over TLS
//! (a certificate of a test CA made with the `openssl` CLI, with and
//! without `--client-cert-auth`, and `--auto-tls`), and the same command
//! lines through etcdctl 3.5.1 and rustcdctl, comparing stdout, the
//! `Error:` lines and the exit code. Both clients run each step back to
//! back on the same server, so reads see the same state.
//!
//! In the steps, `$EP` is the server's `https://` URL, `$HP` its bare
//! `host:port` and `$C` the folder of the certificates.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

// ------------------------------------------------------------ certificates

/// A CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate, all ECDSA P-256, and an unrelated CA.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key",
    );
    openssl(dir, "req -x509 -new -key ca.key -subj /CN=test-ca -days 2 -out ca.crt -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
    leaf(
        dir,
        "server",
        "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    leaf(dir, "client", "extendedKeyUsage=clientAuth\n");
    openssl(
        dir,
        "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key",
    );
    openssl(dir, "req -x509 -new -key other.key -subj /CN=other-ca -days 2 -out other.crt -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
    std::fs::write(dir.join("junk.pem"), "not a PEM file\n").unwrap();
}

/// `name.key` and `name.crt`, signed by the CA, with extensions `ext`.
fn leaf(dir: &Path, name: &str, ext: &str) {
    let ext_file = format!("{name}.ext");
    let ext = format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}");
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        dir,
        &format!("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {name}.key"),
    );
    openssl(
        dir,
        &format!("req -new -key {name}.key -subj /CN={name} -out {name}.csr"),
    );
    openssl(dir, &format!("x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out {name}.crt -extfile {ext_file}"));
}

fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split(' '))
        .current_dir(dir)
        .output()
        .expect("the openssl CLI must be installed");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ----------------------------------------------------------------- servers

/// A single-member etcd 3.5.1 whose client URL is `https://`; killed on
/// drop. (The harness's `Member` probes over plain HTTP.)
struct TlsEtcd {
    child: Child,
    port: u16,
}

impl TlsEtcd {
    /// Starts etcd with the TLS flags `tls` (files relative to `dir`),
    /// ready once etcdctl with `probe` (its TLS flags, `$C` standing for
    /// `dir`) lists the member.
    fn start(dir: &Path, tls: &[&str], probe: &[&str]) -> TlsEtcd {
        let (port, peer) = (free_port(), free_port());
        let curl = format!("https://127.0.0.1:{port}");
        let purl = format!("http://127.0.0.1:{peer}");
        let data = dir.join(format!("etcd-{port}"));
        let log = std::fs::File::create(dir.join(format!("etcd-{port}.log"))).unwrap();
        let child = member_command(&etcd_bin(), "m0", &data, &curl, &purl)
            .args(tls)
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let server = TlsEtcd { child, port };
        let probe: Vec<String> = probe.iter().map(|a| subst(a, &server.vars(dir))).collect();
        server.wait_ready(&probe);
        server
    }

    fn wait_ready(&self, probe: &[String]) {
        let ep = format!("--endpoints=https://127.0.0.1:{}", self.port);
        let mut args = vec![ep.as_str(), "--command-timeout=500ms"];
        args.extend(probe.iter().map(String::as_str));
        args.extend(["-w", "json", "member", "list"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = run(&etcdctl_bin(), &args, None, &[]);
            if r.code == 0 && String::from_utf8_lossy(&r.stdout).contains("clientURLs") {
                return;
            }
            assert!(Instant::now() < deadline, "etcd not ready: {r:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The step placeholders for this server and the certificates in `dir`.
    fn vars(&self, dir: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("$EP", format!("https://127.0.0.1:{}", self.port)),
            ("$HP", format!("127.0.0.1:{}", self.port)),
            ("$C", dir.display().to_string()),
        ]
    }
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------- comparing

fn subst(s: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(s.to_string(), |s, (k, v)| s.replace(k, v))
}

/// Runs each step with etcdctl then rustcdctl and asserts that stdout
/// (normalised by the step's norms), the `Error:` lines (but with
/// `CodeOnly`) and the exit code are the same.
fn compare(vars: &[(&str, String)], steps: &[Step]) {
    let mut report = String::new();
    for s in steps {
        let args: Vec<String> = s.args.iter().map(|a| subst(a, vars)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(String, String)> = s
            .env
            .iter()
            .map(|(k, v)| (k.clone(), subst(v, vars)))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let want = run_for(
            &etcdctl_bin(),
            &args,
            s.stdin.as_deref(),
            &env,
            s.kill_after,
        );
        let got = run_for(
            &rustcdctl_bin(),
            &args,
            s.stdin.as_deref(),
            &env,
            s.kill_after,
        );
        let norm =
            |o: &Out| Ids::default().normalise(&String::from_utf8_lossy(&o.stdout), &s.norms);
        let (ws, gs) = (norm(&want), norm(&got));
        let code_only = s.norms.contains(&Norm::CodeOnly);
        if (!code_only && (ws != gs || want.errors != got.errors)) || want.code != got.code {
            report.push_str(&format!(
                "\n=== {args:?} env {env:?}\n--- etcdctl (exit {}):\n{ws}\n{}\n--- rustcdctl (exit {}):\n{gs}\n{}\n",
                want.code, want.stderr, got.code, got.stderr
            ));
        }
    }
    assert!(
        report.is_empty(),
        "rustcdctl differs from etcdctl 3.5.1:{report}"
    );
}

/// Both clients fail, with a short deadline (a handshake that cannot
/// succeed is retried until then).
fn fails(args: &str) -> Step {
    step(&format!("--command-timeout=1s {args}"))
}

// ------------------------------------------------------------------ tests

/// Server-side TLS: `https://` and bare endpoints with `--cacert`, the
/// certificate's IP and DNS names, the `ETCDCTL_*` variables, skipping
/// verification, and every way of getting the files or the CA wrong.
#[test]
fn server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let tls = ["--cert-file", "server.crt", "--key-file", "server.key"];
    let etcd = TlsEtcd::start(dir.path(), &tls, &["--cacert", "$C/ca.crt"]);
    let ca = "--cacert $C/ca.crt";
    let steps = vec![
        step(&format!("--endpoints=$EP {ca} put foo bar")),
        step(&format!("--endpoints=$EP {ca} get foo")),
        step(&format!("--endpoints=$EP {ca} -w json get foo")),
        // certificates given: a bare host:port is dialled over TLS
        step(&format!("--endpoints=$HP {ca} put foo baz")),
        step(&format!("--endpoints=$HP {ca} get foo -w fields")),
        // the certificate's DNS name
        step(&format!(
            "--endpoints=https://localhost:{} {ca} get foo",
            etcd.port
        )),
        step(&format!("--endpoints=$EP {ca} member list")),
        step(&format!("--endpoints=$EP {ca} -w json member list")),
        step(&format!("--endpoints=$EP {ca} -w json endpoint status")).norm(Norm::DbSize),
        step(&format!("--endpoints=$EP {ca} endpoint health")).norm(Norm::Took),
        step(&format!("--endpoints=$EP,$HP {ca} -w table endpoint status")).norm(Norm::DbSize),
        step("get foo")
            .env("ETCDCTL_ENDPOINTS", "$EP")
            .env("ETCDCTL_CACERT", "$C/ca.crt"),
        step("get foo")
            .env("ETCDCTL_ENDPOINTS", "$HP")
            .env("ETCDCTL_INSECURE_TRANSPORT", "false")
            .env("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true"),
        step("--endpoints=$HP --insecure-transport=false --insecure-skip-tls-verify get foo"),
        step("--endpoints=$EP --insecure-transport=false --insecure-skip-tls-verify get foo"),
        // https:// without certificates: the system's roots, which do not
        // know the test CA; skipping verification needs
        // --insecure-transport=false (etcdctl's rule)
        fails("--endpoints=$EP get foo"),
        fails("--endpoints=$EP --insecure-skip-tls-verify get foo"),
        fails("--endpoints=$HP --insecure-transport=false get foo"),
        // the wrong CA, a CA file without certificates
        fails("--endpoints=$EP --cacert $C/other.crt get foo"),
        fails("--endpoints=$EP --cacert $C/junk.pem get foo"),
        // no certificates and a bare endpoint: plain HTTP to a TLS port
        fails("--endpoints=$HP get foo").norm(Norm::CodeOnly),
        // bad files: etcdctl's errors, before any connection
        step("--endpoints=$EP --cert $C/client.crt get foo"),
        step("--endpoints=$EP --key $C/client.key get foo"),
        step("--endpoints=$EP --cacert $C/nonexistent.crt get foo"),
        step("--endpoints=$EP --cacert $C get foo"),
        step("--endpoints=$EP --cert $C/junk.pem --key $C/client.key get foo"),
        step("--endpoints=$EP --cert $C/client.crt --key $C/junk.pem get foo"),
        step("--endpoints=$EP --cert $C/client.key --key $C/client.crt get foo"),
        step("--endpoints=$EP --cert $C/client.crt --key $C/server.key get foo"),
        step("--endpoints=$EP --cert $C/client.crt --key $C/nonexistent.key get foo"),
        step("--endpoints=$EP --cacert $C/client.key get foo").norm(Norm::CodeOnly),
        step("get foo")
            .env("ETCDCTL_ENDPOINTS", "$EP")
            .env("ETCDCTL_CERT", "$C/client.crt"),
        // make-mirror's destination: the same rules and texts
        step("--endpoints=$EP make-mirror --dest-cert $C/client.crt $HP"),
        step("--endpoints=$EP make-mirror --dest-key $C/client.key $HP"),
        step("--endpoints=$EP make-mirror --dest-cacert $C/nonexistent.crt $HP"),
        step("--endpoints=$EP make-mirror --dest-cacert $C/ca.crt --dest-cert $C/junk.pem --dest-key $C/client.key $HP"),
    ];
    compare(&etcd.vars(dir.path()), &steps);
}

/// `--client-cert-auth`: the client certificate from the flags or the
/// `ETCDCTL_*` variables, and what happens without one.
#[test]
fn client_certificate_auth() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let tls = [
        "--cert-file",
        "server.crt",
        "--key-file",
        "server.key",
        "--client-cert-auth",
        "--trusted-ca-file",
        "ca.crt",
    ];
    let probe = [
        "--cacert",
        "$C/ca.crt",
        "--cert",
        "$C/client.crt",
        "--key",
        "$C/client.key",
    ];
    let etcd = TlsEtcd::start(dir.path(), &tls, &probe);
    let id = "--cacert $C/ca.crt --cert $C/client.crt --key $C/client.key";
    let steps = vec![
        step(&format!("--endpoints=$EP {id} put foo bar")),
        step(&format!("--endpoints=$EP {id} get foo -w json")),
        step(&format!("--endpoints=$HP {id} put foo baz")),
        step(&format!("--endpoints=$EP {id} member list")),
        step(&format!("--endpoints=$EP {id} -w json endpoint status")).norm(Norm::DbSize),
        step(&format!("--endpoints=$EP {id} endpoint health")).norm(Norm::Took),
        step(&format!("--endpoints=$EP {id} del nosuchkey")),
        step("get foo --prefix")
            .env("ETCDCTL_ENDPOINTS", "$HP")
            .env("ETCDCTL_CACERT", "$C/ca.crt")
            .env("ETCDCTL_CERT", "$C/client.crt")
            .env("ETCDCTL_KEY", "$C/client.key"),
        // the server's certificate is not checked, the client's still is
        step("--endpoints=$EP --insecure-transport=false --insecure-skip-tls-verify --cert $C/client.crt --key $C/client.key put k v"),
        // no client certificate, or one the server's CA did not sign
        fails("--endpoints=$EP --cacert $C/ca.crt get foo"),
        fails("--endpoints=$EP --insecure-transport=false --insecure-skip-tls-verify get foo"),
        fails("--endpoints=$EP --cacert $C/ca.crt --cert $C/other.crt --key $C/other.key get foo"),
    ];
    compare(&etcd.vars(dir.path()), &steps);
}

/// `--auto-tls`: a self-signed ECDSA P-521 certificate, usable only with
/// `--insecure-skip-tls-verify` (and `--insecure-transport=false`).
#[test]
fn auto_tls_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let skip = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    let etcd = TlsEtcd::start(dir.path(), &["--auto-tls"], &skip);
    let skip = skip.join(" ");
    let steps = vec![
        step(&format!("--endpoints=$EP {skip} put foo bar")),
        step(&format!("--endpoints=$HP {skip} get foo")),
        step(&format!("--endpoints=$EP {skip} member list -w json")),
        step(&format!("--endpoints=$EP {skip} endpoint health -w json")).norm(Norm::Took),
        step("--endpoints=$EP get foo")
            .env("ETCDCTL_INSECURE_TRANSPORT", "false")
            .env("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true"),
        fails("--endpoints=$EP --insecure-skip-tls-verify get foo"),
        fails("--endpoints=$EP --cacert $C/ca.crt get foo"),
    ];
    compare(&etcd.vars(dir.path()), &steps);
}

/// An `http://` first endpoint drops the TLS flags (clientv3's
/// `CredsDrop`), while a bare one with certificates dials TLS: against a
/// plain-HTTP etcd.
#[test]
fn http_endpoint_ignores_tls_flags() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let m = Member::start(Server::Etcd, dir.path(), free_port(), free_port(), &[]);
    let vars = vec![
        ("$HP", m.endpoint.clone()),
        ("$C", dir.path().display().to_string()),
    ];
    let id = "--cacert $C/ca.crt --cert $C/client.crt --key $C/client.key";
    let steps = vec![
        step(&format!("--endpoints=http://$HP {id} put foo bar")),
        step(&format!("--endpoints=http://$HP {id} --insecure-transport=false get foo")),
        step("--endpoints=http://$HP --insecure-transport=false --insecure-skip-tls-verify member list"),
        fails(&format!("--endpoints=$HP {id} get foo")),
        fails("--endpoints=$HP --insecure-transport=false --insecure-skip-tls-verify get foo"),
    ];
    compare(&vars, &steps);
}

/// make-mirror to a TLS destination given as a bare `host:port` with
/// `--dest-cacert`: what each client copied, read back over TLS.
#[test]
fn make_mirror_to_tls_destination() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let src = Member::start(Server::Etcd, dir.path(), free_port(), free_port(), &[]);
    let tls = ["--cert-file", "server.crt", "--key-file", "server.key"];
    let dest = TlsEtcd::start(dir.path(), &tls, &["--cacert", "$C/ca.crt"]);
    let src_ep = format!("--endpoints={}", src.endpoint);
    for (k, v) in [("m/a", "1"), ("m/b", "2")] {
        assert_eq!(
            run(&etcdctl_bin(), &[&src_ep, "put", k, v], None, &[]).code,
            0
        );
    }
    let dest_ep = format!("--endpoints=https://127.0.0.1:{}", dest.port);
    let hp = format!("127.0.0.1:{}", dest.port);
    let ca = dir.path().join("ca.crt").display().to_string();
    // one client's mirror into the emptied destination, read back
    let mirror = |client: &Path| {
        let del = [dest_ep.as_str(), "--cacert", &ca, "del", "", "--prefix"];
        run(&etcdctl_bin(), &del, None, &[]);
        let args = [
            &src_ep,
            "make-mirror",
            "--prefix",
            "m/",
            "--dest-cacert",
            &ca,
            &hp,
        ];
        let out = run_for(client, &args, None, &[], Some(Duration::from_millis(2500)));
        let get = [dest_ep.as_str(), "--cacert", &ca, "get", "", "--prefix"];
        let copy = run(&etcdctl_bin(), &get, None, &[]);
        (out, String::from_utf8_lossy(&copy.stdout).into_owned())
    };
    let (want, want_copy) = mirror(&etcdctl_bin());
    let (got, got_copy) = mirror(&rustcdctl_bin());
    assert_eq!(want_copy, "m/a\n1\nm/b\n2\n", "etcdctl's mirror: {want:?}");
    assert_eq!(got_copy, want_copy, "rustcdctl's mirror: {got:?}");
    assert_eq!(
        (got.stdout, got.errors),
        (want.stdout, want.errors),
        "make-mirror's output"
    );
}
