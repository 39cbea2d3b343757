//! `tpmd-docgen ROOT [--date YYYY-MM-DD]`: writes the man pages and the bash, zsh and fish
//! completions of tpmd's four binaries under ROOT, in the Debian layout
//! (`usr/share/man/man1`, `usr/share/bash-completion/completions`,
//! `usr/share/zsh/vendor-completions`, `usr/share/fish/vendor_completions.d`).
//!
//! Each page comes from the binary's own clap definition, so pages and completions
//! cannot drift from the options. tpmd's is in its library; the other binaries keep
//! theirs in a `cli.rs` of std and clap only, compiled in here by path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use clap_complete::Shell;

#[allow(dead_code)]
#[path = "../../../tpm-keyctl/src/cli.rs"]
mod tpm_keyctl;

#[allow(dead_code)]
#[path = "../../../ssh-agent/src/cli.rs"]
mod ssh_agent;

#[allow(dead_code)]
#[path = "../../../simulator/src/cli.rs"]
mod simulator;

/// Write man pages and shell completions for tpmd's binaries.
#[derive(Debug, Parser)]
#[command(name = "tpmd-docgen", version)]
struct Args {
    /// The package's root directory (usr/share/... are created under it).
    root: PathBuf,
    /// The date printed in the man pages' footer (YYYY-MM-DD), e.g. the release's.
    #[arg(long, default_value = "")]
    date: String,
}

fn commands() -> Vec<clap::Command> {
    vec![
        tpmd::cli::Args::command(),
        tpm_keyctl::Args::command(),
        ssh_agent::Cli::command(),
        simulator::Args::command(),
    ]
}

fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, contents)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// One page for the command and one for each visible subcommand, like git's
/// (`tpm-keyctl-wrap.1`), each naming its subcommands' pages.
fn write_man_pages(cmd: clap::Command, dir: &Path, args: &Args) -> io::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    write_man_page_tree(cmd, dir, args)
}

fn write_man_page_tree(cmd: clap::Command, dir: &Path, args: &Args) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_page_tree(sub.clone(), dir, args)?;
    }
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let man = clap_mangen::Man::new(cmd)
        .date(args.date.clone())
        .source(format!("tpmd {version}"))
        .manual("tpmd");
    let mut page = Vec::new();
    man.render(&mut page)?;
    write(&dir.join(man.get_filename()), &page)
}

fn write_completions(mut cmd: clap::Command, root: &Path) -> io::Result<()> {
    let name = cmd.get_name().to_owned();
    let targets = [
        (
            Shell::Bash,
            format!("usr/share/bash-completion/completions/{name}"),
        ),
        (
            Shell::Zsh,
            format!("usr/share/zsh/vendor-completions/_{name}"),
        ),
        (
            Shell::Fish,
            format!("usr/share/fish/vendor_completions.d/{name}.fish"),
        ),
    ];
    for (shell, path) in targets {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut script);
        write(&root.join(path), &script)?;
    }
    Ok(())
}

fn run(args: &Args) -> io::Result<()> {
    let man_dir = args.root.join("usr/share/man/man1");
    for cmd in commands() {
        write_man_pages(cmd.clone(), &man_dir, args)?;
        write_completions(cmd, &args.root)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpmd-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Every long option of every (sub)command, with the page that must describe it.
    fn options_by_page(cmd: &clap::Command, page: &str, out: &mut Vec<(String, String)>) {
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                out.push((page.to_owned(), format!("--{long}")));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            options_by_page(sub, &format!("{page}-{}", sub.get_name()), out);
        }
    }

    #[test]
    fn each_binary_gets_its_pages_and_completions() {
        let root = tempfile::tempdir().unwrap();
        let args = Args {
            root: root.path().to_owned(),
            date: "2026-01-01".into(),
        };
        run(&args).unwrap();
        for cmd in commands() {
            cmd.clone().debug_assert();
            let name = cmd.get_name().to_owned();
            for path in [
                format!("usr/share/bash-completion/completions/{name}"),
                format!("usr/share/zsh/vendor-completions/_{name}"),
                format!("usr/share/fish/vendor_completions.d/{name}.fish"),
            ] {
                let script = fs::read_to_string(root.path().join(&path)).unwrap();
                assert!(script.contains(&name), "{path} does not complete {name}");
            }
            let mut options = Vec::new();
            options_by_page(&cmd, &name, &mut options);
            assert!(!options.is_empty(), "{name} has no options");
            for (page, option) in options {
                let file = root.path().join(format!("usr/share/man/man1/{page}.1"));
                let text =
                    fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                // roff escapes each dash of an option.
                let escaped = option.replace('-', "\\-");
                assert!(
                    text.contains(&escaped),
                    "{page}(1) does not describe {option}"
                );
                assert!(text.contains(".TH"), "{page}(1) has no title");
            }
        }
    }
}
