//! Evaluation datasets in PostgreSQL, and the [`EvalDatasetStore`] implementation.
//!
//! Writers that change a dataset's records lock its row first (`SELECT ... FOR UPDATE`): two
//! concurrent upserts of the same new inputs then take turns (the second merges into the
//! first's record instead of breaking the unique inputs key), and the dataset's schema, count
//! and digest are each computed from the state the previous writer left.

use tokio_postgres::Transaction;
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::{Error, Result};

use super::{PgStore, pg_err};
use crate::eval_datasets::{
    DATASET_COLUMNS, DatasetUpdate, EvalDataset, EvalDatasetSearch, EvalDatasetStore, NewRecord,
    RECORD_COLUMNS, RecordCursor, RecordsPage, UpsertCounts, check_name, creator, dataset_digest,
    dataset_from_row, dataset_not_found, dataset_not_found_short, experiment_not_found,
    new_dataset_id, profile_after_delete, record_from_row, records_page, search_query, upserted,
};
use crate::search_sql::Dialect;
use crate::sqlite::now_ms;

type Tx<'a> = Transaction<'a>;

/// The dataset with its tags; with `lock`, its row stays locked until the transaction ends.
async fn find_dataset(tx: &Tx<'_>, dataset_id: &str, lock: bool) -> Result<Option<EvalDataset>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT {DATASET_COLUMNS} FROM evaluation_datasets d WHERE d.dataset_id = $1{lock}"
            ),
            &[&dataset_id],
        )
        .await
        .map_err(pg_err)?
    else {
        return Ok(None);
    };
    let mut dataset = dataset_from_row(&row).map_err(pg_err)?;
    dataset.tags = dataset_tags(tx, dataset_id).await?;
    Ok(Some(dataset))
}

async fn load_dataset(tx: &Tx<'_>, dataset_id: &str, lock: bool) -> Result<EvalDataset> {
    find_dataset(tx, dataset_id, lock)
        .await?
        .ok_or_else(|| dataset_not_found(dataset_id))
}

