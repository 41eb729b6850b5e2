//! Config parsing and validation: any text, as TOML or YAML, is either a
//! config or a clear error; nothing panics, and no error shows the password
//! of a database URL it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use windsock::config::Settings;

const SECRET: &str = "Fz9-secret-pw";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    // Half the inputs get a target with a password spliced in, so errors
    // about it are checked for leaks.
    let text = if mode & 2 == 0 {
        text.into_owned()
    } else {
        format!(
            "[[targets]]\nenvironment = \"e\"\nurl = \"postgres://u:{SECRET}@{}\"\n",
            text.replace(['"', '\n', '\\'], "")
        )
    };
    let error = match Settings::from_text(&text, mode & 1 == 1) {
        Err(e) => e.to_string(),
        Ok(settings) => match settings.validate() {
            Err(e) => e.to_string(),
            Ok(_) => return,
        },
    };
    assert!(!error.contains(SECRET), "password in: {error}");
});
