//! Pass-through authentication against a real Active Directory (Samba): users mapped from it
//! (rosterUpstream, rosterUpstreamDn, no userPassword) bind to rosterd with their AD password,
//! which rosterd checks by binding to AD over LDAPS. Wrong passwords and accounts disabled in
//! AD are refused and counted by lockout; a locally disabled account is refused without asking
//! AD; an outage answers unavailable in bounded time (not counted), while the root DN and local
//! users go on binding; with the cache on, passwords AD accepted go on binding during an outage.

use roster_tests::samba::{Samba, BASE};
use roster_tests::{run_tool, write_file, Rosterd, ROOT_DN, ROOT_PW};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: &str = "ou=users,dc=example,dc=com";
const LOCAL_PW: &str = "Local-pw-11";

const TREE: &str = "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: ou=users,dc=example,dc=com\nobjectClass: organizationalUnit\nou: users\n\n\
dn: uid=loc,ou=users,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: loc\ncn: Lou Cal\nsn: Cal\n\
mail: loc@example.com\nuserPassword: Local-pw-11\n\n";

fn user_dn(uid: &str) -> String {
    format!("uid={uid},{USERS}")
}

/// `ldapwhoami` as `dn`: (exit code, stdout + stderr).
fn whoami(url: &str, dn: &str, pw: &str) -> (i32, String) {
    let (code, out, err) = run_tool("ldapwhoami", &["-x", "-H", url, "-D", dn, "-w", pw]);
    (code, format!("{out}{err}"))
}

/// Creates `name` in AD with `password`; its DN and objectGUID (base64) as AD reports them.
fn ad_user(
    samba: &Samba,
    name: &str,
    given: &str,
    surname: &str,
    password: &str,
) -> (String, String) {
    samba.tool(&[
        "user",
        "create",
        name,
        password,
        &format!("--given-name={given}"),
        &format!("--surname={surname}"),
    ]);
    let (code, out, err) = samba.ldapsearch(&[
        "-b",
        BASE,
        &format!("(sAMAccountName={name})"),
        "objectGUID",
    ]);
    assert_eq!(code, 0, "{err}");
    let dn = out
        .lines()
        .find_map(|l| l.strip_prefix("dn: "))
        .unwrap_or_else(|| panic!("no DN for {name}: {out}"))
        .to_string();
    let guid = out
        .lines()
        .find_map(|l| l.strip_prefix("objectGUID:: "))
        .unwrap_or_else(|| panic!("no objectGUID for {name}: {out}"))
        .to_string();
    assert_eq!(dn, format!("CN={given} {surname},CN=Users,{BASE}"));
    (dn, guid)
}

/// The LDIF (changetype add) of a user mapped from `upstream`, with no userPassword.
fn mapped(uid: &str, upstream: &str, upstream_dn: &str, id: &str, extra: &str) -> String {
    format!(
        "dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: rosterMailUser\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
         mail: {uid}@example.com\nrosterUpstream: {upstream}\nrosterUpstreamId: {id}\nrosterUpstreamDn: {upstream_dn}\n{extra}\n",
        dn = user_dn(uid)
    )
}

/// Adds entries as the root DN over LDAP.
fn add(server: &Rosterd, ldif: &str) {
    let (code, out, err) = roster_tests::ldapmodify(&server.url(), ROOT_DN, ROOT_PW, ldif);
    assert_eq!(code, 0, "{out}{err}\n{ldif}");
}

/// An `[[upstream]]` table for the test's Samba.
fn corp_upstream(samba_ca: &Path, more: &str) -> String {
    format!(
        "[[upstream]]\nname = \"corp\"\nurl = \"ldaps://127.0.0.1:636\"\nca = \"{}\"\ntimeout = \"2s\"\n{more}\n",
        samba_ca.display()
    )
}

/// A TCP listener that accepts connections, counts them and never answers: an upstream that
/// hangs (and a witness of whether rosterd contacted it).
fn silent_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, count)
}

