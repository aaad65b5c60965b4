//! The compliance endpoint's regional redirect in Microsoft's own shape, end to end: the
//! simulated tenant behind TLS on loopback with a certificate for Microsoft's names, the
//! client configured with `https://ps.compliance.protection.outlook.com` and those names
//! resolved to the TLS terminator. The global host answers with a `Location` on
//! `<region>.admin.protection.outlook.com`; the command must run on
//! `<region>.ps.compliance.protection.outlook.com`, and a `Location` off Microsoft's command
//! hosts must be refused before anything is sent there.

use entra_sim::{RunningSim, Seed};
use remote_assist_operator::compliance::{COMPLIANCE_RESOURCE, ComplianceClient, ComplianceError};
use remote_assist_operator::graph::{AppIdentity, Credential, RetryPolicy, Secret, TokenProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn tenant() -> &'static str {
    &entra_sim::seed::default_ids().tenant_id
}
const GLOBAL: &str = "ps.compliance.protection.outlook.com";

/// A test CA and a leaf it signed for Microsoft's command hosts, as PEM.
struct Pki {
    ca: String,
    key: String,
    cert: String,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Made once with the openssl command. `*.compliance.protection.outlook.com` covers the global
/// host; the regional hosts are one label further down, so `*.ps.compliance...` covers them.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ra-compliance-redirect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |f: &str, text: &str| std::fs::write(dir.join(f), text).unwrap();
        write(
            "ca.cnf",
            "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n\
             [dn]\nCN = remote-assist test CA\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n",
        );
        write(
            "leaf.cnf",
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
             subjectAltName = DNS:*.compliance.protection.outlook.com,\
             DNS:ps.compliance.protection.outlook.com,DNS:*.ps.compliance.protection.outlook.com\n",
        );
        openssl(
            &dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "1", "-config", "ca.cnf",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=ps.compliance.protection.outlook.com",
                "-config",
                "ca.cnf",
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                "leaf.pem",
                "-extfile",
                "leaf.cnf",
            ],
        );
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let pki = Pki {
            ca: read("ca.pem"),
            key: read("leaf.key"),
            cert: read("leaf.pem"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        pki
    })
}

/// Terminates TLS on loopback with the test leaf and forwards the bytes to `upstream`'s
/// plain-HTTP port; remembers the server name each connection asked for.
struct Terminator {
    addr: SocketAddr,
    names: Arc<Mutex<Vec<String>>>,
}

impl Terminator {
    async fn start(upstream: SocketAddr) -> Terminator {
        let pki = pki();
        let certs = vec![CertificateDer::from_pem_slice(pki.cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(pki.key.as_bytes()).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let names = Arc::new(Mutex::new(Vec::new()));
        let seen = names.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let name = tls.get_ref().1.server_name().unwrap_or_default().to_owned();
                    seen.lock().unwrap().push(name);
                    let Ok(mut plain) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Terminator { addr, names }
    }

    fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }
}

/// A loopback port that only counts the connections made to it.
async fn sink() -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(0));
    let count = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            *count.lock().unwrap() += 1;
            drop(tcp);
        }
    });
    (addr, hits)
}

/// A plain-HTTP server that answers every request with a 302 to `location`; counts requests.
async fn redirector(location: String) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(0));
    let count = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (location, count) = (location.clone(), count.clone());
            tokio::spawn(async move {
                // The head, then as much body as it announces, before answering.
                let mut read = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&buf[..n]),
                    }
                    if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&read[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while read.len() < head_end + length {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&buf[..n]),
                    }
                }
                *count.lock().unwrap() += 1;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (addr, hits)
}

