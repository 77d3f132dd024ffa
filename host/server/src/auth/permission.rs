//! MLflow's permissions and how a user's grants and the default permission fold into the one
//! that decides a request (`mlflow/server/auth/permissions.py`, `requirements.py` of 3.17).

use std::fmt;

use wasmflow_core::{Error, Result};
use wasmflow_store::auth::Grant;

/// Ordered by what they allow; `Deny` is an explicit veto below everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    Deny,
    NoPermissions,
    Read,
    /// Read and use (MLflow's gateway and scorers); on wasmflow's resources it reads.
    Use,
    Edit,
    Manage,
}

/// Every name, in the order MLflow lists them in its errors.
const ALL: [Permission; 6] = [
    Permission::Read,
    Permission::Use,
    Permission::Edit,
    Permission::Manage,
    Permission::NoPermissions,
    Permission::Deny,
];

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Self::Deny => "DENY",
            Self::NoPermissions => "NO_PERMISSIONS",
            Self::Read => "READ",
            Self::Use => "USE",
            Self::Edit => "EDIT",
            Self::Manage => "MANAGE",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<String> = ALL.iter().map(|p| format!("'{}'", p.name())).collect();
            Error::invalid(format!(
                "Invalid permission '{name}'. Valid permissions are: ({})",
                names.join(", ")
            ))
        })
    }

    /// A permission a grant may carry: NO_PERMISSIONS is only a default (an absent grant
    /// expresses it), as in MLflow 3.
    pub fn parse_grantable(name: &str, resource_type: &str) -> Result<Self> {
        let permission = Self::parse(name)?;
        if permission == Self::NoPermissions {
            return Err(Error::invalid(format!(
                "Invalid permission '{name}' for resource_type='{resource_type}'. \
                 Resource-level grants accept only: ('DENY', 'EDIT', 'MANAGE', 'READ', 'USE')."
            )));
        }
        Ok(permission)
    }

    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Read => self >= Self::Read,
            Access::Use => self >= Self::Use,
            Access::Update => self >= Self::Edit,
            Access::Delete | Access::Manage => self == Self::Manage,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a request does to a resource (MLflow's can_read / can_use / can_update / can_delete /
/// can_manage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Use,
    Update,
    Delete,
    Manage,
}

/// The permission on one resource from the user's grants of its type: a DENY on it (or on `*`)
/// vetoes; otherwise the highest grant, never below the default; no grant at all: the default.
/// An explicit NO_PERMISSIONS (only a default can be one) is kept, as MLflow keeps it.
pub fn effective(grants: &[Grant], resource_id: &str, default: Permission) -> Permission {
    let mut best: Option<Permission> = None;
    for grant in grants {
        if grant.resource_id != resource_id && grant.resource_id != "*" {
            continue;
        }
        // A stored name this version does not know (a newer wasmflow's) grants nothing.
        let Ok(p) = Permission::parse(&grant.permission) else {
            continue;
        };
        if p == Permission::Deny {
            return Permission::Deny;
        }
        best = Some(best.map_or(p, |b| b.max(p)));
    }
    match best {
        None => default,
        Some(Permission::NoPermissions) => Permission::NoPermissions,
        Some(p) => p.max(default),
    }
}

/// The resource types grants may name on wasmflow.
pub const RESOURCE_TYPES: [&str; 2] = ["experiment", "registered_model"];

pub fn validate_resource_type(resource_type: &str) -> Result<()> {
    if RESOURCE_TYPES.contains(&resource_type) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Invalid resource type '{resource_type}'. Valid resource types are: \
         ('experiment', 'registered_model')"
    )))
}

/// The id grants are stored and looked up under. The store reads an experiment id as an integer,
/// so "05", "+5" and "5" name one experiment; grants compared as text would miss the first two
/// (a request naming experiment "05" would escape a DENY on "5"). A name that is not an integer
/// is kept as it is: the store refuses it before anything is read.
pub fn canonical_resource_id(resource_type: &str, id: &str) -> String {
    match (resource_type, id.parse::<i64>()) {
        ("experiment", Ok(n)) => n.to_string(),
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn experiment_ids_are_compared_as_integers() {
        for id in ["5", "05", "+5", "0005"] {
            assert_eq!(canonical_resource_id("experiment", id), "5");
        }
        assert_eq!(canonical_resource_id("experiment", "*"), "*");
        assert_eq!(canonical_resource_id("registered_model", "05"), "05");
    }

    fn g(id: &str, p: &str) -> Grant {
        Grant {
            resource_type: "experiment".into(),
            resource_id: id.into(),
            permission: p.into(),
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_are_quoted() {
        for p in ALL {
            assert_eq!(Permission::parse(p.name()).unwrap(), p);
        }
        let err = Permission::parse("WRITE").unwrap_err();
        assert!(
            err.message.starts_with("Invalid permission 'WRITE'"),
            "{err:?}"
        );
        assert!(Permission::parse_grantable("NO_PERMISSIONS", "experiment").is_err());
        assert_eq!(
            Permission::parse_grantable("DENY", "experiment").unwrap(),
            Deny
        );
    }

    #[test]
    fn what_each_permission_allows() {
        let table = [
            (Deny, [false, false, false, false]),
            (NoPermissions, [false, false, false, false]),
            (Read, [true, false, false, false]),
            (Use, [true, false, false, false]),
            (Edit, [true, true, false, false]),
            (Manage, [true, true, true, true]),
        ];
        for (p, [read, update, delete, manage]) in table {
            assert_eq!(p.allows(Access::Read), read, "{p} read");
            assert_eq!(p.allows(Access::Update), update, "{p} update");
            assert_eq!(p.allows(Access::Delete), delete, "{p} delete");
            assert_eq!(p.allows(Access::Manage), manage, "{p} manage");
        }
    }

    #[test]
    fn grants_fold_with_the_default() {
        assert_eq!(effective(&[], "1", Read), Read);
        assert_eq!(effective(&[], "1", NoPermissions), NoPermissions);
        // A grant on another experiment says nothing about this one.
        assert_eq!(effective(&[g("2", "MANAGE")], "1", Read), Read);
        assert_eq!(effective(&[g("1", "EDIT")], "1", NoPermissions), Edit);
        // A positive grant never resolves below the default.
        assert_eq!(effective(&[g("1", "READ")], "1", Edit), Edit);
        // The highest of the exact and the wildcard grant.
        assert_eq!(
            effective(&[g("*", "EDIT"), g("1", "READ")], "1", NoPermissions),
            Edit
        );
        // DENY vetoes whatever else applies, and the default.
        assert_eq!(
            effective(&[g("1", "MANAGE"), g("*", "DENY")], "1", Read),
            Deny
        );
        assert_eq!(effective(&[g("1", "DENY")], "1", Manage), Deny);
        assert_eq!(effective(&[g("1", "SUPERUSER")], "1", Read), Read);
    }
}
