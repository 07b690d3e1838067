//! A whole connection: the bytes are what a client sends to rosterd (decoded, dispatched to
//! the operations, answered) over an in-memory stream against a small directory. The session
//! must end without a panic whatever arrives; the server's state stays usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster_server::config::{ConfigFile, Overrides, Settings};
use roster_server::directory::Directory;
use roster_server::session::{self, Conn};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    runtime: tokio::runtime::Runtime,
    dir: Arc<Directory>,
    _tmp: tempfile::TempDir,
}

const LDIF: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
dn: uid=ann,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann\nsn: A\nmail: ann@example.com\nuserPassword: secret\n\n\
dn: cn=staff,ou=people,dc=example,dc=com\nobjectClass: groupOfNames\ncn: staff\nmember: uid=ann,ou=people,dc=example,dc=com\n";

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file: ConfigFile = toml::from_str(
            "[directory]\nroot_dn = \"cn=admin,dc=example,dc=com\"\nroot_password = \"secret\"\n\
             [storage]\ndurability = \"buffer\"\n[security]\nlockout_threshold = 0\nlockout_address_threshold = 0\n",
        )
        .expect("config");
        let settings = Settings::from_file(
            file,
            tmp.path(),
            &Overrides {
                data_dir: Some(tmp.path().join("data")),
                ..Overrides::default()
            },
        )
        .expect("settings");
        let dir = Directory::open(settings).expect("directory");
        let path = tmp.path().join("in.ldif");
        std::fs::write(&path, LDIF).expect("ldif");
        roster_server::offline::load(
            &dir,
            &path,
            false,
            roster_server::offline::InvalidValues::Refuse,
            &mut std::io::sink(),
        )
        .expect("load");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        World {
            runtime,
            dir: Arc::new(dir),
            _tmp: tmp,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let conn = Conn {
            id: 1,
            peer: "127.0.0.1:1".parse().expect("address"),
            secure: false,
            tls: None,
            certificate_subject: None,
        };
        let serving = tokio::spawn(session::serve(server, w.dir.clone(), conn, stop_rx));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut sink),
        )
        .await;
        drop(client);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), serving).await;
    });
});
