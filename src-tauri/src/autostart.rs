//! "Start Tusker at login": an XDG autostart entry (`~/.config/autostart`), which every Linux
//! desktop reads, starting the app in the tray so unfinished uploads resume without a window.

use std::path::{Path, PathBuf};

/// The argument an autostart launch carries: begin in the tray, no window.
pub const IN_TRAY: &str = "--in-tray";

const ENTRY: &str = "dev.tusker.app.desktop";

/// Writes or removes the entry; `config_dir` is the user's config directory.
pub fn apply(config_dir: &Path, enabled: bool) -> std::io::Result<()> {
    let path = entry_path(config_dir);
    if !enabled {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(path.parent().expect("the entry has a folder"))?;
    std::fs::write(&path, entry(&exe))
}

pub fn entry_path(config_dir: &Path) -> PathBuf {
    config_dir.join("autostart").join(ENTRY)
}

/// The entry's text, starting `exe` in the tray.
fn entry(exe: &Path) -> String {
    // Exec quoting (Desktop Entry spec): the path in double quotes, with `"`, `` ` ``, `$`
    // and `\` escaped.
    let quoted: String = exe
        .to_string_lossy()
        .chars()
        .flat_map(|c| match c {
            '"' | '`' | '$' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=Tusker\n\
         Comment=Resumes unfinished uploads at login, in the tray\n\
         Exec=\"{quoted}\" {IN_TRAY}\n\
         Icon=tusker\n\
         Terminal=false\n\
         X-GNOME-Autostart-enabled=true\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_starts_the_app_in_the_tray_and_goes_when_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), true).unwrap();
        let text = std::fs::read_to_string(entry_path(dir.path())).unwrap();
        let exe = std::env::current_exe().unwrap();
        assert!(
            text.contains(&format!("Exec=\"{}\" --in-tray\n", exe.display())),
            "{text}"
        );
        apply(dir.path(), false).unwrap();
        assert!(!entry_path(dir.path()).exists());
        apply(dir.path(), false).unwrap();
    }

    #[test]
    fn odd_characters_in_the_path_are_quoted() {
        let text = entry(Path::new("/opt/my \"apps\"/$HOME/tusker"));
        assert!(
            text.contains(r#"Exec="/opt/my \"apps\"/\$HOME/tusker" --in-tray"#),
            "{text}"
        );
    }
}
