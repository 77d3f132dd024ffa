//! Evaluation datasets in SQLite, and the [`EvalDatasetStore`] implementation.

use rusqlite::{Connection, OptionalExtension, params};
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::{Error, Result};

use super::search_sql::SqlQuery;
use super::tracking::json_list;
use super::{SqliteStore, now_ms, sql_err};
use crate::eval_datasets::{
    DATASET_COLUMNS, DatasetUpdate, EvalDataset, EvalDatasetSearch, EvalDatasetStore, NewRecord,
    RECORD_COLUMNS, RecordCursor, RecordsPage, UpsertCounts, check_name, creator, dataset_digest,
    dataset_from_row, dataset_not_found, dataset_not_found_short, experiment_not_found,
    new_dataset_id, profile_after_delete, record_from_row, records_page as page_of, search_query,
    upserted,
};
use crate::search_sql::Dialect;

fn find_dataset(conn: &Connection, dataset_id: &str) -> Result<Option<EvalDataset>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {DATASET_COLUMNS} FROM evaluation_datasets d WHERE d.dataset_id = ?1"
        ))
        .map_err(sql_err)?
        .query_row([dataset_id], |r| dataset_from_row(r))
        .optional()
        .map_err(sql_err)?;
    let Some(mut dataset) = found else {
        return Ok(None);
    };
    dataset.tags = dataset_tags(conn, dataset_id)?;
    Ok(Some(dataset))
}

fn load_dataset(conn: &Connection, dataset_id: &str) -> Result<EvalDataset> {
    find_dataset(conn, dataset_id)?.ok_or_else(|| dataset_not_found(dataset_id))
}

fn dataset_tags(conn: &Connection, dataset_id: &str) -> Result<Vec<(String, String)>> {
    conn.prepare_cached(
        "SELECT key, value FROM evaluation_dataset_tags WHERE dataset_id = ?1 ORDER BY key",
    )
    .map_err(sql_err)?
    .query_map([dataset_id], |r| Ok((r.get(0)?, r.get(1)?)))
    .map_err(sql_err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(sql_err)
}

fn put_tag(conn: &Connection, dataset_id: &str, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO evaluation_dataset_tags (dataset_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (dataset_id, key) DO UPDATE SET value = excluded.value",
    )
    .map_err(sql_err)?
    .execute(params![dataset_id, key, value])
    .map_err(sql_err)?;
    Ok(())
}

/// The experiments' ids as integers, each of an existing experiment (deleted ones included, as
/// MLflow looks them up).
fn existing_experiments(conn: &Connection, experiment_ids: &[String]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(experiment_ids.len());
    for text in experiment_ids {
        let id: i64 = text
            .trim()
            .parse()
            .map_err(|_| experiment_not_found(text))?;
        let exists = conn
            .prepare_cached("SELECT 1 FROM experiments WHERE experiment_id = ?1")
            .map_err(sql_err)?
            .exists([id])
            .map_err(sql_err)?;
        if !exists {
            return Err(experiment_not_found(text));
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn link(conn: &Connection, dataset_id: &str, experiment_id: i64, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO evaluation_dataset_experiments (dataset_id, experiment_id, created_time)
         VALUES (?1, ?2, ?3) ON CONFLICT (dataset_id, experiment_id) DO NOTHING",
    )
    .map_err(sql_err)?
    .execute(params![dataset_id, experiment_id, now])
    .map_err(sql_err)?;
    Ok(())
}

fn experiment_ids(conn: &Connection, dataset_id: &str) -> Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT experiment_id FROM evaluation_dataset_experiments WHERE dataset_id = ?1
         ORDER BY created_time, experiment_id",
    )
    .map_err(sql_err)?
    .query_map([dataset_id], |r| r.get::<_, i64>(0))
    .map_err(sql_err)?
    .map(|id| id.map(|id| id.to_string()))
    .collect::<rusqlite::Result<_>>()
    .map_err(sql_err)
}

fn create(
    conn: &Connection,
    name: &str,
    tags: &[(String, String)],
    experiments: &[String],
) -> Result<EvalDataset> {
    check_name(name)?;
    let experiments = existing_experiments(conn, experiments)?;
    let dataset_id = new_dataset_id();
    let now = now_ms();
    let user = creator(tags);
    conn.prepare_cached(
        "INSERT INTO evaluation_datasets (dataset_id, name, digest, created_time,
             last_update_time, created_by, last_updated_by)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?5)",
    )
    .map_err(sql_err)?
    .execute(params![
        dataset_id,
        name,
        dataset_digest(name, now),
        now,
        user
    ])
    .map_err(sql_err)?;
    for (key, value) in tags {
        put_tag(conn, &dataset_id, key, value)?;
    }
    for id in &experiments {
        link(conn, &dataset_id, *id, now)?;
    }
    let mut dataset = load_dataset(conn, &dataset_id)?;
    dataset.experiment_ids = experiments.iter().map(i64::to_string).collect();
    Ok(dataset)
}

