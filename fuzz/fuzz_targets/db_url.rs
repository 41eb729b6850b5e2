//! Database URL parsing: whatever follows `user:<password>@`, neither the
//! parsed URL as shown nor the parse error shows the password, nor does
//! `redact` over the raw text (for passwords without whitespace, where a
//! URL in free text ends).
#![no_main]

use libfuzzer_sys::fuzz_target;
use windsock::db::url::{DbUrl, redact};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line is the password (at least 8 characters, no `@`, which
    // would end the user-info early and make another part the password).
    let (pw, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = DbUrl::parse(&text).map(|u| u.to_string());
    // A password that the rest of the output could contain by chance (the
    // host part, the mask, an error's words, which have no digits) proves
    // nothing.
    if pw.chars().count() < 8
        || pw.contains(['@', '\r', '*'])
        || !pw.contains(|c: char| c.is_ascii_digit())
        || rest.contains(pw)
        // URL parsers drop tabs and newlines: what remains of the host part
        // may spell the password.
        || rest.replace(['\t', '\n', '\r'], "").contains(pw)
    {
        return;
    }
    let show = |raw: &str| match DbUrl::parse(raw) {
        Ok(url) => url.to_string(),
        Err(e) => e.to_string(),
    };
    for scheme in ["postgresql+psycopg2", "mysql+mysqldb", "postgres"] {
        let raw = format!("{scheme}://user:{pw}@{rest}");
        // The same URL with a stand-in password: whatever it shows (the
        // scheme, an error's quotes and words, the mask) is there by
        // chance, not from the password.
        let control = format!("{scheme}://user:0@{rest}");
        let shown = show(&raw);
        if !show(&control).contains(pw) {
            assert!(!shown.contains(pw), "{raw:?} shows as {shown:?}");
        }
        // In free text a URL ends at whitespace: only passwords without it
        // can be found there.
        if !pw.contains(char::is_whitespace) && !redact(&control).contains(pw) {
            let redacted = redact(&raw);
            assert!(!redacted.contains(pw), "{raw:?} redacts to {redacted:?}");
        }
    }
});
