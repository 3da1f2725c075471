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
//! `FLEXTIME_BENCH_ROUNDS` (default 3) pairs of rounds run per backend, each
//! into a fresh collection and a fresh raw table, the side that goes first
//! alternating from pair to pair; the medians of both sides, every pair's
//! ratio and the median of those ratios are printed (a pair ran back to
//! back, so a machine whose speed drifts moves both sides of it). Raw
//! row-by-row runs once. `FLEXTIME_BENCH_DB_SIDE=flextime` (or `raw`) runs
//! only the Adapter's upserts (or only the raw bulk method), for profiling
//! one side under `perf` or `valgrind --tool=callgrind`.
//!
//! SQLite always runs (a temporary file); PostgreSQL, MySQL, Redis and
//! MongoDB run when their `FLEXTIME_TEST_*_URL` is set. Each run works in a
//! fresh schema / database / key prefix and drops it afterwards (MongoDB,
//! served here by a Python surrogate, gets 10,000 records).
//! `FLEXTIME_BENCH_DB_RECORDS` overrides the record count;
//! `FLEXTIME_BENCH_ONLY=sqlite,postgres` picks backends.
#![allow(clippy::cast_precision_loss, clippy::expect_used, clippy::unwrap_used)]

use std::cell::RefCell;
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

async fn flextime_side(
    db: &Arc<dyn Adapter>,
    collection: &str,
    data: &[(String, Value)],
    feed: bool,
) -> (Duration, Duration) {
    // Borrowed, like the raw side: each item is serialized to JSON text
    // inside the clock (the ids are copied, as the raw side copies them).
    let start = Instant::now();
    for chunk in data.chunks(BATCH) {
        db.upsert_batch_as(collection, chunk.iter().map(|(id, v)| (id, v)))
            .await
            .expect("upsert batch");
    }
    let upsert = start.elapsed();
    if !feed {
        return (upsert, Duration::ZERO);
    }
    let start = Instant::now();
    let mut cursor = 0;
    let mut seen = 0;
    loop {
        let page = db
            .changes(collection, cursor, BATCH)
            .await
            .expect("changes");
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        seen += page.len();
    }
    let read = start.elapsed();
    assert_eq!(seen, data.len(), "the feed returned every record");
    (upsert, read)
}

/// Which sides run: both (the default), or one alone for profiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sides {
    Both,
    Flextime,
    Raw,
}

fn sides() -> Sides {
    match std::env::var("FLEXTIME_BENCH_DB_SIDE").as_deref() {
        Ok("flextime") => Sides::Flextime,
        Ok("raw") => Sides::Raw,
        _ => Sides::Both,
    }
}

