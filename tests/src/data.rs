//! A deterministic test directory with the variety that trips up matching: case and space
//! variants, escaped and multi-valued RDNs, UTF-8, numbers, phone numbers, groups and nesting.

/// A small deterministic pseudo-random generator (xorshift64*), so runs are repeatable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

pub const GIVEN: &[&str] = &[
    "Anna", "Bob", "Carla", "Dirk", "Eve", "José", "Zoë", "Li", "Mary Ann", "O'Neil",
];
pub const FAMILY: &[&str] = &[
    "Smith",
    "Müller",
    "García",
    "Nguyen",
    "Smithson",
    "Brown",
    "de la Cruz",
    "Öztürk",
    "Lee",
    "SMITH",
];
pub const DEPTS: &[&str] = &["Sales", "sales", "Engineering", "Support", "Legal"];

/// One user of the generated directory, as the filters need to know it.
pub struct User {
    pub uid: String,
    pub cn: String,
    pub sn: String,
    pub given: String,
    pub mail: Vec<String>,
    pub phone: Option<String>,
    pub uid_number: Option<u32>,
    pub dept: Option<String>,
    pub dn: String,
}

pub struct Directory {
    pub ldif: String,
    pub users: Vec<User>,
    pub groups: Vec<String>,
    pub dns: Vec<String>,
}