fn search(conn: &Connection, search: &EvalDatasetSearch) -> Result<Page<EvalDataset>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let query = SqlQuery::from(search_query(search, offset, Dialect::Sqlite)?);
    let rows = query.rows(conn, |r| dataset_from_row(r))?;
    let mut page = Page::from_overfetched(rows, offset, search.max_results);
    for dataset in &mut page.items {
        dataset.tags = dataset_tags(conn, &dataset.dataset_id)?;
    }
    Ok(page)
}

fn count_records(conn: &Connection, dataset_id: &str) -> Result<u64> {
    conn.prepare_cached("SELECT COUNT(*) FROM evaluation_dataset_records WHERE dataset_id = ?1")
        .map_err(sql_err)?
        .query_row([dataset_id], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(sql_err)
}

fn upsert(conn: &Connection, dataset_id: &str, records: &[NewRecord]) -> Result<UpsertCounts> {
    let dataset = load_dataset(conn, dataset_id)?;
    let now = now_ms();
    let mut counts = UpsertCounts {
        inserted: 0,
        updated: 0,
    };
    for record in records {
        let hash = record.input_hash();
        let existing = conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM evaluation_dataset_records
                 WHERE dataset_id = ?1 AND input_hash = ?2"
            ))
            .map_err(sql_err)?
            .query_row(params![dataset_id, hash], |r| record_from_row(r))
            .optional()
            .map_err(sql_err)?;
        let (stored, new) = upserted(dataset_id, existing, record, now);
        if new {
            conn.prepare_cached(&format!(
                "INSERT INTO evaluation_dataset_records ({RECORD_COLUMNS}, input_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))
            .map_err(sql_err)?
            .execute(params![
                stored.dataset_record_id,
                stored.dataset_id,
                stored.inputs,
                stored.outputs,
                stored.expectations,
                stored.tags,
                stored.source,
                stored.source_id,
                stored.source_type,
                stored.created_time,
                stored.last_update_time,
                stored.created_by,
                stored.last_updated_by,
                hash
            ])
            .map_err(sql_err)?;
            counts.inserted += 1;
        } else {
            conn.prepare_cached(
                "UPDATE evaluation_dataset_records SET outputs = ?2, expectations = ?3,
                     tags = ?4, last_update_time = ?5, last_updated_by = ?6
                 WHERE dataset_record_id = ?1",
            )
            .map_err(sql_err)?
            .execute(params![
                stored.dataset_record_id,
                stored.outputs,
                stored.expectations,
                stored.tags,
                stored.last_update_time,
                stored.last_updated_by
            ])
            .map_err(sql_err)?;
            counts.updated += 1;
        }
    }
    let update =
        DatasetUpdate::after_upsert(&dataset, records, count_records(conn, dataset_id)?, now);
    conn.prepare_cached(
        "UPDATE evaluation_datasets SET last_update_time = ?2, last_updated_by = ?3,
             digest = ?4, schema_json = ?5, profile = ?6
         WHERE dataset_id = ?1",
    )
    .map_err(sql_err)?
    .execute(params![
        dataset_id,
        now,
        update.last_updated_by,
        update.digest,
        update.schema,
        update.profile
    ])
    .map_err(sql_err)?;
    Ok(counts)
}

fn records_page(
    conn: &Connection,
    dataset_id: &str,
    max_results: usize,
    after: Option<&RecordCursor>,
) -> Result<RecordsPage> {
    let (after_time, after_id) = match after {
        Some((t, id)) => (Some(*t), id.as_str()),
        None => (None, ""),
    };
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM evaluation_dataset_records
             WHERE dataset_id = ?1
               AND (?2 IS NULL OR created_time > ?2
                    OR (created_time = ?2 AND dataset_record_id > ?3))
             ORDER BY created_time, dataset_record_id LIMIT ?4"
        ))
        .map_err(sql_err)?
        .query_map(
            params![dataset_id, after_time, after_id, max_results as i64 + 1],
            |r| record_from_row(r),
        )
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    Ok(page_of(rows, max_results))
}

fn delete_records(conn: &Connection, dataset_id: &str, ids: &[String]) -> Result<u64> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM evaluation_dataset_records
             WHERE dataset_id = ?1 AND dataset_record_id IN (SELECT value FROM json_each(?2))",
        )
        .map_err(sql_err)?
        .execute(params![dataset_id, json_list(ids)])
        .map_err(sql_err)? as u64;
    if deleted > 0 {
        let profile = profile_after_delete(count_records(conn, dataset_id)?);
        conn.prepare_cached("UPDATE evaluation_datasets SET profile = ?2 WHERE dataset_id = ?1")
            .map_err(sql_err)?
            .execute(params![dataset_id, profile])
            .map_err(sql_err)?;
    }
    Ok(deleted)
}

