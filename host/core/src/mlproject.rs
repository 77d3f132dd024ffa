//! MLflow Projects: the `MLproject` file, its entry points with typed parameters, and the
//! command an entry point resolves to, as MLflow's `_project_spec.py` reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;

use crate::{Error, Result};

/// The file that describes a project.
pub const MLPROJECT_FILE: &str = "MLproject";
/// The environment files MLflow picks up in a project without an MLproject file.
pub const DEFAULT_PYTHON_ENV: &str = "python_env.yaml";
pub const DEFAULT_CONDA_ENV: &str = "conda.yaml";

/// A project directory, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The MLproject's `name`, else the directory's name.
    pub name: String,
    pub entry_points: BTreeMap<String, EntryPoint>,
    pub env: ProjectEnv,
}

/// The environment a project asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectEnv {
    /// None: the command runs where `wasmflow run` runs.
    Local,
    /// `python_env`: a python_env.yaml file, relative to the project directory.
    Python(PathBuf),
    /// `conda_env`: a conda environment file.
    Conda(PathBuf),
    /// `docker_env`: an image.
    Docker { image: String },
}

impl ProjectEnv {
    /// The name MLflow uses for the environment kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Python(_) => "python",
            Self::Conda(_) => "conda",
            Self::Docker { .. } => "docker",
        }
    }
}

/// One entry point.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPoint {
    pub name: String,
    /// Declared parameters, by name.
    pub parameters: BTreeMap<String, Parameter>,
    /// The command, with `{name}` placeholders.
    pub command: String,
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub kind: ParamType,
    pub default: Option<String>,
    /// Its place among the entry point's parameters as the MLproject file lists them (MLflow
    /// downloads a `path` parameter's URI into the storage directory's `param_<position>`).
    pub position: usize,
}

/// The schemes of the URIs a `path` parameter may be given, downloaded before the run starts (as
/// MLflow downloads them into `--storage-dir`): a web file, or artifacts of the tracking server.
pub const DOWNLOADABLE_SCHEMES: [&str; 4] = ["http", "https", "runs", "mlflow-artifacts"];

/// A `path` parameter given a URI to download: the caller brings its files here and answers the
/// local path that the command gets.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotePath {
    pub key: String,
    pub position: usize,
    pub uri: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Float,
    Int,
    String,
    Path,
    Uri,
}

impl ParamType {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "float" => Self::Float,
            "int" => Self::Int,
            "string" | "str" => Self::String,
            "path" => Self::Path,
            "uri" => Self::Uri,
            other => {
                return Err(Error::invalid(format!(
                    "unknown parameter type '{other}' (expected float, int, string, path or uri)"
                )));
            }
        })
    }
}

/// An entry point with its parameters resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedCommand {
    /// Declared parameters (given or defaulted, converted), then undeclared ones as given.
    pub parameters: Vec<(String, String)>,
    /// The command to run with `bash -c`, placeholders replaced by shell-quoted values and
    /// undeclared parameters appended as `--key value`.
    pub command: String,
}

#[derive(Deserialize)]
struct MlProjectFile {
    name: Option<String>,
    #[serde(default)]
    entry_points: BTreeMap<String, EntryPointFile>,
    python_env: Option<String>,
    conda_env: Option<String>,
    docker_env: Option<DockerEnvFile>,
}

#[derive(Deserialize)]
struct EntryPointFile {
    /// A YAML mapping keeps the file's order, which gives each parameter its position.
    #[serde(default)]
    parameters: serde_yaml_ng::Mapping,
    command: String,
}

#[derive(Deserialize)]
struct DockerEnvFile {
    image: String,
}

impl Project {
    /// Reads `dir`'s MLproject file, or describes a project without one as MLflow does (no
    /// declared entry points; the environment from python_env.yaml or conda.yaml if present).
    pub fn load(dir: &Path) -> Result<Self> {
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = dir.join(MLPROJECT_FILE);
        if !file.is_file() {
            let env = if dir.join(DEFAULT_PYTHON_ENV).is_file() {
                ProjectEnv::Python(DEFAULT_PYTHON_ENV.into())
            } else if dir.join(DEFAULT_CONDA_ENV).is_file() {
                ProjectEnv::Conda(DEFAULT_CONDA_ENV.into())
            } else {
                ProjectEnv::Local
            };
            return Ok(Self {
                name: dir_name,
                entry_points: BTreeMap::new(),
                env,
            });
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::invalid(format!("cannot read '{}': {e}", file.display())))?;
        Self::parse(&text, dir_name)
    }

