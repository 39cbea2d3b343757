//! Human or JSON output of a command's result.

use serde::Serialize;

pub fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("tpm-keyctl: error: cannot format JSON: {e}"),
        }
    } else {
        let text = human(value);
        if !text.is_empty() {
            println!("{text}");
        }
    }
}
