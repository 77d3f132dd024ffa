//! LightGBM's and XGBoost's scikit-learn estimators inside a skops file. Owned by the xgboost
//! helper; this stub refuses them.

use wasmflow_skops::Node;

use crate::{Error, Estimator};

/// Builds an LGBMClassifier, LGBMRegressor, XGBClassifier or XGBRegressor from its skops node.
pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    Err(Error::unsupported(format!(
        "{} is not supported yet",
        node.qualname()
    )))
}
