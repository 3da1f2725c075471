//! flextime-db against raw sqlx on the same data, per backend.
//!
//! 100,000 ScheduleItems (JSON) are upserted in batches of 1,000 through the
//! Adapter and read back through its change feed. The Adapter takes each
//! batch with `upsert_batch_as`, borrowing the items and serializing each
//! to JSON text inside the clock, as the raw side does (no copies, no
//! `Value` built or freed by the Adapter). On the SQL backends the
//! same rows are also upserted with raw sqlx into a table of the same shape
//! as the Adapter's record table (`collection, id, version, seq, data,
//! updated_at_us, deleted_at_us`, primary key `(collection, id)`, the
//! version bumped by the upsert, the seq numbered by the client): once row
//! by row (one INSERT per row, one transaction per 1,000) and with the best
//! raw bulk method (PostgreSQL: `INSERT .. SELECT FROM UNNEST .. ON
//! CONFLICT`, and `COPY` into a staging table then `INSERT .. SELECT .. ON
//! CONFLICT`, the faster of the two counts; SQLite and MySQL: multi-row
//! `INSERT .. ON CONFLICT / ON DUPLICATE KEY`), one transaction per 1,000.
//! The raw side keeps no change log and no change counter; the Adapter
//! writes one log entry per change and takes the collection's counter in
//! each transaction. The ratio printed is raw time / Flextime time (1.0 =
//! as fast as raw).
//!
//! SQLite always runs (a temporary file); PostgreSQL, MySQL, Redis and
//! MongoDB run when their `FLEXTIME_TEST_*_URL` is set. Each run works in a
//! fresh schema / database / key prefix and drops it afterwards (MongoDB,
//! served here by a Python surrogate, gets 10,000 records).
//! `FLEXTIME_BENCH_DB_RECORDS` overrides the record count;
//! `FLEXTIME_BENCH_ONLY=sqlite,postgres` picks backends.
#![allow(clippy::cast_precision_loss, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use flextime_core::{Attendee, ItemKind, ItemTime, ScheduleItem};
use flextime_db::{Adapter, AdapterExt, DbOptions, PoolOptions};
use serde_json::Value;

const BATCH: usize = 1_000;

fn items(n: usize) -> Vec<(String, Value)> {
    let updated = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
                + chrono::Duration::days(i64::try_from(i % 365).unwrap());
            let start = day
                .and_hms_opt(8 + u32::try_from(i % 9).unwrap(), 0, 0)
                .unwrap();
            let mut item = ScheduleItem::new(
                format!("item-{i:07}"),
                ItemKind::Booking,
                format!("Booking {i} with the physiotherapist"),
                ItemTime::zoned(start, chrono_tz::Europe::Berlin),
                ItemTime::zoned(
                    start + chrono::Duration::minutes(45),
                    chrono_tz::Europe::Berlin,
                ),
                updated,
            );
            item.location = Some(format!("Room {}", i % 12));
            item.attendees = vec![Attendee::new(format!("client{}@example.com", i % 1000))];
            (item.id.clone(), serde_json::to_value(&item).unwrap())
        })
        .collect()
}

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{:>9.0} records/s ({:>6.2} s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

async fn flextime_side(db: &Arc<dyn Adapter>, data: &[(String, Value)]) -> (Duration, Duration) {
    // Borrowed, like the raw side: each item is serialized to JSON text
    // inside the clock (the ids are copied, as the raw side copies them).
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        db.upsert_batch_as("items", chunk.iter().map(|(id, v)| (id, v)))
            .await
            .expect("upsert batch");
    }
    let upsert = start.elapsed();
    let start = Instant::now();
    let mut cursor = 0;
    let mut seen = 0;
    loop {
        let page = db.changes("items", cursor, BATCH).await.expect("changes");
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        seen += page.len();
    }
    let read = start.elapsed();
    assert_eq!(seen, data.len(), "the feed returned every record");
    (upsert, read)
}

