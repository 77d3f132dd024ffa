//! Response bodies serialized straight from the entities: building a `serde_json::Value` first
//! would copy every metric of a 50,000-point history once more.

use serde::ser::{Serialize, SerializeMap, Serializer};
use wasmflow_core::paging::Page;

/// `{"<field>": value}`.
pub struct One<T>(pub &'static str, pub T);

impl<T: Serialize> Serialize for One<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

/// `{"<field>": [items], "next_page_token": "..."}`, the token only when there is a next page.
pub struct Paged<T>(pub &'static str, pub Page<T>);

impl<T: Serialize> Serialize for Paged<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(self.0, &self.1.items)?;
        if let Some(token) = &self.1.next_page_token {
            map.serialize_entry("next_page_token", token)?;
        }
        map.end()
    }
}
