//! The basic-auth app's users and grants, on every backend.

use wasmflow_core::ErrorCode;
use wasmflow_store::AuthStore;
use wasmflow_store::auth::Grant;

mod common;

fn grant(t: &str, id: &str, p: &str) -> Grant {
    Grant {
        resource_type: t.into(),
        resource_id: id.into(),
        permission: p.into(),
    }
}

#[test]
fn users_round_trip() {
    each_backend!(|s| {
        let alice = s.create_user("alice", "$argon2id$x", false).unwrap();
        assert_eq!(s.get_user("alice").unwrap(), alice);
        let err = s.create_user("alice", "h", true).unwrap_err();
        assert_eq!(err.code, ErrorCode::ResourceAlreadyExists);
        assert_eq!(err.message, "User (username=alice) already exists.");
        assert_eq!(
            s.get_user("bob").unwrap_err().message,
            "User with username=bob not found"
        );
        let bob = s.create_user("bob", "hb", true).unwrap();
        assert!(bob.is_admin && bob.id != alice.id);
        // Only the fields given change.
        s.update_user("alice", None, Some(true)).unwrap();
        assert_eq!(s.get_user("alice").unwrap().password_hash, "$argon2id$x");
        s.update_user("alice", Some("$argon2id$y"), None).unwrap();
        let a = s.get_user("alice").unwrap();
        assert_eq!(
            (a.password_hash.as_str(), a.is_admin),
            ("$argon2id$y", true)
        );
        s.update_user("alice", None, Some(false)).unwrap();
        assert!(!s.get_user("alice").unwrap().is_admin);
        assert_eq!(
            s.update_user("carol", None, Some(true)).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        let names: Vec<String> = s
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        s.delete_user("alice").unwrap();
        assert!(s.find_user("alice").unwrap().is_none());
        assert_eq!(
            s.delete_user("alice").unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        assert_eq!(s.list_users().unwrap(), vec![bob]);
    });
}

#[test]
fn grants_follow_users_and_resources() {
    each_backend!(|s| {
        let alice = s.create_user("alice", "h", false).unwrap();
        let bob = s.create_user("bob", "h", false).unwrap();
        s.grant("alice", &grant("experiment", "1", "READ")).unwrap();
        let err = s
            .grant("alice", &grant("experiment", "1", "EDIT"))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ResourceAlreadyExists);
        assert_eq!(
            err.message,
            "Permission for user=alice on resource_type=experiment, resource_id=1 already exists."
        );
        assert_eq!(
            s.grant("carol", &grant("experiment", "1", "READ"))
                .unwrap_err()
                .code,
            ErrorCode::ResourceDoesNotExist
        );
        s.set_grant(alice.id, &grant("experiment", "1", "MANAGE"))
            .unwrap();
        s.set_grant(alice.id, &grant("registered_model", "m", "EDIT"))
            .unwrap();
        s.set_grant(alice.id, &grant("experiment", "2", "READ"))
            .unwrap();
        assert_eq!(
            s.grants(alice.id, "experiment").unwrap(),
            vec![
                grant("experiment", "1", "MANAGE"),
                grant("experiment", "2", "READ")
            ]
        );
        assert_eq!(
            s.all_grants(alice.id).unwrap(),
            vec![
                grant("experiment", "1", "MANAGE"),
                grant("experiment", "2", "READ"),
                grant("registered_model", "m", "EDIT"),
            ]
        );
        assert!(s.all_grants(bob.id).unwrap().is_empty());
        s.rename_grants("registered_model", "m", "m2").unwrap();
        assert_eq!(
            s.grants(alice.id, "registered_model").unwrap(),
            vec![grant("registered_model", "m2", "EDIT")]
        );
        // A user with grants on both names keeps the moved one; others keep theirs.
        s.set_grant(alice.id, &grant("registered_model", "m3", "READ"))
            .unwrap();
        s.set_grant(bob.id, &grant("registered_model", "m3", "MANAGE"))
            .unwrap();
        s.rename_grants("registered_model", "m2", "m3").unwrap();
        assert_eq!(
            s.grants(alice.id, "registered_model").unwrap(),
            vec![grant("registered_model", "m3", "EDIT")]
        );
        assert_eq!(
            s.grants(bob.id, "registered_model").unwrap(),
            vec![grant("registered_model", "m3", "MANAGE")]
        );
        s.delete_grants("registered_model", "m3").unwrap();
        assert!(s.grants(alice.id, "registered_model").unwrap().is_empty());
        assert!(s.grants(bob.id, "registered_model").unwrap().is_empty());
        s.revoke("alice", "experiment", "1").unwrap();
        assert_eq!(
            s.revoke("alice", "experiment", "1").unwrap_err().message,
            "Permission for user=alice on resource_type=experiment, resource_id=1 not found."
        );
        s.set_grant(alice.id, &grant("experiment", "*", "READ"))
            .unwrap();
        s.delete_user("alice").unwrap();
        let again = s.create_user("alice", "h", false).unwrap();
        assert!(s.all_grants(again.id).unwrap().is_empty());
    });
}