    /// Parses the text of an MLproject file.
    pub fn parse(text: &str, default_name: String) -> Result<Self> {
        let spec: MlProjectFile = serde_yaml_ng::from_str(text)
            .map_err(|e| Error::invalid(format!("bad MLproject file: {e}")))?;
        let envs = [
            spec.python_env.is_some(),
            spec.conda_env.is_some(),
            spec.docker_env.is_some(),
        ];
        if envs.iter().filter(|set| **set).count() > 1 {
            return Err(Error::invalid(
                "the MLproject file names more than one of python_env, conda_env and docker_env",
            ));
        }
        let env = match (spec.python_env, spec.conda_env, spec.docker_env) {
            (Some(path), _, _) => ProjectEnv::Python(relative_path(&path, "python_env")?),
            (_, Some(path), _) => ProjectEnv::Conda(relative_path(&path, "conda_env")?),
            (_, _, Some(docker)) => ProjectEnv::Docker {
                image: docker.image,
            },
            _ => ProjectEnv::Local,
        };
        let mut entry_points = BTreeMap::new();
        for (name, entry) in spec.entry_points {
            let mut parameters = BTreeMap::new();
            for (position, (param, decl)) in entry.parameters.into_iter().enumerate() {
                let param = match param {
                    Yaml::String(param) => param,
                    other => {
                        return Err(Error::invalid(format!(
                            "entry point '{name}': a parameter name must be a string, got {other:?}"
                        )));
                    }
                };
                let parameter = parse_parameter(&decl, position).map_err(|e| {
                    Error::invalid(format!(
                        "entry point '{name}', parameter '{param}': {}",
                        e.message
                    ))
                })?;
                parameters.insert(param, parameter);
            }
            entry_points.insert(
                name.clone(),
                EntryPoint {
                    name,
                    parameters,
                    command: entry.command,
                },
            );
        }
        Ok(Self {
            name: spec.name.unwrap_or(default_name),
            entry_points,
            env,
        })
    }

    /// The entry point called `name`: a declared one, or a `.py`, `.sh` or `.wasm` file of the
    /// project run as a script (`python`, `bash`, or the `wasi` executor), as MLflow does.
    pub fn entry_point(&self, name: &str) -> Result<EntryPoint> {
        if let Some(entry) = self.entry_points.get(name) {
            return Ok(entry.clone());
        }
        let quoted = quote(name)?;
        let command = match Path::new(name).extension().and_then(|e| e.to_str()) {
            Some("py") => format!("python {quoted}"),
            Some("sh") => format!("bash {quoted}"),
            Some("wasm") => quoted,
            _ => {
                let names: Vec<&str> = self.entry_points.keys().map(String::as_str).collect();
                return Err(Error::invalid(format!(
                    "could not find '{name}' among the entry points [{}] or run it as a script \
                     (supported extensions: .py, .sh, .wasm)",
                    names.join(", ")
                )));
            }
        };
        Ok(EntryPoint {
            name: name.to_string(),
            parameters: BTreeMap::new(),
            command,
        })
    }
}

fn relative_path(path: &str, key: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() || p.components().any(|c| c.as_os_str() == "..") {
        return Err(Error::invalid(format!(
            "{key} '{path}' must be a path inside the project"
        )));
    }
    Ok(p.to_path_buf())
}

/// `name: float` or `name: {type: float, default: 0.1}`.
fn parse_parameter(decl: &Yaml, position: usize) -> Result<Parameter> {
    match decl {
        Yaml::String(kind) => Ok(Parameter {
            kind: ParamType::parse(kind)?,
            default: None,
            position,
        }),
        Yaml::Mapping(map) => {
            let kind = match map.get("type") {
                None | Some(Yaml::Null) => ParamType::String,
                Some(Yaml::String(kind)) => ParamType::parse(kind)?,
                Some(other) => {
                    return Err(Error::invalid(format!("bad type {other:?}")));
                }
            };
            let default = match map.get("default") {
                None | Some(Yaml::Null) => None,
                Some(value) => Some(scalar_text(value)?),
            };
            Ok(Parameter {
                kind,
                default,
                position,
            })
        }
        other => Err(Error::invalid(format!(
            "expected a type name or a mapping with 'type' and 'default', got {other:?}"
        ))),
    }
}

fn scalar_text(value: &Yaml) -> Result<String> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        other => Err(Error::invalid(format!(
            "a default must be a scalar, got {other:?}"
        ))),
    }
}

