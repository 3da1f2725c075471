//! flextime-db against raw sqlx on the same data, per backend.
//!
//! 100,000 ScheduleItems (JSON) are upserted in batches of 1,000 through the
//! Adapter and read back through its change feed; on the SQL backends the
//! same rows are also written with raw sqlx, once row by row (one INSERT
//! per row, one transaction per 1,000) and once with the best raw bulk
//! method (PostgreSQL: `INSERT .. SELECT FROM UNNEST`; SQLite and MySQL:
//! multi-row `INSERT`, also one transaction per 1,000). The ratio printed is
//! raw time / Flextime time (1.0 = as fast as raw).
//!
//! SQLite always runs (a temporary file); PostgreSQL, MySQL, Redis and
//! MongoDB run when their `FLEXTIME_TEST_*_URL` is set. Each run works in a
//! fresh schema / database / key prefix and drops it afterwards (Redis and
//! MongoDB data is dropped too; MongoDB, served here by a Python surrogate,
//! gets 10,000 records). `FLEXTIME_BENCH_DB_RECORDS` overrides the
//! record count.
#![allow(clippy::cast_precision_loss, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use flextime_core::{Attendee, ItemKind, ItemTime, ScheduleItem};
use flextime_db::{Adapter, DbOptions, PoolOptions};
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
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        db.upsert_batch("items", chunk.to_vec())
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
        println!("{backend:<9} raw bulk             {}", rate(n, bulk));
        println!(
            "{backend:<9} ratio vs raw bulk (raw/flextime) {:.2}   vs row-by-row {:.2}",
            bulk.as_secs_f64() / ours.0.as_secs_f64(),
            row.as_secs_f64() / ours.0.as_secs_f64()
        );
    }
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
    sqlx::query("CREATE TABLE raw_rows (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE raw_bulk (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        let mut tx = pool.begin().await.unwrap();
        for (id, text) in texts(chunk) {
            sqlx::query("INSERT INTO raw_rows (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data")
                .bind(id)
                .bind(text)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let row = start.elapsed();
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        let rows = texts(chunk);
        let mut tx = pool.begin().await.unwrap();
        for part in rows.chunks(500) {
            let mut qb =
                sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO raw_bulk (id, data) ");
            qb.push_values(part, |mut b, (id, text)| {
                b.push_bind(id).push_bind(text);
            });
            qb.push(" ON CONFLICT (id) DO UPDATE SET data = excluded.data");
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
    for table in ["raw_rows", "raw_bulk"] {
        sqlx::query(&format!(
            "CREATE TABLE {table} (id TEXT PRIMARY KEY, data JSONB NOT NULL)"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        let mut tx = pool.begin().await.unwrap();
        for (id, text) in texts(chunk) {
            sqlx::query("INSERT INTO raw_rows (id, data) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data")
                .bind(id)
                .bind(text)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let row = start.elapsed();
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        let (ids, docs): (Vec<String>, Vec<String>) = texts(chunk).into_iter().unzip();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO raw_bulk (id, data) SELECT u.id, u.data::jsonb FROM UNNEST($1::text[], $2::text[]) AS u(id, data) \
             ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
        )
        .bind(&ids)
        .bind(&docs)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let bulk = start.elapsed();
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
            "CREATE TABLE {table} (id VARCHAR(255) PRIMARY KEY, data LONGTEXT NOT NULL) ENGINE = InnoDB"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        let mut tx = pool.begin().await.unwrap();
        for (id, text) in texts(chunk) {
            sqlx::query("INSERT INTO raw_rows (id, data) VALUES (?, ?) ON DUPLICATE KEY UPDATE data = VALUES(data)")
                .bind(id)
                .bind(text)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let row = start.elapsed();
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        let rows = texts(chunk);
        let mut tx = pool.begin().await.unwrap();
        for part in rows.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new("INSERT INTO raw_bulk (id, data) ");
            qb.push_values(part, |mut b, (id, text)| {
                b.push_bind(id).push_bind(text);
            });
            qb.push(" ON DUPLICATE KEY UPDATE data = VALUES(data)");
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
        key_prefix: Some(prefix),
        ..DbOptions::default()
    };
    let db: Arc<dyn Adapter> = Arc::new(
        flextime_db::redis::RedisAdapter::connect(url, options)
            .await
            .unwrap(),
    );
    let ours = flextime_side(&db, data).await;
    report("redis", data.len(), ours, None);
    // Drop the records again: tombstones, then purge them.
    let ids: Vec<String> = data.iter().map(|(id, _)| id.clone()).collect();
    for chunk in ids.chunks(BATCH) {
        let ops = chunk
            .iter()
            .map(|id| flextime_db::WriteOp::delete("items", id))
            .collect();
        db.write(ops).await.unwrap();
    }
    while db.purge_tombstones("items", u64::MAX >> 12).await.unwrap() > 0 {}
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
    runtime.block_on(async {
        sqlite(&data).await;
        match flextime_testkit::peer_url(flextime_testkit::Peer::Postgres) {
            Some(url) => postgres(&url, &data).await,
            None => println!("postgres  skipped: FLEXTIME_TEST_POSTGRES_URL is not set"),
        }
        match flextime_testkit::peer_url(flextime_testkit::Peer::Mysql) {
            Some(url) => mysql(&url, &data).await,
            None => println!("mysql     skipped: FLEXTIME_TEST_MYSQL_URL is not set"),
        }
        match flextime_testkit::peer_url(flextime_testkit::Peer::Redis) {
            Some(url) => redis(&url, &data).await,
            None => println!("redis     skipped: FLEXTIME_TEST_REDIS_URL is not set"),
        }
        match flextime_testkit::peer_url(flextime_testkit::Peer::Mongodb) {
            Some(url) => mongodb(&url, &data).await,
            None => println!("mongodb   skipped: FLEXTIME_TEST_MONGODB_URL is not set"),
        }
    });
}
