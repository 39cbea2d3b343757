//! OpenSSH's wildcard patterns (`*` any run of characters, `/` included; `?` any one
//! character) and comma-separated pattern lists with `!` negation, as in ssh-agent's
//! `-P` and the user names of destination constraints.

/// OpenSSH's wildcard patterns: `*` any run of characters, `?` any one.
pub fn pattern_match(text: &str, pattern: &str) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = (text.chars().collect(), pattern.chars().collect());
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `text` matches the comma-separated `list`: some pattern matches and no
/// negated (`!pattern`) one does.
pub fn list_match(text: &str, list: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pattern.strip_prefix('!') {
            Some(negated) if pattern_match(text, negated) => return false,
            Some(_) => {}
            None => matched |= pattern_match(text, pattern),
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::{list_match, pattern_match};

    #[test]
    fn patterns_match_as_openssh_does() {
        for (text, pattern, want) in [
            ("root", "*", true),
            ("root", "r??t", true),
            ("root", "--BADUSER", false),
            ("host_e", "host_*", true),
            ("host_e", "host_d", false),
            ("", "*", true),
            ("abc", "a*c*", true),
            ("abc", "a*d", false),
        ] {
            assert_eq!(pattern_match(text, pattern), want, "{text} vs {pattern}");
        }
    }

    #[test]
    fn lists_allow_and_deny() {
        let list = "/usr/lib*/*,/usr/local/lib*/*";
        assert!(list_match(
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            list
        ));
        assert!(!list_match("/tmp/evil.so", list));
        assert!(!list_match(
            "/usr/lib/evil.so",
            "/usr/lib/*,!/usr/lib/evil*"
        ));
    }
}