fn report(backend: &str, n: usize, ours: (Duration, Duration), raw: Option<(Duration, Duration)>) {
    println!("{backend:<9} flextime upsert      {}", rate(n, ours.0));
    println!("{backend:<9} flextime change feed {}", rate(n, ours.1));
    if let Some((row, bulk)) = raw {
        println!("{backend:<9} raw row-by-row       {}", rate(n, row));
        println!("{backend:<9} raw best bulk        {}", rate(n, bulk));
        println!(
            "{backend:<9} ratio vs raw bulk (raw/flextime) {:.2}   vs row-by-row {:.2}",
            bulk.as_secs_f64() / ours.0.as_secs_f64(),
            row.as_secs_f64() / ours.0.as_secs_f64()
        );
    }
}

/// What the raw side writes per record, like the Adapter's record table.
const RAW_COLUMNS: &str = "collection, id, version, seq, data, updated_at_us, deleted_at_us";

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn texts(chunk: &[(String, Value)]) -> Vec<(String, String)> {
    chunk
        .iter()
        .map(|(id, v)| (id.clone(), serde_json::to_string(v).unwrap()))
        .collect()
}

async fn sqlite(data: &[(String, Value)]) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let adapter = flextime_db::sqlite::SqliteAdapter::connect(&url, DbOptions::default())
        .await
        .unwrap();
    let pool = adapter.pool().clone();
    let db: Arc<dyn Adapter> = Arc::new(adapter);
    let ours = flextime_side(&db, data).await;
    for table in ["raw_rows", "raw_bulk"] {
        sqlx::query(&format!(
            "CREATE TABLE {table} (collection TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, \
             seq INTEGER NOT NULL, data TEXT, updated_at_us INTEGER NOT NULL, deleted_at_us INTEGER, \
             PRIMARY KEY (collection, id)) WITHOUT ROWID"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let upsert = " ON CONFLICT (collection, id) DO UPDATE SET version = version + 1, seq = excluded.seq, \
                  data = excluded.data, updated_at_us = excluded.updated_at_us, deleted_at_us = excluded.deleted_at_us";
    let start = Instant::now();
    let mut seq = 0_i64;
    for chunk in data.chunks(BATCH) {
        let now = now_us();
        let mut tx = pool.begin().await.unwrap();
        for (id, text) in texts(chunk) {
            seq += 1;
            sqlx::query(&format!(
                "INSERT INTO raw_rows ({RAW_COLUMNS}) VALUES ('items', ?, 1, ?, ?, ?, NULL){upsert}"
            ))
            .bind(id)
            .bind(seq)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let row = start.elapsed();
    let start = Instant::now();
    let mut seq = 0_i64;
    for chunk in data.chunks(BATCH) {
        let rows = texts(chunk);
        let now = now_us();
        let mut tx = pool.begin().await.unwrap();
        for part in rows.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "INSERT INTO raw_bulk ({RAW_COLUMNS}) "
            ));
            qb.push_values(part, |mut b, (id, text)| {
                seq += 1;
                b.push_bind("items")
                    .push_bind(id)
                    .push_bind(1_i64)
                    .push_bind(seq)
                    .push_bind(text)
                    .push_bind(now)
                    .push_bind(None::<i64>);
            });
            qb.push(upsert);
            qb.build().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let bulk = start.elapsed();
    report("sqlite", data.len(), ours, Some((row, bulk)));
}

async fn postgres(url: &str, data: &[(String, Value)]) {
    let schema = flextime_testkit::unique_name("ftbench");
    let options = DbOptions {
        schema: Some(schema.clone()),
        pool: PoolOptions {
            max_connections: 4,
            ..PoolOptions::default()
        },
        ..DbOptions::default()
    };
    let adapter = flextime_db::postgres::PostgresAdapter::connect(url, options)
        .await
        .unwrap();
    let pool = adapter.pool().clone();
    let db: Arc<dyn Adapter> = Arc::new(adapter);
    let ours = flextime_side(&db, data).await;
    for table in ["raw_rows", "raw_bulk", "raw_copy"] {
        sqlx::query(&format!(
            "CREATE TABLE {table} (collection TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, \
             seq BIGINT NOT NULL, data JSONB, updated_at_us BIGINT NOT NULL, deleted_at_us BIGINT, \
             PRIMARY KEY (collection, id))"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let upsert = |table: &str| {
        format!(
            " ON CONFLICT (collection, id) DO UPDATE SET version = {table}.version + 1, seq = EXCLUDED.seq, \
             data = EXCLUDED.data, updated_at_us = EXCLUDED.updated_at_us, deleted_at_us = EXCLUDED.deleted_at_us"
        )
    };
    let start = Instant::now();
    let mut seq = 0_i64;
    let row_sql = format!(
        "INSERT INTO raw_rows ({RAW_COLUMNS}) VALUES ('items', $1, 1, $2, $3::jsonb, $4, NULL){}",
        upsert("raw_rows")
    );
    for chunk in data.chunks(BATCH) {
        let now = now_us();
        let mut tx = pool.begin().await.unwrap();
        for (id, text) in texts(chunk) {
            seq += 1;
            sqlx::query(&row_sql)
                .bind(id)
                .bind(seq)
                .bind(text)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let row = start.elapsed();
    let start = Instant::now();
    let mut seq = 0_i64;
    let unnest_sql = format!(
        "INSERT INTO raw_bulk ({RAW_COLUMNS}) SELECT 'items', u.id, 1, u.seq, u.data::jsonb, $4, NULL \
         FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(id, data, seq){}",
        upsert("raw_bulk")
    );
    for chunk in data.chunks(BATCH) {
        let (ids, docs): (Vec<String>, Vec<String>) = texts(chunk).into_iter().unzip();
        let seqs: Vec<i64> = (0..ids.len())
            .map(|_| {
                seq += 1;
                seq
            })
            .collect();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&unnest_sql)
            .bind(&ids)
            .bind(&docs)
            .bind(&seqs)
            .bind(now_us())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let unnest = start.elapsed();
    // COPY cannot upsert: copy into a staging table, then upsert from it.
    let start = Instant::now();
    let mut seq = 0_i64;
    let copy_sql = format!(
        "INSERT INTO raw_copy ({RAW_COLUMNS}) SELECT 'items', s.id, 1, s.seq, s.data::jsonb, $1, NULL \
         FROM raw_stage s{}",
        upsert("raw_copy")
    );
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query(
        "CREATE TEMP TABLE raw_stage (id TEXT, data TEXT, seq BIGINT) ON COMMIT DELETE ROWS",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    for chunk in data.chunks(BATCH) {
        let mut csv = Vec::with_capacity(chunk.len() * 512);
        for (id, text) in texts(chunk) {
            seq += 1;
            csv.extend_from_slice(
                format!(
                    "\"{}\",\"{}\",{seq}\n",
                    id.replace('"', "\"\""),
                    text.replace('"', "\"\"")
                )
                .as_bytes(),
            );
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let mut copy = tx
            .copy_in_raw("COPY raw_stage (id, data, seq) FROM STDIN (FORMAT csv)")
            .await
            .unwrap();
        copy.send(csv).await.unwrap();
        copy.finish().await.unwrap();
        sqlx::query(&copy_sql)
            .bind(now_us())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    drop(conn);
    let copy = start.elapsed();
    println!(
        "postgres  raw UNNEST           {}",
        rate(data.len(), unnest)
    );
    println!("postgres  raw COPY + upsert    {}", rate(data.len(), copy));
    let bulk = unnest.min(copy);
    report("postgres", data.len(), ours, Some((row, bulk)));
    // schema name from unique_name: [a-z0-9_]
    let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await;
}

async fn mysql(url: &str, data: &[(String, Value)]) {
    use sqlx::Connection;
    let name = flextime_testkit::unique_name("ftbench");
    let mut admin = sqlx::MySqlConnection::connect(url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{name}"));
    let adapter = flextime_db::mysql::MysqlAdapter::connect(parsed.as_str(), DbOptions::default())
        .await
        .unwrap();
    let pool = adapter.pool().clone();
    let db: Arc<dyn Adapter> = Arc::new(adapter);
    let ours = flextime_side(&db, data).await;
    for table in ["raw_rows", "raw_bulk"] {
        sqlx::query(&format!(
            "CREATE TABLE {table} (collection VARCHAR(128) NOT NULL, id VARCHAR(255) NOT NULL, \
             version BIGINT NOT NULL, seq BIGINT NOT NULL, data LONGTEXT, updated_at_us BIGINT NOT NULL, \
             deleted_at_us BIGINT, PRIMARY KEY (collection, id)) ENGINE = InnoDB"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let upsert = " ON DUPLICATE KEY UPDATE version = version + 1, seq = VALUES(seq), data = VALUES(data), \
                  updated_at_us = VALUES(updated_at_us), deleted_at_us = VALUES(deleted_at_us)";
    let start = Instant::now();
    let mut seq = 0_i64;
    for chunk in data.chunks(BATCH) {
        let now = now_us();
        let mut tx = pool.begin().await.unwrap();
        for (id, text) in texts(chunk) {
            seq += 1;
            sqlx::query(&format!(
                "INSERT INTO raw_rows ({RAW_COLUMNS}) VALUES ('items', ?, 1, ?, ?, ?, NULL){upsert}"
            ))
            .bind(id)
            .bind(seq)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let row = start.elapsed();
    let start = Instant::now();
    let mut seq = 0_i64;
    for chunk in data.chunks(BATCH) {
        let rows = texts(chunk);
        let now = now_us();
        let mut tx = pool.begin().await.unwrap();
        for part in rows.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
                "INSERT INTO raw_bulk ({RAW_COLUMNS}) "
            ));
            qb.push_values(part, |mut b, (id, text)| {
                seq += 1;
                b.push_bind("items")
                    .push_bind(id)
                    .push_bind(1_i64)
                    .push_bind(seq)
                    .push_bind(text)
                    .push_bind(now)
                    .push_bind(None::<i64>);
            });
            qb.push(upsert);
            qb.build().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let bulk = start.elapsed();
    report("mysql", data.len(), ours, Some((row, bulk)));
    let _ = sqlx::query(&format!("DROP DATABASE `{name}`"))
        .execute(&mut admin)
        .await;
}

async fn redis(url: &str, data: &[(String, Value)]) {
    let prefix = format!("{}:", flextime_testkit::unique_name("ftbench"));
    let options = DbOptions {
        key_prefix: Some(prefix.clone()),
        ..DbOptions::default()
    };
    let db: Arc<dyn Adapter> = Arc::new(
        flextime_db::redis::RedisAdapter::connect(url, options)
            .await
            .unwrap(),
    );
    let ours = flextime_side(&db, data).await;
    report("redis", data.len(), ours, None);
    // Drop every key under the run's prefix.
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

async fn mongodb(url: &str, data: &[(String, Value)]) {
    // The MongoDB peer here is secantusdb, a Python surrogate: 10,000
    // records keep the run short; its numbers say nothing about mongod.
    let data = &data[..data.len().min(10_000)];
    let name = flextime_testkit::unique_name("ftbench");
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{name}"));
    let db: Arc<dyn Adapter> = Arc::new(
        flextime_db::mongodb::MongoAdapter::connect(parsed.as_str(), DbOptions::default())
            .await
            .unwrap(),
    );
    let ours = flextime_side(&db, data).await;
    report("mongodb", data.len(), ours, None);
    let client = mongodb::Client::with_uri_str(url).await.unwrap();
    let _ = client.database(&name).drop().await;
}

fn main() {
    let n: usize = std::env::var("FLEXTIME_BENCH_DB_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!(
        "flextime-db benchmarks: {n} ScheduleItems in batches of {BATCH} ({} cores)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let data = items(n);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("FLEXTIME_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let peer = |name: &str, peer: flextime_testkit::Peer| {
        if wanted(name) {
            flextime_testkit::peer_url(peer)
        } else {
            None
        }
    };
    runtime.block_on(async {
        if wanted("sqlite") {
            sqlite(&data).await;
        }
        match peer("postgres", flextime_testkit::Peer::Postgres) {
            Some(url) => postgres(&url, &data).await,
            None => {
                println!(
                    "postgres  skipped: FLEXTIME_TEST_POSTGRES_URL is not set or not selected"
                );
            }
        }
        match peer("mysql", flextime_testkit::Peer::Mysql) {
            Some(url) => mysql(&url, &data).await,
            None => {
                println!("mysql     skipped: FLEXTIME_TEST_MYSQL_URL is not set or not selected");
            }
        }
        match peer("redis", flextime_testkit::Peer::Redis) {
            Some(url) => redis(&url, &data).await,
            None => {
                println!("redis     skipped: FLEXTIME_TEST_REDIS_URL is not set or not selected");
            }
        }
        match peer("mongodb", flextime_testkit::Peer::Mongodb) {
            Some(url) => mongodb(&url, &data).await,
            None => {
                println!("mongodb   skipped: FLEXTIME_TEST_MONGODB_URL is not set or not selected");
            }
        }
    });
}