fn touch(conn: &Connection, dataset_id: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE evaluation_datasets SET last_update_time = ?2 WHERE dataset_id = ?1",
    )
    .map_err(sql_err)?
    .execute(params![dataset_id, now_ms()])
    .map_err(sql_err)?;
    Ok(())
}

fn add_experiments(conn: &Connection, dataset_id: &str, ids: &[String]) -> Result<EvalDataset> {
    if find_dataset(conn, dataset_id)?.is_none() {
        return Err(dataset_not_found_short(dataset_id));
    }
    let now = now_ms();
    for id in existing_experiments(conn, ids)? {
        link(conn, dataset_id, id, now)?;
    }
    touch(conn, dataset_id)?;
    load_dataset(conn, dataset_id)
}

fn remove_experiments(conn: &Connection, dataset_id: &str, ids: &[String]) -> Result<EvalDataset> {
    if find_dataset(conn, dataset_id)?.is_none() {
        return Err(dataset_not_found_short(dataset_id));
    }
    let removed = conn
        .prepare_cached(
            "DELETE FROM evaluation_dataset_experiments
             WHERE dataset_id = ?1
               AND CAST(experiment_id AS TEXT) IN (SELECT value FROM json_each(?2))",
        )
        .map_err(sql_err)?
        .execute(params![dataset_id, json_list(ids)])
        .map_err(sql_err)?;
    if removed > 0 {
        touch(conn, dataset_id)?;
    }
    load_dataset(conn, dataset_id)
}

impl EvalDatasetStore for SqliteStore {
    fn create_eval_dataset(
        &self,
        name: &str,
        tags: Vec<(String, String)>,
        experiment_ids: Vec<String>,
    ) -> Result<EvalDataset> {
        let name = name.to_string();
        self.write(move |c| create(c, &name, &tags, &experiment_ids))
    }

    fn get_eval_dataset(&self, dataset_id: &str) -> Result<EvalDataset> {
        self.read(|c| load_dataset(c, dataset_id))
    }

    fn delete_eval_dataset(&self, dataset_id: &str) -> Result<()> {
        let id = dataset_id.to_string();
        self.write(move |c| {
            // Records, tags and links go by ON DELETE CASCADE.
            c.prepare_cached("DELETE FROM evaluation_datasets WHERE dataset_id = ?1")
                .map_err(sql_err)?
                .execute([&id])
                .map_err(sql_err)?;
            Ok(())
        })
    }

    fn search_eval_datasets(&self, search: &EvalDatasetSearch) -> Result<Page<EvalDataset>> {
        self.read(|c| self::search(c, search))
    }

    fn set_eval_dataset_tags(&self, dataset_id: &str, tags: Vec<(String, String)>) -> Result<()> {
        let id = dataset_id.to_string();
        self.write(move |c| {
            if find_dataset(c, &id)?.is_none() {
                return Err(Error::not_found(format!(
                    "Could not find evaluation dataset with ID {id}"
                )));
            }
            for (key, value) in &tags {
                put_tag(c, &id, key, value)?;
            }
            Ok(())
        })
    }

    fn delete_eval_dataset_tag(&self, dataset_id: &str, key: &str) -> Result<()> {
        let (id, key) = (dataset_id.to_string(), key.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM evaluation_dataset_tags WHERE dataset_id = ?1 AND key = ?2",
            )
            .map_err(sql_err)?
            .execute(params![id, key])
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn upsert_eval_dataset_records(
        &self,
        dataset_id: &str,
        records: Vec<NewRecord>,
    ) -> Result<UpsertCounts> {
        let id = dataset_id.to_string();
        self.write(move |c| upsert(c, &id, &records))
    }

    fn eval_dataset_records(
        &self,
        dataset_id: &str,
        max_results: usize,
        after: Option<RecordCursor>,
    ) -> Result<RecordsPage> {
        self.read(|c| records_page(c, dataset_id, max_results, after.as_ref()))
    }

    fn delete_eval_dataset_records(&self, dataset_id: &str, record_ids: &[String]) -> Result<u64> {
        let (id, ids) = (dataset_id.to_string(), record_ids.to_vec());
        self.write(move |c| delete_records(c, &id, &ids))
    }

    fn eval_dataset_experiment_ids(&self, dataset_id: &str) -> Result<Vec<String>> {
        self.read(|c| experiment_ids(c, dataset_id))
    }

    fn add_eval_dataset_to_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvalDataset> {
        let (id, ids) = (dataset_id.to_string(), experiment_ids.to_vec());
        self.write(move |c| add_experiments(c, &id, &ids))
    }

    fn remove_eval_dataset_from_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvalDataset> {
        let (id, ids) = (dataset_id.to_string(), experiment_ids.to_vec());
        self.write(move |c| remove_experiments(c, &id, &ids))
    }
}