async fn dataset_tags(tx: &Tx<'_>, dataset_id: &str) -> Result<Vec<(String, String)>> {
    Ok(tx
        .query(
            "SELECT key, value FROM evaluation_dataset_tags WHERE dataset_id = $1 ORDER BY key",
            &[&dataset_id],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

async fn put_tags(tx: &Tx<'_>, dataset_id: &str, tags: &[(String, String)]) -> Result<()> {
    // One statement may not set a key twice: the last value given wins, as in separate writes.
    let mut keys: Vec<&str> = Vec::new();
    let mut values: Vec<&str> = Vec::new();
    for (k, v) in tags {
        match keys.iter().position(|known| known == k) {
            Some(i) => values[i] = v,
            None => {
                keys.push(k);
                values.push(v);
            }
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO evaluation_dataset_tags (dataset_id, key, value)
         SELECT $1, k, v FROM UNNEST($2::text[], $3::text[]) AS u(k, v)
         ON CONFLICT (dataset_id, key) DO UPDATE SET value = excluded.value",
        &[&dataset_id, &keys, &values],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// The experiments' ids as integers, each of an existing experiment (deleted ones included, as
/// MLflow looks them up), without repeats.
async fn existing_experiments(tx: &Tx<'_>, experiment_ids: &[String]) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = Vec::with_capacity(experiment_ids.len());
    for text in experiment_ids {
        let id: i64 = text
            .trim()
            .parse()
            .map_err(|_| experiment_not_found(text))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let found: Vec<i64> = tx
        .query(
            "SELECT experiment_id FROM experiments WHERE experiment_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for text in experiment_ids {
        let id: i64 = text.trim().parse().unwrap_or_default();
        if !found.contains(&id) {
            return Err(experiment_not_found(text));
        }
    }
    Ok(ids)
}

async fn link(tx: &Tx<'_>, dataset_id: &str, experiment_ids: &[i64], now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO evaluation_dataset_experiments (dataset_id, experiment_id, created_time)
         SELECT $1, e, $3 FROM UNNEST($2::bigint[]) AS u(e)
         ON CONFLICT (dataset_id, experiment_id) DO NOTHING",
        &[&dataset_id, &experiment_ids, &now],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn experiment_ids(tx: &Tx<'_>, dataset_id: &str) -> Result<Vec<String>> {
    Ok(tx
        .query(
            "SELECT experiment_id FROM evaluation_dataset_experiments WHERE dataset_id = $1
             ORDER BY created_time, experiment_id",
            &[&dataset_id],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get::<_, i64>(0).to_string())
        .collect())
}

async fn create(
    tx: &Tx<'_>,
    name: &str,
    tags: &[(String, String)],
    experiments: &[String],
) -> Result<EvalDataset> {
    check_name(name)?;
    let experiments = existing_experiments(tx, experiments).await?;
    let dataset_id = new_dataset_id();
    let now = now_ms();
    let user = creator(tags);
    tx.execute(
        "INSERT INTO evaluation_datasets (dataset_id, name, digest, created_time,
             last_update_time, created_by, last_updated_by)
         VALUES ($1, $2, $3, $4, $4, $5, $5)",
        &[&dataset_id, &name, &dataset_digest(name, now), &now, &user],
    )
    .await
    .map_err(pg_err)?;
    put_tags(tx, &dataset_id, tags).await?;
    link(tx, &dataset_id, &experiments, now).await?;
    let mut dataset = load_dataset(tx, &dataset_id, false).await?;
    dataset.experiment_ids = experiments.iter().map(i64::to_string).collect();
    Ok(dataset)
}

async fn search(tx: &Tx<'_>, search: &EvalDatasetSearch) -> Result<Page<EvalDataset>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let query = search_query(search, offset, Dialect::Postgres)?;
    let rows = tx
        .query(&query.sql, &query.pg_params())
        .await
        .map_err(pg_err)?
        .iter()
        .map(dataset_from_row)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pg_err)?;
    let mut page = Page::from_overfetched(rows, offset, search.max_results);
    for dataset in &mut page.items {
        dataset.tags = dataset_tags(tx, &dataset.dataset_id).await?;
    }
    Ok(page)
}

async fn count_records(tx: &Tx<'_>, dataset_id: &str) -> Result<u64> {
    let n: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM evaluation_dataset_records WHERE dataset_id = $1",
            &[&dataset_id],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    Ok(n as u64)
}

async fn upsert(tx: &Tx<'_>, dataset_id: &str, records: &[NewRecord]) -> Result<UpsertCounts> {
    let dataset = load_dataset(tx, dataset_id, true).await?;
    let now = now_ms();
    let mut counts = UpsertCounts {
        inserted: 0,
        updated: 0,
    };
    for record in records {
        let hash = record.input_hash();
        let existing = tx
            .query_opt(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM evaluation_dataset_records
                     WHERE dataset_id = $1 AND input_hash = $2"
                ),
                &[&dataset_id, &hash],
            )
            .await
            .map_err(pg_err)?
            .map(|r| record_from_row(&r))
            .transpose()
            .map_err(pg_err)?;
        let (stored, new) = upserted(dataset_id, existing, record, now);
        if new {
            tx.execute(
                &format!(
                    "INSERT INTO evaluation_dataset_records ({RECORD_COLUMNS}, input_hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ),
                &[
                    &stored.dataset_record_id,
                    &stored.dataset_id,
                    &stored.inputs,
                    &stored.outputs,
                    &stored.expectations,
                    &stored.tags,
                    &stored.source,
                    &stored.source_id,
                    &stored.source_type,
                    &stored.created_time,
                    &stored.last_update_time,
                    &stored.created_by,
                    &stored.last_updated_by,
                    &hash,
                ],
            )
            .await
            .map_err(pg_err)?;
            counts.inserted += 1;
        } else {
            tx.execute(
                "UPDATE evaluation_dataset_records SET outputs = $2, expectations = $3,
                     tags = $4, last_update_time = $5, last_updated_by = $6
                 WHERE dataset_record_id = $1",
                &[
                    &stored.dataset_record_id,
                    &stored.outputs,
                    &stored.expectations,
                    &stored.tags,
                    &stored.last_update_time,
                    &stored.last_updated_by,
                ],
            )
            .await
            .map_err(pg_err)?;
            counts.updated += 1;
        }
    }
    let update =
        DatasetUpdate::after_upsert(&dataset, records, count_records(tx, dataset_id).await?, now);
    tx.execute(
        "UPDATE evaluation_datasets SET last_update_time = $2, last_updated_by = $3,
             digest = $4, schema_json = $5, profile = $6
         WHERE dataset_id = $1",
        &[
            &dataset_id,
            &now,
            &update.last_updated_by,
            &update.digest,
            &update.schema,
            &update.profile,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(counts)
}

async fn page(
    tx: &Tx<'_>,
    dataset_id: &str,
    max_results: usize,
    after: Option<&RecordCursor>,
) -> Result<RecordsPage> {
    let (after_time, after_id) = match after {
        Some((t, id)) => (Some(*t), id.as_str()),
        None => (None, ""),
    };
    let rows = tx
        .query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM evaluation_dataset_records
                 WHERE dataset_id = $1
                   AND ($2::bigint IS NULL OR created_time > $2
                        OR (created_time = $2 AND dataset_record_id > $3))
                 ORDER BY created_time, dataset_record_id LIMIT $4"
            ),
            &[
                &dataset_id,
                &after_time,
                &after_id,
                &(max_results as i64 + 1),
            ],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(record_from_row)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pg_err)?;
    Ok(records_page(rows, max_results))
}

async fn delete_records(tx: &Tx<'_>, dataset_id: &str, ids: &[String]) -> Result<u64> {
    if find_dataset(tx, dataset_id, true).await?.is_none() {
        return Ok(0);
    }
    let deleted = tx
        .execute(
            "DELETE FROM evaluation_dataset_records
             WHERE dataset_id = $1 AND dataset_record_id = ANY($2)",
            &[&dataset_id, &ids],
        )
        .await
        .map_err(pg_err)?;
    if deleted > 0 {
        let profile = profile_after_delete(count_records(tx, dataset_id).await?);
        tx.execute(
            "UPDATE evaluation_datasets SET profile = $2 WHERE dataset_id = $1",
            &[&dataset_id, &profile],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(deleted)
}

async fn touch(tx: &Tx<'_>, dataset_id: &str) -> Result<()> {
    tx.execute(
        "UPDATE evaluation_datasets SET last_update_time = $2 WHERE dataset_id = $1",
        &[&dataset_id, &now_ms()],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn add_experiments(tx: &Tx<'_>, dataset_id: &str, ids: &[String]) -> Result<EvalDataset> {
    if find_dataset(tx, dataset_id, true).await?.is_none() {
        return Err(dataset_not_found_short(dataset_id));
    }
    let experiments = existing_experiments(tx, ids).await?;
    link(tx, dataset_id, &experiments, now_ms()).await?;
    touch(tx, dataset_id).await?;
    load_dataset(tx, dataset_id, false).await
}

async fn remove_experiments(tx: &Tx<'_>, dataset_id: &str, ids: &[String]) -> Result<EvalDataset> {
    if find_dataset(tx, dataset_id, true).await?.is_none() {
        return Err(dataset_not_found_short(dataset_id));
    }
    let removed = tx
        .execute(
            "DELETE FROM evaluation_dataset_experiments
             WHERE dataset_id = $1 AND experiment_id::text = ANY($2)",
            &[&dataset_id, &ids],
        )
        .await
        .map_err(pg_err)?;
    if removed > 0 {
        touch(tx, dataset_id).await?;
    }
    load_dataset(tx, dataset_id, false).await
}

impl EvalDatasetStore for PgStore {
    fn create_eval_dataset(
        &self,
        name: &str,
        tags: Vec<(String, String)>,
        experiment_ids: Vec<String>,
    ) -> Result<EvalDataset> {
        self.write(async |tx| create(tx, name, &tags, &experiment_ids).await)
    }

    fn get_eval_dataset(&self, dataset_id: &str) -> Result<EvalDataset> {
        self.read(async |tx| load_dataset(tx, dataset_id, false).await)
    }

    fn delete_eval_dataset(&self, dataset_id: &str) -> Result<()> {
        self.write(async |tx| {
            // Records, tags and links go by ON DELETE CASCADE.
            tx.execute(
                "DELETE FROM evaluation_datasets WHERE dataset_id = $1",
                &[&dataset_id],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn search_eval_datasets(&self, s: &EvalDatasetSearch) -> Result<Page<EvalDataset>> {
        self.read(async |tx| search(tx, s).await)
    }

    fn set_eval_dataset_tags(&self, dataset_id: &str, tags: Vec<(String, String)>) -> Result<()> {
        self.write(async |tx| {
            if find_dataset(tx, dataset_id, true).await?.is_none() {
                return Err(Error::not_found(format!(
                    "Could not find evaluation dataset with ID {dataset_id}"
                )));
            }
            put_tags(tx, dataset_id, &tags).await
        })
    }

    fn delete_eval_dataset_tag(&self, dataset_id: &str, key: &str) -> Result<()> {
        self.write(async |tx| {
            tx.execute(
                "DELETE FROM evaluation_dataset_tags WHERE dataset_id = $1 AND key = $2",
                &[&dataset_id, &key],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn upsert_eval_dataset_records(
        &self,
        dataset_id: &str,
        records: Vec<NewRecord>,
    ) -> Result<UpsertCounts> {
        self.write(async |tx| upsert(tx, dataset_id, &records).await)
    }

    fn eval_dataset_records(
        &self,
        dataset_id: &str,
        max_results: usize,
        after: Option<RecordCursor>,
    ) -> Result<RecordsPage> {
        self.read(async |tx| page(tx, dataset_id, max_results, after.as_ref()).await)
    }

    fn delete_eval_dataset_records(&self, dataset_id: &str, record_ids: &[String]) -> Result<u64> {
        self.write(async |tx| delete_records(tx, dataset_id, record_ids).await)
    }

    fn eval_dataset_experiment_ids(&self, dataset_id: &str) -> Result<Vec<String>> {
        self.read(async |tx| experiment_ids(tx, dataset_id).await)
    }

    fn add_eval_dataset_to_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvalDataset> {
        self.write(async |tx| add_experiments(tx, dataset_id, experiment_ids).await)
    }

    fn remove_eval_dataset_from_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvalDataset> {
        self.write(async |tx| remove_experiments(tx, dataset_id, experiment_ids).await)
    }
}