#[test]
fn mapped_users_bind_with_their_upstream_password_and_outages_answer_unavailable() {
    let mut samba = Samba::start();
    let ca = samba.ca();
    let (ann_ad, ann_id) = ad_user(&samba, "ann", "Ann", "Bird", "Passw0rd-Ann");
    let (bob_ad, bob_id) = ad_user(&samba, "bob", "Bob", "Crow", "Passw0rd-Bob");
    let (fay_ad, fay_id) = ad_user(&samba, "fay", "Fay", "Wren", "Passw0rd-Fay");
    let (silent, contacted) = silent_listener();
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.log");
    let config = format!(
        "[security]\nlockout_threshold = 3\nlockout_secs = 300\n[audit]\nfile = \"{audit}\"\n{corp}\
         [[upstream]]\nname = \"hung\"\nurl = \"ldaps://{silent}\"\nca = \"{ca}\"\ntimeout = \"1s\"\n",
        audit = audit.display(),
        corp = corp_upstream(&ca, ""),
        ca = ca.display(),
    );
    let server = Rosterd::start(Some(TREE), &config);
    let url = server.url();
    let ann = user_dn("ann");
    add(
        &server,
        &[
            mapped("ann", "corp", &ann_ad, &ann_id, ""),
            mapped("bob", "corp", &bob_ad, &bob_id, ""),
            mapped("fay", "corp", &fay_ad, &fay_id, ""),
            // Disabled here: refused before anything is sent to its (hanging) upstream.
            mapped(
                "carl",
                "hung",
                "CN=Carl,CN=Users,DC=corp,DC=example,DC=com",
                "c1",
                "rosterAccountDisabled: TRUE\n",
            ),
            // Mapped from a directory this server has no [[upstream]] for.
            mapped(
                "dan",
                "elsewhere",
                "CN=Dan,CN=Users,DC=corp,DC=example,DC=com",
                "d1",
                "",
            ),
            mapped(
                "eve",
                "hung",
                "CN=Eve,CN=Users,DC=corp,DC=example,DC=com",
                "e1",
                "",
            ),
        ]
        .concat(),
    );

    // The AD password binds; rosterd has no password of its own for ann.
    let (code, out) = whoami(&url, &ann, "Passw0rd-Ann");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("dn:{ann}")), "{out}");
    let (code, out) = whoami(&url, &ann, "Passw0rd-Wrong");
    assert_eq!(code, 49, "{out}");
    // The password is AD's, not a copy: changed in AD, the old one stops binding.
    samba.tool(&["user", "setpassword", "ann", "--newpassword=Passw0rd-Ann2"]);
    assert_eq!(whoami(&url, &ann, "Passw0rd-Ann").0, 49);
    assert_eq!(whoami(&url, &ann, "Passw0rd-Ann2").0, 0);

    // Disabled in AD (AD answers 49 with data 533): refused.
    let bob = user_dn("bob");
    assert_eq!(whoami(&url, &bob, "Passw0rd-Bob").0, 0);
    samba.tool(&["user", "disable", "bob"]);
    assert_eq!(whoami(&url, &bob, "Passw0rd-Bob").0, 49);

    // Wrong passwords checked upstream count for lockout: three lock fay, then even her
    // right password is refused (without asking AD).
    let fay = user_dn("fay");
    for _ in 0..3 {
        assert_eq!(whoami(&url, &fay, "Passw0rd-Nope").0, 49);
    }
    assert_eq!(whoami(&url, &fay, "Passw0rd-Fay").0, 49);

    // Disabled locally: refused at once, and its upstream never contacted.
    assert_eq!(whoami(&url, &user_dn("carl"), "whatever-1").0, 49);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "a locally disabled user's password went upstream"
    );
    // An upstream rosterd has no table for: refused.
    assert_eq!(whoami(&url, &user_dn("dan"), "whatever-1").0, 49);
    // An upstream that accepts the connection and never answers: unavailable once the
    // timeout (1 s) has passed.
    let started = Instant::now();
    let (code, out) = whoami(&url, &user_dn("eve"), "whatever-1");
    let took = started.elapsed();
    assert_eq!(code, 52, "{out}");
    assert!(
        out.contains("the upstream directory \"hung\" cannot be reached to check this password"),
        "{out}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the bind took {took:?} with a 1 s timeout"
    );
    assert!(!out.contains("no answer within"), "{out}");
    assert_eq!(contacted.load(Ordering::SeqCst), 1);

    // A mapped user's password is changed in AD, not here.
    let (code, out, err) = run_tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PW,
            "-s",
            "New-pass-123",
            &ann,
        ],
    );
    // ldappasswd exits 1 and prints the result.
    let said = format!("{out}{err}");
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("unwilling to perform (53)"), "{said}");
    assert!(said.contains("changed in that directory"), "{said}");
    let (code, out, err) = run_tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            &ann,
            "-w",
            "Passw0rd-Ann2",
            "-s",
            "New-pass-123",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("unwilling to perform (53)"), "{out}{err}");
    let change = format!(
        "dn: {ann}\nchangetype: modify\nreplace: userPassword\nuserPassword: New-pass-123\n"
    );
    let (code, out, err) = roster_tests::ldapmodify(&url, ROOT_DN, ROOT_PW, &change);
    assert_eq!(code, 53, "{out}{err}");
    // Still AD's password, and no local one.
    assert_eq!(whoami(&url, &ann, "New-pass-123").0, 49);
    assert_eq!(whoami(&url, &ann, "Passw0rd-Ann2").0, 0);

    // AD goes away: unavailable, with rosterd's own message, in bounded time (the port is
    // closed: well under the 2 s timeout, and at most about twice it in any case).
    samba.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let (code, out) = whoami(&url, &ann, "Passw0rd-Ann2");
        let took = started.elapsed();
        assert_eq!(code, 52, "{out}");
        assert!(
            out.contains(
                "the upstream directory \"corp\" cannot be reached to check this password"
            ),
            "{out}"
        );
        assert!(
            took < Duration::from_secs(6),
            "the bind took {took:?} with a 2 s timeout"
        );
        assert!(
            !out.contains("os error") && !out.contains("refused"),
            "the upstream's own error reached the client: {out}"
        );
    }
    // Five outage answers did not lock ann (three failures would): still unavailable, not 49.
    assert_eq!(whoami(&url, &ann, "Passw0rd-Ann2").0, 52);
    // The root DN and local users do not depend on AD.
    assert_eq!(whoami(&url, ROOT_DN, ROOT_PW).0, 0);
    assert_eq!(whoami(&url, &user_dn("loc"), LOCAL_PW).0, 0);
    // The outage is in the audit log; AD's own error text is not sent to the client.
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains("\"upstream_unavailable\""), "{log}");
    assert!(log.contains("\"upstream\":\"corp\""), "{log}");
}