async fn sim() -> RunningSim {
    entra_sim::start(Seed::default_seed(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The operator's client for `https://ps.compliance.protection.outlook.com`, trusting the
/// test CA and with `hosts` resolved as given; tokens come from the simulator over HTTP.
fn client(sim: &RunningSim, hosts: &[(&str, SocketAddr)]) -> ComplianceClient {
    let identity = AppIdentity {
        authority: sim.url(),
        tenant_id: tenant().into(),
        client_id: entra_sim::seed::default_ids().operator_client_id.as_str().into(),
        credential: Credential::ClientSecret {
            secret: Secret::new(entra_sim::seed::default_ids().operator_secret.as_str()),
        },
    };
    let tokens = Arc::new(TokenProvider::new(
        reqwest::Client::new(),
        identity,
        COMPLIANCE_RESOURCE,
    ));
    let ca = reqwest::Certificate::from_pem(pki().ca.as_bytes()).unwrap();
    let policy = RetryPolicy {
        max_attempts: 2,
        timeout: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    ComplianceClient::with_http_settings(
        COMPLIANCE_RESOURCE,
        tenant(),
        Some("abcsim.onmicrosoft.com"),
        tokens,
        policy,
        |b| {
            let b = b.no_proxy().add_root_certificate(ca);
            hosts.iter().fold(b, |b, (host, addr)| b.resolve(host, *addr))
        },
    )
    .unwrap()
}

async fn admin(sim: &RunningSim, what: &str) -> Value {
    reqwest::get(format!("{}/_sim/{what}", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn commands_run_on_the_regional_host_the_global_host_redirects_to() {
    let sim = sim().await;
    let region = sim.sim.seed.region().to_owned();
    let regional = format!("{region}.{GLOBAL}");
    let tls = Terminator::start(sim.addr).await;
    let c = client(&sim, &[(GLOBAL, tls.addr), (&regional, tls.addr)]);

    let s = c
        .new_segment("Support", "Department -eq 'Support'")
        .await
        .expect("New-OrganizationSegment through Microsoft's hosts");
    let names: Vec<String> = c.segments().await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["Support"], "read back from the regional host");
    c.remove_segment(&s.identity).await.unwrap();
    assert!(c.segments().await.unwrap().is_empty(), "removed");

    let by_route = &admin(&sim, "counters").await["byRoute"];
    let compliance: serde_json::Map<String, Value> = by_route
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("InvokeCommand"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let on_regional = |cmdlet: &str| format!("InvokeCommand {cmdlet} on {regional}");
    assert_eq!(
        Value::Object(compliance),
        json!({
            format!("POST /adminapi/beta/{{tenant}}/InvokeCommand on {GLOBAL}"): {"302": 1},
            on_regional("New-OrganizationSegment"): {"200": 1},
            on_regional("Get-OrganizationSegment"): {"200": 2},
            on_regional("Remove-OrganizationSegment"): {"200": 1},
        }),
        "one redirect from the global host, then every command once on the regional host"
    );
    let journal = admin(&sim, "journal").await;
    let ran: Vec<(&str, u64)> = journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "compliance")
        .map(|e| (e["cmdlet"].as_str().unwrap(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ran,
        [
            ("New-OrganizationSegment", 200),
            ("Remove-OrganizationSegment", 200)
        ],
        "each change ran once"
    );
    let names = tls.names();
    assert_eq!(names.first().map(String::as_str), Some(GLOBAL), "{names:?}");
    assert!(
        names.iter().all(|n| *n == GLOBAL || *n == regional) && names.contains(&regional),
        "TLS only to the global and the regional host: {names:?}"
    );
}

#[tokio::test]
async fn a_location_off_the_command_hosts_is_refused_before_anything_is_sent_there() {
    let sim = sim().await;
    let (elsewhere, hits) = sink().await;
    for location in [
        format!("https://evil.example/adminapi/beta/{}/InvokeCommand", tenant()),
        format!(
            "https://eur03b.admin.protection.outlook.com.evil.example/adminapi/beta/{}/InvokeCommand",
            tenant()
        ),
    ] {
        let (global, redirects) = redirector(location.clone()).await;
        let tls = Terminator::start(global).await;
        let c = client(
            &sim,
            &[
                (GLOBAL, tls.addr),
                ("evil.example", elsewhere),
                ("eur03b.admin.protection.outlook.com.evil.example", elsewhere),
            ],
        );
        let e = tokio::time::timeout(Duration::from_secs(20), c.segments())
            .await
            .expect("answered in time")
            .unwrap_err();
        assert!(
            matches!(&e, ComplianceError::Redirect { location: l, .. } if *l == location),
            "{location}: {e:?}"
        );
        let message = e.to_string();
        assert!(
            message.contains(&location) && message.contains(&format!("only https hosts under {GLOBAL}")),
            "{message}"
        );
        assert_eq!(
            *redirects.lock().unwrap(),
            1,
            "{location}: asked once, not retried"
        );
        assert_eq!(tls.names(), [GLOBAL], "{location}");
    }
    assert_eq!(*hits.lock().unwrap(), 0, "no connection to another host");
}

/// The simulator itself, through the terminator: Microsoft's shape by host name, today's
/// path-based shape on loopback.
#[tokio::test]
async fn the_simulated_endpoint_takes_its_shape_from_the_host_name() {
    let sim = sim().await;
    let tls = Terminator::start(sim.addr).await;
    let mut http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(pki().ca.as_bytes()).unwrap());
    for host in [
        GLOBAL,
        "eur03b.ps.compliance.protection.outlook.com",
        "nam11b.ps.compliance.protection.outlook.com",
    ] {
        http = http.resolve(host, tls.addr);
    }
    let http = http.build().unwrap();
    let post = |url: String| {
        let http = http.clone();
        async move {
            let r = http.post(&url).json(&json!({})).send().await.unwrap();
            let location = r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), location)
        }
    };
    let command = format!("/adminapi/beta/{}/InvokeCommand", tenant());
    let admin_host = Some(format!("https://eur03b.admin.protection.outlook.com{command}"));
    assert_eq!(
        post(format!("https://{GLOBAL}{command}")).await,
        (302, admin_host.clone())
    );
    assert_eq!(
        post(format!("https://nam11b.{GLOBAL}{command}")).await,
        (302, admin_host),
        "a wrong region host is redirected"
    );
    assert_eq!(
        post(format!("https://eur03b.{GLOBAL}{command}")).await.0,
        401,
        "the regional host runs commands (this one without a token)"
    );
    assert_eq!(
        post(format!("https://eur03b.{GLOBAL}/eur03b{command}")).await.0,
        404,
        "no region in the path on Microsoft's hosts"
    );
    assert_eq!(
        post(format!("{}{command}", sim.url())).await,
        (302, Some(format!("{}/eur03b{command}", sim.url()))),
        "loopback keeps the region in the path"
    );
}
