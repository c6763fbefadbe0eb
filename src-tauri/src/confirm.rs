//! Native confirmations: the window is untrusted, so a change that sends files or secrets
//! somewhere new, or runs a command, is asked of the person in a system dialog the window
//! cannot answer. What the dialog shows is made plain first: control and bidirectional
//! characters (which can hide or reorder text) appear as visible codes.

use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};

use crate::errors::{CmdError, CmdResult};

/// Most characters of one value a dialog shows: padding must not push the end of a command
/// out of sight unnoticed.
const SHOWN: usize = 600;

/// `text` with every control character, bidirectional mark, invisible format character and
/// space other than the plain one shown as `<U+XXXX>` (a newline as `<LF>`), cut after
/// [`SHOWN`] characters with the rest counted, so a dialog shows what will really be used.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(SHOWN * 2));
    let total = text.chars().count();
    for c in text.chars().take(SHOWN) {
        let hidden = c.is_control()
            || (c.is_whitespace() && c != ' ')
            || matches!(c,
                '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
                | '\u{061C}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}' | '\u{034F}'
                | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{2800}'
                | '\u{3164}' | '\u{FFA0}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFF0}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E0FFF}');
        match c {
            '\n' => out.push_str("<LF>"),
            '\r' => out.push_str("<CR>"),
            '\t' => out.push_str("<TAB>"),
            c if hidden => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    if total > SHOWN {
        out.push_str(&format!("… ({} more characters)", total - SHOWN));
    }
    out
}

/// Asks the person in a system dialog; `Ok` only when they chose `yes`. `refused` is the
/// message the window gets otherwise.
pub async fn ask(
    app: &tauri::AppHandle,
    title: &str,
    message: String,
    yes: &str,
    refused: &str,
) -> CmdResult<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .message(message)
        .title(title)
        .kind(MessageDialogKind::Warning)
        .buttons(MessageDialogButtons::OkCancelCustom(
            yes.into(),
            "Cancel".into(),
        ))
        .show(move |ok| {
            let _ = tx.send(ok);
        });
    if rx.await.unwrap_or(false) {
        tracing::info!(%title, "confirmed in the system dialog");
        Ok(())
    } else {
        Err(CmdError {
            code: "not_confirmed",
            message: refused.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn hidden_characters_are_shown() {
        assert_eq!(visible("get-token --x"), "get-token --x");
        assert_eq!(visible("echo ok\n curl evil"), "echo ok<LF> curl evil");
        // A right-to-left override can make "cod.exe" read as "exe.doc".
        assert_eq!(visible("a\u{202E}cod.exe"), "a<U+202E>cod.exe");
        assert_eq!(
            visible("x\u{2066}y\u{200B}z\u{7}"),
            "x<U+2066>y<U+200B>z<U+0007>"
        );
        assert_eq!(visible("tab\there"), "tab<TAB>here");
        assert_eq!(
            visible("a\u{2028}b\u{3164}c\u{E0041}"),
            "a<U+2028>b<U+3164>c<U+E0041>"
        );
        let padded = format!("get-token{}; curl evil", " ".repeat(700));
        let shown = visible(&padded);
        assert!(shown.ends_with("… (120 more characters)"), "{shown}");
    }
}