impl EntryPoint {
    /// Checks and converts `given` (in the order given) against the declared parameters,
    /// applies defaults, and builds the command. `path` values are made absolute (given ones
    /// against `cwd`, as MLflow does, defaults against the project directory `project`) and
    /// must exist, or are URIs of `DOWNLOADABLE_SCHEMES` that `download` brings here; `uri`
    /// values need a scheme; `float` and `int` values must parse.
    pub fn resolve(
        &self,
        given: &[(String, String)],
        cwd: &Path,
        project: &Path,
        download: &mut dyn FnMut(&RemotePath) -> Result<PathBuf>,
    ) -> Result<ResolvedCommand> {
        let mut values: BTreeMap<&str, String> = BTreeMap::new();
        let mut extra: Vec<(String, String)> = Vec::new();
        for (key, value) in given {
            match self.parameters.get(key) {
                Some(param) => {
                    let converted = convert(key, value, param, cwd, download)?;
                    values.insert(key.as_str(), converted);
                }
                None => {
                    extra.retain(|(k, _)| k != key);
                    extra.push((key.clone(), value.clone()));
                }
            }
        }
        let mut missing = Vec::new();
        for (key, param) in &self.parameters {
            if values.contains_key(key.as_str()) {
                continue;
            }
            match &param.default {
                Some(default) => {
                    let converted = convert(key, default, param, project, download)?;
                    values.insert(key.as_str(), converted);
                }
                None => missing.push(format!("'{key}'")),
            }
        }
        if !missing.is_empty() {
            return Err(Error::invalid(format!(
                "no value given for the parameters {} of entry point '{}'",
                missing.join(", "),
                self.name
            )));
        }
        let mut command = substitute(&self.command, &values)?;
        for (key, value) in &extra {
            command.push_str(&format!(" --{} {}", quote(key)?, quote(value)?));
        }
        let mut parameters: Vec<(String, String)> = values
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        parameters.extend(extra);
        Ok(ResolvedCommand {
            parameters,
            command,
        })
    }
}

fn convert(
    key: &str,
    value: &str,
    param: &Parameter,
    cwd: &Path,
    download: &mut dyn FnMut(&RemotePath) -> Result<PathBuf>,
) -> Result<String> {
    match param.kind {
        ParamType::String => Ok(value.to_string()),
        ParamType::Float => match value.trim().parse::<f64>() {
            Ok(_) => Ok(value.trim().to_string()),
            Err(_) => Err(Error::invalid(format!(
                "parameter '{key}' must be a float, got '{value}'"
            ))),
        },
        ParamType::Int => match value.trim().parse::<i64>() {
            Ok(_) => Ok(value.trim().to_string()),
            Err(_) => Err(Error::invalid(format!(
                "parameter '{key}' must be an int, got '{value}'"
            ))),
        },
        ParamType::Uri => {
            if has_scheme(value) {
                Ok(value.to_string())
            } else {
                Err(Error::invalid(format!(
                    "parameter '{key}' must be a URI with a scheme, got '{value}'"
                )))
            }
        }
        ParamType::Path => {
            if has_scheme(value) && !value.starts_with("file:") {
                let scheme = value.split_once(':').map_or("", |(s, _)| s);
                if !DOWNLOADABLE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
                    return Err(Error::invalid(format!(
                        "parameter '{key}' must be a local path or an http(s)://, runs:/ or \
                         mlflow-artifacts: URI, got '{value}'"
                    )));
                }
                let local = download(&RemotePath {
                    key: key.to_string(),
                    position: param.position,
                    uri: value.to_string(),
                })?;
                return Ok(local.display().to_string());
            }
            let path = Path::new(value.strip_prefix("file://").unwrap_or(value));
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                cwd.join(path)
            };
            if !path.exists() {
                return Err(Error::invalid(format!(
                    "parameter '{key}' is '{value}', but no such file or directory was found"
                )));
            }
            Ok(path.display().to_string())
        }
    }
}