/// Pairs of rounds per backend: `FLEXTIME_BENCH_ROUNDS`, default 3.
fn rounds() -> usize {
    std::env::var("FLEXTIME_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_usize)
        .max(1)
}

/// The timings of one backend's rounds.
#[derive(Default)]
struct Rounds {
    upsert: Vec<Duration>,
    feed: Vec<Duration>,
    bulk: Vec<Duration>,
}

fn median_of(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Run the pairs: the Adapter into collection `items_<round>`, the raw bulk
/// method through `bulk(round)` (into a table of its own per round); the
/// side going first alternates.
async fn run_rounds<F, Fut>(db: &Arc<dyn Adapter>, data: &[(String, Value)], mut bulk: F) -> Rounds
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let which = sides();
    let mut out = Rounds::default();
    for round in 0..rounds() {
        let collection = format!("items_{round}");
        let raw_first = round % 2 == 1;
        if which != Sides::Flextime && raw_first {
            out.bulk.push(bulk(round).await);
        }
        if which != Sides::Raw {
            let (upsert, feed) = flextime_side(db, &collection, data, which == Sides::Both).await;
            out.upsert.push(upsert);
            out.feed.push(feed);
        }
        if which != Sides::Flextime && !raw_first {
            out.bulk.push(bulk(round).await);
        }
    }
    out
}

fn report(backend: &str, n: usize, rounds: &Rounds, row: Option<Duration>) {
    if !rounds.upsert.is_empty() {
        println!(
            "{backend:<9} flextime upsert      {}",
            rate(n, median_of(&rounds.upsert))
        );
    }
    if rounds.feed.iter().any(|d| !d.is_zero()) {
        println!(
            "{backend:<9} flextime change feed {}",
            rate(n, median_of(&rounds.feed))
        );
    }
    if let Some(row) = row {
        println!("{backend:<9} raw row-by-row       {}", rate(n, row));
    }
    if !rounds.bulk.is_empty() {
        println!(
            "{backend:<9} raw best bulk        {}",
            rate(n, median_of(&rounds.bulk))
        );
    }
    if rounds.upsert.is_empty() || rounds.bulk.is_empty() {
        return;
    }
    let ours = median_of(&rounds.upsert).as_secs_f64();
    let paired: Vec<f64> = rounds
        .upsert
        .iter()
        .zip(&rounds.bulk)
        .map(|(o, b)| b.as_secs_f64() / o.as_secs_f64())
        .collect();
    print!(
        "{backend:<9} ratio vs raw bulk (raw/flextime) {:.2}",
        median_of(&rounds.bulk).as_secs_f64() / ours
    );
    if let Some(row) = row {
        print!("   vs row-by-row {:.2}", row.as_secs_f64() / ours);
    }
    println!();
    println!(
        "{backend:<9} paired rounds vs raw bulk: {}",
        flextime_benches::paired_ratios(&paired)
    );
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

const SQLITE_UPSERT: &str = " ON CONFLICT (collection, id) DO UPDATE SET version = version + 1, seq = excluded.seq, \
     data = excluded.data, updated_at_us = excluded.updated_at_us, deleted_at_us = excluded.deleted_at_us";

async fn sqlite_table(pool: &sqlx::SqlitePool, table: &str) {
    sqlx::query(&format!(
        "CREATE TABLE {table} (collection TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, \
         seq INTEGER NOT NULL, data TEXT, updated_at_us INTEGER NOT NULL, deleted_at_us INTEGER, \
         PRIMARY KEY (collection, id)) WITHOUT ROWID"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// Raw row by row: `$sql` (an upsert of one row into `raw_rows`, binding
/// id, seq, JSON text and time) once per row, one transaction per 1,000.
macro_rules! raw_rows {
    ($db:ty, $table:ident, $sql:expr, $rows:ident) => {
        async fn $rows(pool: &sqlx::Pool<$db>, data: &[(String, Value)]) -> Duration {
            $table(pool, "raw_rows").await;
            let start = Instant::now();
            let mut seq = 0_i64;
            let sql = $sql;
            for chunk in data.chunks(BATCH) {
                let now = now_us();
                let mut tx = pool.begin().await.unwrap();
                for (id, text) in texts(chunk) {
                    seq += 1;
                    sqlx::query(&sql)
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
            start.elapsed()
        }
    };
}

/// The raw sides of a backend whose multi-row `INSERT` is the best bulk
/// method (SQLite, MySQL): `$bulk` upserts through multi-row `INSERT`s of
/// 500 rows, `$rows` one `INSERT` per row; one transaction per 1,000 rows.
macro_rules! raw_insert_sides {
    ($db:ty, $table:ident, $upsert:expr, $bulk:ident, $rows:ident) => {
        async fn $bulk(pool: &sqlx::Pool<$db>, table: &str, data: &[(String, Value)]) -> Duration {
            $table(pool, table).await;
            let start = Instant::now();
            let mut seq = 0_i64;
            for chunk in data.chunks(BATCH) {
                let rows = texts(chunk);
                let now = now_us();
                let mut tx = pool.begin().await.unwrap();
                for part in rows.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO {table} ({RAW_COLUMNS}) "
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
                    qb.push($upsert);
                    qb.build().execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
            start.elapsed()
        }

        raw_rows!(
            $db,
            $table,
            format!(
                "INSERT INTO raw_rows ({RAW_COLUMNS}) VALUES ('items', ?, 1, ?, ?, ?, NULL){}",
                $upsert
            ),
            $rows
        );
    };
}

raw_insert_sides!(
    sqlx::Sqlite,
    sqlite_table,
    SQLITE_UPSERT,
    sqlite_bulk,
    sqlite_rows
);

async fn sqlite(data: &[(String, Value)]) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let adapter = flextime_db::sqlite::SqliteAdapter::connect(&url, DbOptions::default())
        .await
        .unwrap();
    let pool = adapter.pool().clone();
    let db: Arc<dyn Adapter> = Arc::new(adapter);
    let rounds = run_rounds(&db, data, |round| {
        let pool = pool.clone();
        async move { sqlite_bulk(&pool, &format!("raw_bulk_{round}"), data).await }
    })
    .await;
    let row = if sides() == Sides::Both {
        Some(sqlite_rows(&pool, data).await)
    } else {
        None
    };
    report("sqlite", data.len(), &rounds, row);
}

fn pg_upsert(table: &str) -> String {
    format!(
        " ON CONFLICT (collection, id) DO UPDATE SET version = {table}.version + 1, seq = EXCLUDED.seq, \
         data = EXCLUDED.data, updated_at_us = EXCLUDED.updated_at_us, deleted_at_us = EXCLUDED.deleted_at_us"
    )
}

async fn pg_table(pool: &sqlx::PgPool, table: &str) {
    sqlx::query(&format!(
        "CREATE TABLE {table} (collection TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, \
         seq BIGINT NOT NULL, data JSONB, updated_at_us BIGINT NOT NULL, deleted_at_us BIGINT, \
         PRIMARY KEY (collection, id))"
    ))
    .execute(pool)
    .await
    .unwrap();
}

raw_rows!(
    sqlx::Postgres,
    pg_table,
    format!(
        "INSERT INTO raw_rows ({RAW_COLUMNS}) VALUES ('items', $1, 1, $2, $3::jsonb, $4, NULL){}",
        pg_upsert("raw_rows")
    ),
    pg_rows
);

async fn pg_unnest(pool: &sqlx::PgPool, table: &str, data: &[(String, Value)]) -> Duration {
    pg_table(pool, table).await;
    let start = Instant::now();
    let mut seq = 0_i64;
    let unnest_sql = format!(
        "INSERT INTO {table} ({RAW_COLUMNS}) SELECT 'items', u.id, 1, u.seq, u.data::jsonb, $4, NULL \
         FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(id, data, seq){}",
        pg_upsert(table)
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
    start.elapsed()
}

/// COPY cannot upsert: copy into a staging table, then upsert from it.
async fn pg_copy(pool: &sqlx::PgPool, table: &str, data: &[(String, Value)]) -> Duration {
    pg_table(pool, table).await;
    let start = Instant::now();
    let mut seq = 0_i64;
    let copy_sql = format!(
        "INSERT INTO {table} ({RAW_COLUMNS}) SELECT 'items', s.id, 1, s.seq, s.data::jsonb, $1, NULL \
         FROM raw_stage s{}",
        pg_upsert(table)
    );
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS raw_stage (id TEXT, data TEXT, seq BIGINT) ON COMMIT DELETE ROWS",
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
    start.elapsed()
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
    // The raw bulk side of a round: UNNEST and COPY, the faster counting.
    let (unnest, copy) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
    let rounds = run_rounds(&db, data, |round| {
        let pool = pool.clone();
        let (u, c) = (&unnest, &copy);
        async move {
            let a = pg_unnest(&pool, &format!("raw_unnest_{round}"), data).await;
            let b = pg_copy(&pool, &format!("raw_copy_{round}"), data).await;
            u.borrow_mut().push(a);
            c.borrow_mut().push(b);
            a.min(b)
        }
    })
    .await;
    let (unnest, copy) = (unnest.into_inner(), copy.into_inner());
    if !unnest.is_empty() {
        println!(
            "postgres  raw UNNEST           {}",
            rate(data.len(), median_of(&unnest))
        );
        println!(
            "postgres  raw COPY + upsert    {}",
            rate(data.len(), median_of(&copy))
        );
    }
    let row = if sides() == Sides::Both {
        Some(pg_rows(&pool, data).await)
    } else {
        None
    };
    report("postgres", data.len(), &rounds, row);
    // schema name from unique_name: [a-z0-9_]
    let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await;
}

const MYSQL_UPSERT: &str = " ON DUPLICATE KEY UPDATE version = version + 1, seq = VALUES(seq), data = VALUES(data), \
     updated_at_us = VALUES(updated_at_us), deleted_at_us = VALUES(deleted_at_us)";

async fn mysql_table(pool: &sqlx::MySqlPool, table: &str) {
    sqlx::query(&format!(
        "CREATE TABLE {table} (collection VARCHAR(128) NOT NULL, id VARCHAR(255) NOT NULL, \
         version BIGINT NOT NULL, seq BIGINT NOT NULL, data LONGTEXT, updated_at_us BIGINT NOT NULL, \
         deleted_at_us BIGINT, PRIMARY KEY (collection, id)) ENGINE = InnoDB"
    ))
    .execute(pool)
    .await
    .unwrap();
}

raw_insert_sides!(
    sqlx::MySql,
    mysql_table,
    MYSQL_UPSERT,
    mysql_bulk,
    mysql_rows
);

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
    let rounds = run_rounds(&db, data, |round| {
        let pool = pool.clone();
        async move { mysql_bulk(&pool, &format!("raw_bulk_{round}"), data).await }
    })
    .await;
    let row = if sides() == Sides::Both {
        Some(mysql_rows(&pool, data).await)
    } else {
        None
    };
    report("mysql", data.len(), &rounds, row);
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
    let (upsert, feed) = flextime_side(&db, "items", data, true).await;
    let rounds = Rounds {
        upsert: vec![upsert],
        feed: vec![feed],
        bulk: Vec::new(),
    };
    report("redis", data.len(), &rounds, None);
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
    let (upsert, feed) = flextime_side(&db, "items", data, true).await;
    let rounds = Rounds {
        upsert: vec![upsert],
        feed: vec![feed],
        bulk: Vec::new(),
    };
    report("mongodb", data.len(), &rounds, None);
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
