//! `wasmflow plugins new NAME --lang rust|python|javascript|c`: a plugin project outside this
//! repository that builds as it is. The templates (`host/server/plugin-templates/<lang>`) are
//! embedded in the binary; the WIT they build against is the SDK's copy
//! (`plugins/sdk/wit/plugin.wit`) and the C template's JSON reader is the C example's, both
//! embedded from their one place in the repository rather than kept twice.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use include_dir::{Dir, include_dir};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/plugin-templates");
const PLUGIN_WIT: &str = include_str!("../../../../plugins/sdk/wit/plugin.wit");
const JSON_C: &str = include_str!("../../../../examples/plugins/c/json.c");
const JSON_H: &str = include_str!("../../../../examples/plugins/c/json.h");

/// Where the Rust template takes the SDK from when neither `--sdk` nor `WASMFLOW_PLUGIN_SDK`
/// names a local copy: the project's repository (the crate is not on crates.io yet).
const SDK_GIT: &str = "https://github.com/wasmflow/wasmflow";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Javascript,
    C,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Javascript => "javascript",
            Lang::C => "c",
        }
    }
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits, `-` and `_`, starting with a letter. The
    /// MLmodel flavor it loads is the name with `-` as `_`.
    name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The project's directory (created; must not exist or be empty); `./NAME` by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rust: a local wasmflow-plugin-sdk (the `plugins/sdk` folder of a wasmflow checkout) to
    /// depend on by path, instead of the git repository.
    #[arg(long, env = "WASMFLOW_PLUGIN_SDK")]
    sdk: Option<PathBuf>,
}

pub fn run(args: NewArgs) -> anyhow::Result<PathBuf> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read '{}'", dir.display()))?
            .next()
            .is_some()
    {
        bail!("'{}' exists and is not empty", dir.display());
    }
    let (sdk_dependency, sdk_note) = sdk_dependency(args.lang, args.sdk.as_deref())?;
    let vars = [
        ("{{name}}", args.name.clone()),
        ("{{flavor}}", args.name.replace('-', "_")),
        ("{{crate}}", args.name.replace('-', "_")),
        ("{{sdk_dependency}}", sdk_dependency),
        ("{{sdk_note}}", sdk_note),
    ];
    let template = TEMPLATES
        .get_dir(args.lang.dir())
        .with_context(|| format!("no template for '{}'", args.lang.dir()))?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    collect(template, Path::new(args.lang.dir()), &mut files)?;
    match args.lang {
        Lang::Rust => {} // the SDK crate carries the WIT
        Lang::Python => files.push(("wit/plugin.wit".into(), PLUGIN_WIT.into())),
        Lang::Javascript => files.push(("wit/deps/plugin/plugin.wit".into(), PLUGIN_WIT.into())),
        Lang::C => files.extend([
            ("wit/plugin.wit".into(), PLUGIN_WIT.into()),
            ("json.c".into(), JSON_C.into()),
            ("json.h".into(), JSON_H.into()),
        ]),
    }
    for (rel, text) in files {
        let text = vars
            .iter()
            .fold(text, |text, (key, value)| text.replace(key, value));
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create '{}'", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write '{}'", path.display()))?;
        if rel.extension().is_some_and(|e| e == "sh") {
            make_executable(&path)?;
        }
    }
    Ok(dir)
}

/// The template's files with paths relative to the template's root (`strip`).
fn collect(dir: &Dir<'_>, strip: &Path, out: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
    for file in dir.files() {
        let rel = file.path().strip_prefix(strip)?.to_path_buf();
        let text = file
            .contents_utf8()
            .with_context(|| format!("template file '{}' is not UTF-8", rel.display()))?;
        out.push((rel, text.to_string()));
    }
    for sub in dir.dirs() {
        collect(sub, strip, out)?;
    }
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "invalid plugin name '{name}': use lowercase letters, digits, '-' and '_', starting with a letter"
        );
    }
    Ok(())
}

/// The Rust template's dependency line and the README's note on it.
fn sdk_dependency(lang: Lang, sdk: Option<&Path>) -> anyhow::Result<(String, String)> {
    let Some(sdk) = sdk.filter(|_| lang == Lang::Rust) else {
        return Ok((
            format!("wasmflow-plugin-sdk = {{ git = \"{SDK_GIT}\" }}"),
            format!(
                "The SDK (`wasmflow-plugin-sdk`, with wasmflow's WIT inside it) comes from {SDK_GIT} \
                 (its `plugins/sdk` folder). Pin it with `rev = \"...\"` to the commit of your server, \
                 or use a local checkout: `wasmflow plugins new --sdk PATH/plugins/sdk` writes a \
                 `path` dependency instead."
            ),
        ));
    };
    let manifest = sdk.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("--sdk: cannot read '{}'", manifest.display()))?;
    if !text.contains("name = \"wasmflow-plugin-sdk\"") {
        bail!(
            "--sdk: '{}' is not the wasmflow-plugin-sdk crate (the plugins/sdk folder of wasmflow)",
            sdk.display()
        );
    }
    let path = std::fs::canonicalize(sdk)
        .with_context(|| format!("--sdk: cannot resolve '{}'", sdk.display()))?;
    let path = path.to_string_lossy().replace('\\', "/");
    Ok((
        format!("wasmflow-plugin-sdk = {{ path = \"{path}\" }}"),
        format!("The SDK (`wasmflow-plugin-sdk`) is the local copy at `{path}`."),
    ))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make '{}' executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("my-scorer_2").is_ok());
        for bad in ["", "2x", "My", "a b", "a/b", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_language_writes_a_project_with_no_placeholder_left() {
        let tmp = std::env::temp_dir().join(format!("wasmflow-new-{}", std::process::id()));
        for lang in [Lang::Rust, Lang::Python, Lang::Javascript, Lang::C] {
            let dir = tmp.join(lang.dir());
            run(NewArgs {
                name: "my-scorer".into(),
                lang,
                dir: Some(dir.clone()),
                sdk: None,
            })
            .unwrap();
            let mut files = Vec::new();
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        files.push(p);
                    }
                }
            }
            assert!(files.iter().any(|f| f.ends_with("README.md")));
            for f in &files {
                let text = std::fs::read_to_string(f).unwrap();
                assert!(!text.contains("{{"), "{} keeps a placeholder", f.display());
            }
            let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
            assert!(readme.contains("wasmflow plugins install"), "{readme}");
            // A second run into the same, now non-empty, directory is refused.
            assert!(
                run(NewArgs {
                    name: "my-scorer".into(),
                    lang,
                    dir: Some(dir),
                    sdk: None,
                })
                .is_err()
            );
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