fn has_scheme(value: &str) -> bool {
    match value.split_once(':') {
        Some((scheme, _)) => {
            scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

fn quote(value: &str) -> Result<String> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| Error::invalid(format!("cannot shell-quote '{value}' (a NUL byte?)")))
}

/// Python's `str.format` with named fields only, as MLflow formats commands: `{name}` is
/// replaced by the shell-quoted value, `{{` and `}}` are literal braces.
fn substitute(command: &str, values: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(Error::invalid(format!(
                                "unclosed '{{' in the command '{command}'"
                            )));
                        }
                    }
                }
                let value = values.get(name.trim()).ok_or_else(|| {
                    Error::invalid(format!(
                        "the command '{command}' uses '{{{name}}}', which is not a parameter of \
                         the entry point"
                    ))
                })?;
                out.push_str(&quote(value)?);
            }
            '}' => {
                return Err(Error::invalid(format!(
                    "single '}}' in the command '{command}'"
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
name: tutorial
python_env: python_env.yaml
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: float, default: 0.1}
      epochs: {type: int, default: 10}
      label: string
      data: {type: path, default: data.csv}
      source: {type: uri, default: "s3://bucket/x"}
    command: "python train.py --alpha {alpha} --l1 {l1_ratio} -n {epochs} --label {label} {data} {source}"
  braces:
    parameters:
      x: {type: string, default: "a b"}
    command: "echo {{literal}} {x}"
"#;

    /// `resolve` where no parameter names a URI to download.
    trait Locally {
        fn resolve_locally(
            &self,
            given: &[(String, String)],
            cwd: &Path,
            project: &Path,
        ) -> Result<ResolvedCommand>;
    }

    impl Locally for EntryPoint {
        fn resolve_locally(
            &self,
            given: &[(String, String)],
            cwd: &Path,
            project: &Path,
        ) -> Result<ResolvedCommand> {
            self.resolve(given, cwd, project, &mut |r| {
                panic!("unexpected download {r:?}")
            })
        }
    }

    fn project() -> Project {
        Project::parse(SPEC, "dir".into()).unwrap()
    }

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_entry_points_types_defaults_and_env() {
        let p = project();
        assert_eq!(p.name, "tutorial");
        assert_eq!(p.env, ProjectEnv::Python("python_env.yaml".into()));
        let main = &p.entry_points["main"];
        assert_eq!(main.parameters["alpha"].kind, ParamType::Float);
        assert_eq!(main.parameters["alpha"].default.as_deref(), Some("0.5"));
        assert_eq!(main.parameters["epochs"].kind, ParamType::Int);
        assert_eq!(main.parameters["label"].kind, ParamType::String);
        assert_eq!(main.parameters["label"].default, None);
        assert_eq!(main.parameters["data"].kind, ParamType::Path);
        assert_eq!(main.parameters["source"].kind, ParamType::Uri);
    }

    #[test]
    fn substitutes_quoted_values_defaults_and_extra_parameters() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.csv"), "x\n").unwrap();
        let main = project().entry_point("main").unwrap();
        let resolved = main
            .resolve_locally(
                &given(&[("label", "it's a test"), ("alpha", "0.25"), ("seed", "7 8")]),
                Path::new("/nonexistent"),
                dir.path(),
            )
            .unwrap();
        let data = dir.path().join("data.csv").display().to_string();
        assert_eq!(
            resolved.command,
            format!(
                "python train.py --alpha 0.25 --l1 0.1 -n 10 --label \"it's a test\" {data} \
                 s3://bucket/x --seed '7 8'"
            )
        );
        assert_eq!(
            resolved.parameters,
            given(&[
                ("alpha", "0.25"),
                ("data", &data),
                ("epochs", "10"),
                ("l1_ratio", "0.1"),
                ("label", "it's a test"),
                ("source", "s3://bucket/x"),
                ("seed", "7 8"),
            ])
        );
        // The quoting round-trips through a shell's word splitting.
        let words = shlex::split(&resolved.command).unwrap();
        assert_eq!(words[9], "it's a test");
        assert_eq!(words.last().unwrap(), "7 8");
    }

    #[test]
    fn refuses_badly_typed_and_missing_parameters() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.csv"), "x\n").unwrap();
        let main = project().entry_point("main").unwrap();
        let err = main
            .resolve_locally(
                &given(&[("label", "a"), ("alpha", "abc")]),
                dir.path(),
                dir.path(),
            )
            .unwrap_err();
        assert_eq!(err.message, "parameter 'alpha' must be a float, got 'abc'");
        let err = main
            .resolve_locally(
                &given(&[("label", "a"), ("epochs", "1.5")]),
                dir.path(),
                dir.path(),
            )
            .unwrap_err();
        assert_eq!(err.message, "parameter 'epochs' must be an int, got '1.5'");
        let err = main
            .resolve_locally(&[], dir.path(), dir.path())
            .unwrap_err();
        assert_eq!(
            err.message,
            "no value given for the parameters 'label' of entry point 'main'"
        );
        let err = main
            .resolve_locally(
                &given(&[("label", "a"), ("source", "no-scheme")]),
                dir.path(),
                dir.path(),
            )
            .unwrap_err();
        assert!(err.message.contains("'no-scheme'"), "{}", err.message);
        let err = main
            .resolve_locally(
                &given(&[("label", "a"), ("data", "missing.csv")]),
                dir.path(),
                dir.path(),
            )
            .unwrap_err();
        assert!(err.message.contains("'missing.csv'"), "{}", err.message);
    }

    #[test]
    fn path_uris_are_downloaded_by_the_caller_and_others_refused() {
        let spec = "entry_points:\n  main:\n    parameters:\n      zdata: path\n      \
                    amodel: {type: path, default: 'https://example.com/d/m.bin'}\n    \
                    command: \"run {zdata} {amodel}\"\n";
        let main = Project::parse(spec, "d".into()).unwrap().entry_points["main"].clone();
        // Positions follow the file, not the names' order.
        assert_eq!(main.parameters["zdata"].position, 0);
        assert_eq!(main.parameters["amodel"].position, 1);
        let mut asked = Vec::new();
        let resolved = main
            .resolve(
                &given(&[("zdata", "runs:/abc/data.csv")]),
                Path::new("/"),
                Path::new("/"),
                &mut |r| {
                    asked.push(r.clone());
                    Ok(PathBuf::from(format!("/store/param_{}/got", r.position)))
                },
            )
            .unwrap();
        assert_eq!(
            resolved.command,
            "run /store/param_0/got /store/param_1/got"
        );
        assert_eq!(
            asked,
            vec![
                RemotePath {
                    key: "zdata".into(),
                    position: 0,
                    uri: "runs:/abc/data.csv".into()
                },
                RemotePath {
                    key: "amodel".into(),
                    position: 1,
                    uri: "https://example.com/d/m.bin".into()
                },
            ]
        );
        let err = main
            .resolve(
                &given(&[("zdata", "s3://bucket/data.csv")]),
                Path::new("/"),
                Path::new("/"),
                &mut |r| panic!("unexpected download {r:?}"),
            )
            .unwrap_err();
        assert_eq!(
            err.message,
            "parameter 'zdata' must be a local path or an http(s)://, runs:/ or \
             mlflow-artifacts: URI, got 's3://bucket/data.csv'"
        );
        // A failed download fails the resolution.
        let err = main
            .resolve(
                &given(&[("zdata", "mlflow-artifacts:/1/x")]),
                Path::new("/"),
                Path::new("/"),
                &mut |_| Err(Error::invalid("the server has no 'x'")),
            )
            .unwrap_err();
        assert_eq!(err.message, "the server has no 'x'");
    }

    #[test]
    fn literal_braces_and_unknown_placeholders() {
        let p = project();
        let resolved = p.entry_points["braces"]
            .resolve_locally(&[], Path::new("/"), Path::new("/"))
            .unwrap();
        assert_eq!(resolved.command, "echo {literal} 'a b'");
        let bad = Project::parse(
            "entry_points:\n  main:\n    command: \"run {nope}\"\n",
            "d".into(),
        )
        .unwrap();
        let err = bad.entry_points["main"]
            .resolve_locally(&[], Path::new("/"), Path::new("/"))
            .unwrap_err();
        assert!(err.message.contains("'{nope}'"), "{}", err.message);
    }

    #[test]
    fn scripts_without_an_mlproject_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("python_env.yaml"), "python: '3.11'\n").unwrap();
        let p = Project::load(dir.path()).unwrap();
        assert!(p.entry_points.is_empty());
        assert_eq!(p.env, ProjectEnv::Python("python_env.yaml".into()));
        let train = p.entry_point("train.py").unwrap();
        let resolved = train
            .resolve_locally(&given(&[("alpha", "0.1")]), dir.path(), dir.path())
            .unwrap();
        assert_eq!(resolved.command, "python train.py --alpha 0.1");
        assert_eq!(
            p.entry_point("run me.sh").unwrap().command,
            "bash 'run me.sh'"
        );
        assert_eq!(p.entry_point("train.wasm").unwrap().command, "train.wasm");
        let err = p.entry_point("main").unwrap_err();
        assert!(err.message.contains("'main'"), "{}", err.message);
    }

    #[test]
    fn environments() {
        let conda = Project::parse("conda_env: env.yaml\n", "d".into()).unwrap();
        assert_eq!(conda.env, ProjectEnv::Conda("env.yaml".into()));
        let docker = Project::parse("docker_env:\n  image: my/img:1\n", "d".into()).unwrap();
        assert_eq!(
            docker.env,
            ProjectEnv::Docker {
                image: "my/img:1".into()
            }
        );
        assert!(Project::parse("python_env: a.yaml\nconda_env: b.yaml\n", "d".into()).is_err());
        assert!(Project::parse("python_env: ../a.yaml\n", "d".into()).is_err());
    }
}