/// Builds the directory: `n` users under ou=people, some special entries, and groups.
pub fn directory(n: usize, seed: u64) -> Directory {
    let mut rng = Rng::new(seed);
    let mut ldif = String::new();
    let mut dns = Vec::new();
    let add = |ldif: &mut String, dns: &mut Vec<String>, dn: &str, body: &str| {
        ldif.push_str(&format!("dn: {dn}\n{body}\n"));
        dns.push(dn.to_string());
    };
    add(&mut ldif, &mut dns, "dc=example,dc=com", "objectClass: top\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example Inc.\n");
    for ou in ["people", "groups", "contacts"] {
        add(
            &mut ldif,
            &mut dns,
            &format!("ou={ou},dc=example,dc=com"),
            &format!("objectClass: organizationalUnit\nou: {ou}\ndescription: The {ou}\n"),
        );
    }
    add(
        &mut ldif,
        &mut dns,
        "ou=Special  Unit,dc=example,dc=com",
        "objectClass: organizationalUnit\nou: Special  Unit\n",
    );
    add(
        &mut ldif,
        &mut dns,
        "ou=deep,ou=Special  Unit,dc=example,dc=com",
        "objectClass: organizationalUnit\nou: deep\n",
    );
    add(
        &mut ldif,
        &mut dns,
        "ou=deeper,ou=deep,ou=Special  Unit,dc=example,dc=com",
        "objectClass: organizationalUnit\nou: deeper\nbusinessCategory: Nested\n",
    );
    add(
        &mut ldif,
        &mut dns,
        "cn=Smith\\, John,ou=Special  Unit,dc=example,dc=com",
        "objectClass: person\ncn: Smith, John\nsn: Smith\ntelephoneNumber: +1 555 0100\n",
    );
    add(
        &mut ldif,
        &mut dns,
        "cn=Multi+sn=Valued,ou=Special  Unit,dc=example,dc=com",
        "objectClass: person\ncn: Multi\nsn: Valued\ndescription: multi-valued RDN\n",
    );
    add(&mut ldif, &mut dns, "cn=\\#hash \\2B plus,ou=Special  Unit,dc=example,dc=com", "objectClass: person\ncn: #hash + plus\nsn:: IHNwYWNlZCA=\ndescription: (parens) *star* back\\slash\n");
    add(
        &mut ldif,
        &mut dns,
        "cn=Ünïcødé Ñame,ou=deeper,ou=deep,ou=Special  Unit,dc=example,dc=com",
        "objectClass: person\ncn: Ünïcødé Ñame\nsn: Ñame\n",
    );
    let mut users = Vec::new();
    for i in 0..n {
        let given = rng.pick(GIVEN).to_string();
        let family = rng.pick(FAMILY).to_string();
        let uid = format!("u{i:04}");
        let cn = if rng.chance(10) {
            format!("  {given}   {family} ")
        } else {
            format!("{given} {family}")
        };
        let mut mail = vec![format!("{uid}@example.com")];
        if rng.chance(40) {
            let ascii: String = given
                .to_lowercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            mail.push(format!("{ascii}.{i}@Example.COM"));
        }
        let phone = rng.chance(60).then(|| match rng.below(3) {
            0 => format!("+49 30 {:07}", i * 7),
            1 => format!("+49-30-{:07}", i * 7),
            _ => format!("+4930{:07}", i * 7),
        });
        let posix = rng.chance(50);
        let uid_number = posix.then(|| 1000 + (i as u32 * 37) % 5000);
        let dept = rng.chance(70).then(|| rng.pick(DEPTS).to_string());
        let dn = format!("uid={uid},ou=people,dc=example,dc=com");
        let mut body = String::from("objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n");
        if posix {
            body.push_str("objectClass: posixAccount\n");
        }
        body.push_str(&format!("uid: {uid}\ncn: {cn}\n"));
        if rng.chance(20) {
            body.push_str(&format!("cn: {}\n", family.to_uppercase()));
        }
        body.push_str(&format!("sn: {family}\ngivenName: {given}\n"));
        for m in &mail {
            body.push_str(&format!("mail: {m}\n"));
        }
        if let Some(p) = &phone {
            body.push_str(&format!("telephoneNumber: {p}\n"));
        }
        if let Some(u) = uid_number {
            body.push_str(&format!(
                "uidNumber: {u}\ngidNumber: {}\nhomeDirectory: /home/{uid}\n",
                100 + u % 7
            ));
        }
        if let Some(d) = &dept {
            body.push_str(&format!("departmentNumber: {d}\n"));
        }
        if rng.chance(30) {
            body.push_str(&format!("employeeNumber: {:05}\n", i * 13 % 1000));
        }
        if rng.chance(25) {
            body.push_str(&format!("description: user number {i} of {n}\n"));
        }
        if rng.chance(15) {
            body.push_str(&format!("cn;lang-de: {given} {family} (de)\n"));
        }
        body.push_str(&format!("userPassword: pw{i}\n"));
        add(&mut ldif, &mut dns, &dn, &body);
        users.push(User {
            uid,
            cn,
            sn: family,
            given,
            mail,
            phone,
            uid_number,
            dept,
            dn,
        });
    }
    for i in 0..(n / 10).max(2) {
        let gdn = format!("cn=group{i},ou=groups,dc=example,dc=com");
        add(&mut ldif, &mut dns, &format!("cn=contact{i},ou=contacts,dc=example,dc=com"), &format!("objectClass: inetOrgPerson\ncn: contact{i}\nsn: External\nmail: contact{i}@partner.example.org\n"));
        let mut body = format!("objectClass: groupOfNames\ncn: group{i}\ndescription: Group {i}\n");
        let mut chosen = Vec::new();
        for _ in 0..(1 + rng.below(12)) {
            let k = rng.below(users.len());
            if chosen.contains(&k) {
                continue;
            }
            chosen.push(k);
            let u = &users[k];
            let member = if rng.chance(20) {
                u.dn.to_uppercase().replace(",", ", ")
            } else {
                u.dn.clone()
            };
            body.push_str(&format!("member: {member}\n"));
        }
        if i > 0 && rng.chance(50) {
            body.push_str(&format!(
                "member: cn=group{},ou=groups,dc=example,dc=com\n",
                i - 1
            ));
        }
        add(&mut ldif, &mut dns, &gdn, &body);
    }
    let groups = dns
        .iter()
        .filter(|d| d.starts_with("cn=group"))
        .cloned()
        .collect();
    Directory {
        ldif,
        users,
        groups,
        dns,
    }
}
