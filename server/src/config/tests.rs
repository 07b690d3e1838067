use super::*;

#[test]
fn unknown_keys_are_rejected() {
    let err = toml::from_str::<ConfigFile>("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n");
    assert!(err.is_err());
}

#[test]
fn limits_too_large_for_a_semaphore_mean_no_limit() {
    let file: ConfigFile = toml::from_str(
        "[server]\nmax_connections = 4000000000000000000\nmax_concurrent_searches = 0\nmax_concurrent_binds = 9223372036854775807\n",
    )
    .unwrap();
    let s = Settings::from_file(file, Path::new("/etc"), &Overrides::default()).unwrap();
    assert_eq!(s.max_connections, tokio::sync::Semaphore::MAX_PERMITS);
    assert_eq!(s.max_concurrent_searches, 1);
    assert_eq!(s.max_concurrent_binds, tokio::sync::Semaphore::MAX_PERMITS);
    // What the server builds from them.
    let _ = tokio::sync::Semaphore::new(s.max_connections);
}

#[test]
fn overrides_win_over_file() {
    let file: ConfigFile = toml::from_str("[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let o = Overrides {
        listen: Some("127.0.0.1:2".into()),
        data_dir: Some("/tmp/x".into()),
        ..Overrides::default()
    };
    let s = Settings::from_file(file, Path::new("/etc"), &o).unwrap();
    assert_eq!(s.listen.port(), 2);
    assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
}

#[test]
fn write_priority() {
    use crate::writers::WritePriority;
    let settings = |text: &str| {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Settings::from_file(file, Path::new("/etc"), &Overrides::default())
            .map(|s| s.write_priority)
            .map_err(|e| e.to_string())
    };
    assert_eq!(settings("").unwrap(), WritePriority::Yield(5));
    assert_eq!(
        settings("[server]\nwrite_nice = 7\n").unwrap(),
        WritePriority::Yield(7)
    );
    assert_eq!(
        settings("[server]\nwrite_priority = \"nice\"\nwrite_nice = 7\n").unwrap(),
        WritePriority::Nice(7)
    );
    assert_eq!(
        settings("[server]\nwrite_priority = \"nice\"\nwrite_nice = 40\n").unwrap(),
        WritePriority::Nice(19)
    );
    let e = settings("[server]\nwrite_priority = \"realtime\"\n").unwrap_err();
    assert!(e.contains("write_priority") && e.contains("yield"), "{e}");
}

#[test]
fn bad_index_kind_is_named() {
    let file: ConfigFile =
        toml::from_str("[storage.indexes]\nmail = [\"eq\", \"subs\"]\n").unwrap();
    let e = Settings::from_file(file, Path::new(""), &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("storage.indexes.mail"), "{e}");
}

fn upstream_error(text: &str) -> String {
    let file: ConfigFile = toml::from_str(text).unwrap();
    Settings::from_file(file, Path::new("/etc/roster"), &Overrides::default())
        .unwrap_err()
        .to_string()
}

/// Settings from `text` with the config file in `dir`.
fn replica_settings(dir: &Path, text: &str) -> Result<Settings, String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
    Settings::from_file(file, dir, &Overrides::default()).map_err(|e| e.to_string())
}

