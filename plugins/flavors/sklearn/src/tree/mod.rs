//! Decision trees and tree ensembles. Owned by the trees helper; this stub refuses them.

use wasmflow_skops::Node;

use crate::{Error, Estimator};

/// Builds a DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting* or
/// HistGradientBoosting* estimator from its skops node.
pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    Err(Error::unsupported(format!(
        "{} is not supported yet",
        node.qualname()
    )))
}
