//! User lookup from the sandbox's own `/etc/passwd` and `/etc/group` (no NSS: the agent is
//! static and must not load the image's libraries).

use std::path::Path;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub groups: Vec<u32>,
}

/// Resolve a user name or a numeric uid.
pub fn lookup(root: &Path, who: &str) -> Option<User> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
    let numeric = who.parse::<u32>().ok();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
            continue;
        };
        if f[0] == who || numeric == Some(uid) {
            return Some(User {
                name: f[0].to_string(),
                uid,
                gid,
                home: f[5].to_string(),
                shell: f[6].to_string(),
                groups: supplementary(&group, f[0], gid),
            });
        }
    }
    numeric.map(|uid| User {
        name: uid.to_string(),
        uid,
        gid: uid,
        home: "/".into(),
        shell: "/bin/sh".into(),
        groups: vec![uid],
    })
}

fn supplementary(group: &str, name: &str, primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        if f[3].split(',').any(|m| m == name)
            && let Ok(g) = f[2].parse::<u32>()
            && !out.contains(&g)
        {
            out.push(g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_uids_and_groups() {
        let dir = std::env::temp_dir().join(format!("islo-users-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nislo:x:1000:1000::/home/islo:/bin/sh\nbad line\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:\nislo:x:1000:\nwheel:x:10:islo,bob\n",
        )
        .unwrap();
        let u = lookup(&dir, "islo").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/islo"));
        assert_eq!(u.groups, vec![1000, 10]);
        assert_eq!(lookup(&dir, "0").unwrap().name, "root");
        assert_eq!(lookup(&dir, "4242").unwrap().uid, 4242);
        assert!(lookup(&dir, "nobody-here").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
