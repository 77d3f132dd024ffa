//! What `load` and `predict` receive as JSON strings, parsed into the plugin's own types.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// `load`'s config: the MLmodel flavor being loaded and its section of the MLmodel file, as
/// the plugin's own type `S` (a `#[derive(Deserialize)]` struct with the fields it reads;
/// `serde_json::Value` to take the section as it is).
///
/// ```ignore
/// #[derive(serde::Deserialize)]
/// struct Section { data: String }
/// let config = LoadConfig::<Section>::parse(&config)?;
/// let bytes = wasmflow_plugin_sdk::read_model_file(&config.section.data)?;
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct LoadConfig<S> {
    /// The MLmodel flavor's name (one of the plugin's `loads`).
    pub flavor: String,
    /// The flavor's section of the MLmodel file.
    pub section: S,
}

impl<S: DeserializeOwned> LoadConfig<S> {
    /// Parses `load`'s argument; a section that does not fit `S` is an invalid model.
    pub fn parse(config: &str) -> Result<Self, Error> {
        serde_json::from_str(config).map_err(|e| {
            Error::invalid_model(format!(
                "the MLmodel flavor section does not fit this plugin: {e}"
            ))
        })
    }
}

/// `predict`'s params (MLflow's inference parameters, a JSON object) as the plugin's own type
/// `P`; no params give `P::default()`. Use `#[serde(default)]` on `P` so that a request may
/// set only some of them. A value that does not fit is an invalid input.
pub fn parse_params<P: DeserializeOwned + Default>(params: Option<&str>) -> Result<P, Error> {
    match params {
        None => Ok(P::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Error::invalid_input(format!("bad params {}: {e}", crate::features::clip(text)))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[derive(Deserialize, Debug)]
    struct Section {
        data: String,
        #[serde(default)]
        scale: Option<f64>,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct Params {
        threshold: f64,
        raw: bool,
    }

    #[test]
    fn load_config_is_typed() {
        let c = LoadConfig::<Section>::parse(
            r#"{"flavor": "mine", "section": {"data": "m.json", "scale": 2}}"#,
        )
        .unwrap();
        assert_eq!(
            (c.flavor.as_str(), c.section.data.as_str()),
            ("mine", "m.json")
        );
        assert_eq!(c.section.scale, Some(2.0));
        let err = LoadConfig::<Section>::parse(r#"{"flavor": "mine", "section": {}}"#).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidModel);
        assert!(
            err.message.contains("missing field `data`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn params_default_and_partial() {
        assert_eq!(parse_params::<Params>(None).unwrap(), Params::default());
        let p: Params = parse_params(Some(r#"{"threshold": 0.7}"#)).unwrap();
        assert_eq!(
            p,
            Params {
                threshold: 0.7,
                raw: false
            }
        );
        let err = parse_params::<Params>(Some(r#"{"raw": "yes"}"#)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }
}