#[test]
fn replicas_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let head = "[directory]\nsuffixes = [\"dc=example,dc=com\", \"dc=other,dc=org\"]\n[storage.indexes]\nmail = [\"eq\"]\n";
    let good = "[[replica]]\nname = \"main\"\nprovider = \"ldap://ldap1.example.com\"\nca = \"ca.pem\"\nbind_dn = \"cn=replicator,dc=example,dc=com\"\npassword_file = \"pw\"\nbase = \"DC=Example, dc=com\"\n";
    let s = replica_settings(dir.path(), &format!("{head}{good}")).unwrap();
    let [r] = s.replicas.as_slice() else {
        panic!("one replica expected");
    };
    assert_eq!(r.transport, crate::config::Transport::StartTls);
    assert_eq!((r.host.as_str(), r.port), ("ldap1.example.com", 389));
    assert_eq!(r.bind_password.as_ref().map(Secret::expose), Some("s3cret"));
    assert_eq!(r.filter, "(objectClass=*)");
    assert_eq!(
        (r.retry, r.retry_max, r.timeout),
        (
            Duration::from_secs(5),
            Duration::from_secs(300),
            Duration::from_secs(10)
        )
    );
    assert_eq!(r.update_referral, "ldap://ldap1.example.com");
    assert_eq!(r.ca.as_deref(), Some(dir.path().join("ca.pem").as_path()));
    // The entryUUID equality index is added when the configuration lacks it.
    assert!(s
        .indexes
        .iter()
        .any(|i| i.attr == "entryUUID" && i.equality));

    let plain = "[[replica]]\nname = \"p\"\nprovider = \"ldap://127.0.0.1:3890\"\nstarttls = false\nbase = \"dc=other,dc=org\"\nretry = \"1s\"\nretry_max = \"10s\"\nupdate_referral = \"ldap://master.example.org\"\n";
    let s = replica_settings(dir.path(), &format!("{head}{plain}")).unwrap();
    assert_eq!(
        s.replicas.first().map(|r| r.transport),
        Some(crate::config::Transport::Plain)
    );

    let bad = |extra: &str, want: &[&str]| {
        let e = replica_settings(dir.path(), &format!("{head}{extra}")).unwrap_err();
        for w in want {
            assert!(e.contains(w), "{w:?} not in {e}");
        }
    };
    bad(
        &good.replace("ldap://ldap1", "ldapi://ldap1"),
        &["replica \"main\"", "provider"],
    );
    bad(
        &format!("{good}starttls = false\n"),
        &["starttls = false", "loopback"],
    );
    bad(
        &good.replace("DC=Example, dc=com", "dc=nowhere"),
        &["base", "directory.suffixes"],
    );
    bad(&format!("{good}{good}"), &["configured twice"]);
    bad(
        &format!("{good}{}", good.replace("\"main\"", "\"second\"")),
        &["already copied by replica \"main\""],
    );
    bad(
        &good.replace("password_file = \"pw\"\n", ""),
        &["bind_dn and password_file"],
    );
    bad(&good.replace("\"pw\"", "\"missing\""), &["password_file"]);
    bad(
        &format!("{good}retry = \"soon\"\n"),
        &["retry", "not a duration"],
    );
    bad(
        &format!("{good}retry = \"10m\"\n"),
        &["retry_max", "at least retry"],
    );
    bad(&format!("{good}timeout = \"0s\"\n"), &["timeout"]);
    bad(&format!("{good}filter = \"(uid=\"\n"), &["filter"]);
    bad(&good.replace("\"main\"", "\"a b\""), &["name"]);
    bad(
        &format!("{good}update_referral = \"http://x\"\n"),
        &["update_referral"],
    );
    assert!(
        replica_settings(dir.path(), &format!("{head}{good}provder = 1\n"))
            .unwrap_err()
            .contains("provder")
    );
}

#[test]
fn upstreams_are_checked() {
    let file: ConfigFile = toml::from_str(
        "[[upstream]]\nname = \"corp\"\nurl = \"ldaps://dc1.corp.example.com\"\nca = \"ad-ca.pem\"\n\
         [[upstream]]\nname = \"edir\"\nurl = \"ldap://10.0.0.5:389\"\ntimeout = \"1500ms\"\nmax_concurrent = 4\ncache_max_age = \"12h\"\n",
    )
    .unwrap();
    let s = Settings::from_file(file, Path::new("/etc/roster"), &Overrides::default()).unwrap();
    let [corp, edir] = s.upstreams.as_slice() else {
        panic!("two upstreams expected");
    };
    assert!(!corp.starttls);
    assert_eq!(corp.ca.as_deref(), Some(Path::new("/etc/roster/ad-ca.pem")));
    assert_eq!(corp.timeout, Duration::from_secs(5));
    assert_eq!(corp.max_concurrent, 16);
    assert_eq!(corp.cache_max_age, None);
    assert!(edir.starttls);
    assert_eq!(edir.timeout, Duration::from_millis(1500));
    assert_eq!(edir.cache_max_age, Some(Duration::from_secs(12 * 3600)));

    let e = upstream_error("[[upstream]]\nname = \"corp\"\nurl = \"ldapi:///run/x\"\n");
    assert!(
        e.contains("upstream \"corp\"") && e.contains("ldaps://"),
        "{e}"
    );
    let e = upstream_error("[[upstream]]\nname = \"corp\"\nurl = \"ldaps://a\"\n[[upstream]]\nname = \"CORP\"\nurl = \"ldaps://b\"\n");
    assert!(e.contains("configured twice"), "{e}");
    let e = upstream_error(
        "[[upstream]]\nname = \"corp\"\nurl = \"ldaps://a\"\ntimeout = \"5 seconds\"\n",
    );
    assert!(e.contains("timeout") && e.contains("not a duration"), "{e}");
    let e = upstream_error(
        "[[upstream]]\nname = \"corp\"\nurl = \"ldaps://a\"\ncache_max_age = \"0s\"\n",
    );
    assert!(e.contains("cache_max_age"), "{e}");
    let e = upstream_error("[[upstream]]\nname = \"\"\nurl = \"ldaps://a\"\n");
    assert!(e.contains("upstream #1"), "{e}");
    assert!(toml::from_str::<ConfigFile>(
        "[[upstream]]\nname = \"a\"\nurl = \"ldaps://a\"\npasword = 1\n"
    )
    .is_err());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
    for bad in ["", "5", "s", "5 s", "-5s", "5w", "1.5h"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn example_config_parses() {
    let text = include_str!("../../../config.example.toml");
    let file: ConfigFile = toml::from_str(text).unwrap();
    Settings::from_file(file, Path::new(""), &Overrides::default()).unwrap();
}