#[test]
fn with_the_cache_on_accepted_passwords_bind_while_the_upstream_is_down() {
    let mut samba = Samba::start();
    let ca = samba.ca();
    let (gus_ad, gus_id) = ad_user(&samba, "gus", "Gus", "Hawk", "Passw0rd-Gus");
    let (ida_ad, ida_id) = ad_user(&samba, "ida", "Ida", "Lark", "Passw0rd-Ida");
    let (jo_ad, jo_id) = ad_user(&samba, "jo", "Jo", "Teal", "Passw0rd-Jo");
    let config = corp_upstream(&ca, "cache_max_age = \"1h\"");
    let server = Rosterd::start(Some(TREE), &config);
    let url = server.url();
    add(
        &server,
        &[
            mapped("gus", "corp", &gus_ad, &gus_id, ""),
            mapped("ida", "corp", &ida_ad, &ida_id, ""),
            mapped("jo", "corp", &jo_ad, &jo_id, ""),
        ]
        .concat(),
    );
    let (gus, ida, jo) = (user_dn("gus"), user_dn("ida"), user_dn("jo"));
    // Accepted by AD: gus and ida get verifiers; then ida's password is refused by AD, which
    // drops hers. jo never binds while AD is up.
    assert_eq!(whoami(&url, &gus, "Passw0rd-Gus").0, 0);
    assert_eq!(whoami(&url, &ida, "Passw0rd-Ida").0, 0);
    assert_eq!(whoami(&url, &ida, "Passw0rd-Bad").0, 49);
    // While AD answers, the cache is not used: a password AD no longer takes is refused.
    samba.tool(&["user", "setpassword", "gus", "--newpassword=Passw0rd-Gus2"]);
    assert_eq!(whoami(&url, &gus, "Passw0rd-Gus").0, 49);
    assert_eq!(whoami(&url, &gus, "Passw0rd-Gus2").0, 0);

    samba.stop();
    // AD is down: gus's last accepted password binds from the cache, nothing else does.
    let (code, out) = whoami(&url, &gus, "Passw0rd-Gus2");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("dn:{gus}")), "{out}");
    let (code, out) = whoami(&url, &gus, "Passw0rd-Gus");
    assert_ne!(code, 0, "{out}");
    assert_eq!(code, 52, "{out}");
    assert_eq!(whoami(&url, &gus, "Passw0rd-Wrong").0, 52);
    // ida's verifier went with AD's refusal; jo never had one.
    assert_eq!(whoami(&url, &ida, "Passw0rd-Ida").0, 52);
    assert_eq!(whoami(&url, &jo, "Passw0rd-Jo").0, 52);
    // Two differing passwords counted as failures (threshold 10): gus still binds.
    assert_eq!(whoami(&url, &gus, "Passw0rd-Gus2").0, 0);
}

/// A mapped entry's upstream must be configured with TLS: rosterd refuses to start otherwise.
#[test]
fn an_upstream_without_tls_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_file(
        tmp.path(),
        "rosterd.toml",
        &roster_tests::rosterd_config("[[upstream]]\nname = \"corp\"\nurl = \"ldapi:///run/x\"\n"),
    );
    let out = roster_tests::rosterd_cmd(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upstream \"corp\"") && err.contains("in clear"),
        "{err}"
    );
}
