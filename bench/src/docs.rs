//! The document workload of issue 4: orders of about 300 bytes with a
//! unique `email`, an indexed `region` and `customer_id`, and non-indexed
//! `status` and `total`; obj's typed documents against SQLite as JSON text
//! with expression indexes and as typed columns with indexes.
//!
//! Every engine hands back real `Order` values (obj deserializes its stored
//! encoding straight into them, SQLite-JSON parses the text with serde_json,
//! SQLite-typed builds the struct from columns), so each step measures the
//! work an application would see.

use std::path::{Path, PathBuf};

use obj_engine::query::{FieldPath, Filter};
use obj_engine::{Document, IndexSpec, QuerySpec, ReadTxn, Value};
use serde::{Deserialize, Serialize};

use crate::kv::{sqlite_open, Result, CACHE_BYTES};
use crate::Rng;

/// Regions (the standard index): each holds about 1/16 of the orders.
pub const REGIONS: [&str; 16] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
];
const STATUSES: [&str; 5] = ["pending", "paid", "shipped", "delivered", "cancelled"];
const TAGS: [&str; 8] = ["gift", "express", "fragile", "bulk", "priority", "return", "wholesale", "promo"];
/// Width of each `customer_id` range query.
pub const CUSTOMER_SPAN: u64 = 100;

/// One order document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The customer (standard index; about one order per id value).
    pub customer_id: u64,
    /// Unique.
    pub email: String,
    /// Standard index.
    pub region: String,
    /// Not indexed; 0.00 to 999.99.
    pub total: f64,
    /// Not indexed.
    pub status: String,
    /// One to three tags.
    pub tags: Vec<String>,
    /// 200 characters.
    pub note: String,
}

impl Document for Order {
    const COLLECTION: &'static str = "orders";
    fn indexes() -> Vec<IndexSpec> {
        vec![
            IndexSpec::unique("by_email", "email").expect("valid"),
            IndexSpec::standard("by_region", "region").expect("valid"),
            IndexSpec::standard("by_customer", "customer_id").expect("valid"),
        ]
    }
}

/// `n` orders from a fixed seed; `customer_id` is drawn from `0..n`.
pub fn generate(n: usize) -> Vec<Order> {
    let mut rng = Rng::new(4);
    let letters = b"abcdefghijklmnopqrstuvwxyz     ";
    (0..n)
        .map(|i| {
            let ntags = 1 + rng.below(3) as usize;
            let mut tags: Vec<String> = Vec::with_capacity(ntags);
            while tags.len() < ntags {
                let t = TAGS[rng.below(TAGS.len() as u64) as usize];
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_string());
                }
            }
            let note: String =
                (0..200).map(|_| letters[rng.below(letters.len() as u64) as usize] as char).collect();
            Order {
                customer_id: rng.below(n as u64),
                email: format!("customer{i:07}.{:04x}@example.com", rng.below(0x10000)),
                region: REGIONS[rng.below(REGIONS.len() as u64) as usize].to_string(),
                total: rng.below(100_000) as f64 / 100.0,
                status: STATUSES[rng.below(STATUSES.len() as u64) as usize].to_string(),
                tags,
                note,
            }
        })
        .collect()
}

/// The reference answer of the filter step.
pub fn is_shipped_over_500(o: &Order) -> bool {
    o.status == "shipped" && o.total > 500.0
}

/// What a read step returned; engines must agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocSum {
    /// Documents returned.
    pub docs: u64,
    /// Sum of their `customer_id`s plus their tag counts (catches wrong documents).
    pub checksum: u64,
}

impl DocSum {
    fn add(&mut self, o: &Order) {
        self.docs += 1;
        self.checksum += o.customer_id + o.tags.len() as u64 + o.note.len() as u64;
    }
}

/// One engine under test.
pub trait DocEngine {
    /// Display name.
    fn name(&self) -> String;
    /// Inserts every order in one transaction (durable commit, WAL folded
    /// into the main file); returns their ids in order.
    fn bulk_insert(&mut self, orders: &[Order]) -> Result<Vec<u64>>;
    /// Reads each id, in one read transaction.
    fn get_by_id(&mut self, ids: &[u64]) -> Result<DocSum>;
    /// Looks each email up through the unique index, in one read transaction.
    fn by_email(&mut self, emails: &[&str]) -> Result<DocSum>;
    /// All orders of each region through the region index.
    fn by_region(&mut self, regions: &[&str]) -> Result<DocSum>;
    /// Orders with `lo <= customer_id < lo + CUSTOMER_SPAN`, for each `lo`.
    fn customer_range(&mut self, los: &[u64]) -> Result<DocSum>;
    /// `status = 'shipped' and total > 500` over the whole collection
    /// (no index covers it).
    fn shipped_over_500(&mut self) -> Result<DocSum>;
    /// The engine's plan for each indexed query and the filter (to show
    /// which index served them), and how the file's pages are used.
    fn plans(&self) -> Result<Vec<String>>;
    /// Closes the database and returns its size on disk.
    fn close(self: Box<Self>) -> Result<u64>;
}

// ---------------------------------------------------------------------------
// obj

/// obj's typed documents ([`Order`] implements [`Document`]).
pub struct ObjDocs {
    db: obj_engine::Db,
    dir: PathBuf,
}

impl ObjDocs {
    /// A new database in `dir` with a [`CACHE_BYTES`] page cache (as SQLite
    /// gets) and otherwise default options (durable commits).
    pub fn create(dir: &Path) -> Result<ObjDocs> {
        std::fs::create_dir_all(dir)?;
        let options = obj_engine::Options { cache_size: CACHE_BYTES, ..Default::default() };
        let db = obj_engine::Db::open_with(dir.join("orders.obj"), options)?;
        Ok(ObjDocs { db, dir: dir.to_path_buf() })
    }

    /// The database handle.
    pub fn db(&self) -> &obj_engine::Db {
        &self.db
    }

    fn read<T>(&self, f: impl FnOnce(&obj_engine::Collection<'_, ReadTxn>) -> Result<T>) -> Result<T> {
        let rx = self.db.begin_read()?;
        let c = rx.collection(Order::COLLECTION)?;
        f(&c)
    }
}

fn path(p: &str) -> FieldPath {
    FieldPath::parse(p).expect("valid path")
}

fn region_query(region: &str) -> QuerySpec {
    let mut q = QuerySpec::new(Order::COLLECTION);
    q.filter = Filter::Eq(path("region"), Value::from(region));
    q
}

fn customer_query(lo: u64) -> QuerySpec {
    let mut q = QuerySpec::new(Order::COLLECTION);
    q.filter = Filter::And(vec![
        Filter::Ge(path("customer_id"), Value::from(lo)),
        Filter::Lt(path("customer_id"), Value::from(lo + CUSTOMER_SPAN)),
    ]);
    q
}

fn shipped_query() -> QuerySpec {
    let mut q = QuerySpec::new(Order::COLLECTION);
    q.filter = Filter::And(vec![
        Filter::Eq(path("status"), Value::from("shipped")),
        Filter::Gt(path("total"), Value::from(500.0)),
    ]);
    q
}

fn obj_query(c: &obj_engine::Collection<'_, ReadTxn>, q: &QuerySpec, sum: &mut DocSum) -> Result<()> {
    let mut cursor = c.query(q)?;
    while let Some(item) = cursor.next_as::<Order>() {
        sum.add(&item?.1);
    }
    Ok(())
}

impl DocEngine for ObjDocs {
    fn name(&self) -> String {
        "obj".into()
    }

    fn bulk_insert(&mut self, orders: &[Order]) -> Result<Vec<u64>> {
        let ids = self.db.insert_many(orders)?;
        self.db.checkpoint()?;
        Ok(ids)
    }

    fn get_by_id(&mut self, ids: &[u64]) -> Result<DocSum> {
        self.read(|c| {
            let mut sum = DocSum::default();
            for &id in ids {
                sum.add(&c.get_as::<Order>(id)?.ok_or("obj: document missing")?);
            }
            Ok(sum)
        })
    }

    fn by_email(&mut self, emails: &[&str]) -> Result<DocSum> {
        self.read(|c| {
            let mut sum = DocSum::default();
            for &e in emails {
                let (_, o) =
                    c.find_unique_as::<Order>("by_email", &[Value::from(e)])?.ok_or("obj: email missing")?;
                sum.add(&o);
            }
            Ok(sum)
        })
    }

    fn by_region(&mut self, regions: &[&str]) -> Result<DocSum> {
        self.read(|c| {
            let mut sum = DocSum::default();
            for r in regions {
                obj_query(c, &region_query(r), &mut sum)?;
            }
            Ok(sum)
        })
    }

    fn customer_range(&mut self, los: &[u64]) -> Result<DocSum> {
        self.read(|c| {
            let mut sum = DocSum::default();
            for &lo in los {
                obj_query(c, &customer_query(lo), &mut sum)?;
            }
            Ok(sum)
        })
    }

    fn shipped_over_500(&mut self) -> Result<DocSum> {
        self.read(|c| {
            let mut sum = DocSum::default();
            obj_query(c, &shipped_query(), &mut sum)?;
            Ok(sum)
        })
    }

    fn plans(&self) -> Result<Vec<String>> {
        self.read(|c| {
            Ok(vec![
                "email plan: Collection::find_unique (unique index by_email)".to_string(),
                format!("region plan: {}", c.explain(&region_query(REGIONS[0]))?),
                format!("customer_id plan: {}", c.explain(&customer_query(0))?),
                format!("status/total plan: {}", c.explain(&shipped_query())?),
            ])
        })
        .and_then(|mut v| {
            let st = self.db.stat()?;
            v.push(format!(
                "file: {} pages of {} B in use, {} free; the collection's trees (documents, \
                 names, 3 indexes) use {}",
                st.pages_in_use,
                st.page_size,
                st.free_pages,
                crate::table::bytes(st.collections.iter().map(|c| c.file_size_bytes).sum())
            ));
            Ok(v)
        })
    }

    fn close(self: Box<Self>) -> Result<u64> {
        self.db.close()?;
        Ok(crate::dir_size(&self.dir))
    }
}

// ---------------------------------------------------------------------------
// SQLite

/// How SQLite stores the orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteShape {
    /// `body TEXT` holding the JSON document; expression indexes on
    /// `json_extract(body, '$.field')`.
    Json,
    /// One typed column per field (`tags` as JSON text); plain indexes.
    Typed,
}

/// SQLite (WAL, `synchronous=FULL`, 1 GiB page cache) in one of its two
/// usual document shapes.
pub struct SqliteDocs {
    conn: rusqlite::Connection,
    shape: SqliteShape,
    dir: PathBuf,
}

impl SqliteDocs {
    /// A new database in `dir` with the table and indexes of `shape`.
    pub fn create(dir: &Path, shape: SqliteShape) -> Result<SqliteDocs> {
        std::fs::create_dir_all(dir)?;
        let conn = sqlite_open(&dir.join("orders.sqlite"))?;
        conn.execute_batch(match shape {
            SqliteShape::Json => {
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
                 CREATE UNIQUE INDEX orders_email ON orders (json_extract(body, '$.email'));
                 CREATE INDEX orders_region ON orders (json_extract(body, '$.region'));
                 CREATE INDEX orders_customer ON orders (json_extract(body, '$.customer_id'));"
            }
            SqliteShape::Typed => {
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                   email TEXT NOT NULL UNIQUE, region TEXT NOT NULL, total REAL NOT NULL,
                   status TEXT NOT NULL, tags TEXT NOT NULL, note TEXT NOT NULL);
                 CREATE INDEX orders_region ON orders (region);
                 CREATE INDEX orders_customer ON orders (customer_id);"
            }
        })?;
        Ok(SqliteDocs { conn, shape, dir: dir.to_path_buf() })
    }

    fn columns(&self) -> &'static str {
        match self.shape {
            SqliteShape::Json => "body",
            SqliteShape::Typed => "customer_id, email, region, total, status, tags, note",
        }
    }

    fn field(&self, f: &str) -> String {
        match self.shape {
            SqliteShape::Json => format!("json_extract(body, '$.{f}')"),
            SqliteShape::Typed => f.to_string(),
        }
    }

    /// Runs `sql` once per parameter set in one read transaction, adding
    /// every row as an [`Order`].
    fn select<P: rusqlite::Params>(
        &mut self,
        sql: &str,
        params: impl IntoIterator<Item = P>,
        min_one: bool,
    ) -> Result<DocSum> {
        let shape = self.shape;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
        let mut sum = DocSum::default();
        {
            let mut stmt = tx.prepare_cached(sql)?;
            for p in params {
                let mut rows = stmt.query(p)?;
                let mut any = false;
                while let Some(row) = rows.next()? {
                    sum.add(&row_to_order(shape, row)?);
                    any = true;
                }
                if min_one && !any {
                    return Err("SQLite: no row".into());
                }
            }
        }
        tx.commit()?;
        Ok(sum)
    }
}

fn row_to_order(shape: SqliteShape, row: &rusqlite::Row<'_>) -> Result<Order> {
    Ok(match shape {
        SqliteShape::Json => serde_json::from_str(row.get_ref(0)?.as_str()?)?,
        SqliteShape::Typed => Order {
            customer_id: row.get::<_, i64>(0)? as u64,
            email: row.get(1)?,
            region: row.get(2)?,
            total: row.get(3)?,
            status: row.get(4)?,
            tags: serde_json::from_str(row.get_ref(5)?.as_str()?)?,
            note: row.get(6)?,
        },
    })
}

impl DocEngine for SqliteDocs {
    fn name(&self) -> String {
        match self.shape {
            SqliteShape::Json => "SQLite JSON".into(),
            SqliteShape::Typed => "SQLite typed".into(),
        }
    }

    fn bulk_insert(&mut self, orders: &[Order]) -> Result<Vec<u64>> {
        let shape = self.shape;
        let tx = self.conn.transaction()?;
        let mut ids = Vec::with_capacity(orders.len());
        {
            match shape {
                SqliteShape::Json => {
                    let mut stmt = tx.prepare_cached("INSERT INTO orders (body) VALUES (?1)")?;
                    for o in orders {
                        stmt.execute([serde_json::to_string(o)?])?;
                        ids.push(tx.last_insert_rowid() as u64);
                    }
                }
                SqliteShape::Typed => {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO orders (customer_id, email, region, total, status, tags, note)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?;
                    for o in orders {
                        stmt.execute(rusqlite::params![
                            o.customer_id as i64,
                            o.email,
                            o.region,
                            o.total,
                            o.status,
                            serde_json::to_string(&o.tags)?,
                            o.note
                        ])?;
                        ids.push(tx.last_insert_rowid() as u64);
                    }
                }
            }
        }
        tx.commit()?;
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(ids)
    }

    fn get_by_id(&mut self, ids: &[u64]) -> Result<DocSum> {
        let sql = format!("SELECT {} FROM orders WHERE id = ?1", self.columns());
        self.select(&sql, ids.iter().map(|&id| [id as i64]), true)
    }

    fn by_email(&mut self, emails: &[&str]) -> Result<DocSum> {
        let sql = format!("SELECT {} FROM orders WHERE {} = ?1", self.columns(), self.field("email"));
        self.select(&sql, emails.iter().map(|e| [*e]), true)
    }

    fn by_region(&mut self, regions: &[&str]) -> Result<DocSum> {
        let sql = format!("SELECT {} FROM orders WHERE {} = ?1", self.columns(), self.field("region"));
        self.select(&sql, regions.iter().map(|r| [*r]), false)
    }

    fn customer_range(&mut self, los: &[u64]) -> Result<DocSum> {
        let f = self.field("customer_id");
        let sql = format!("SELECT {} FROM orders WHERE {f} >= ?1 AND {f} < ?2", self.columns());
        self.select(&sql, los.iter().map(|&lo| [lo as i64, (lo + CUSTOMER_SPAN) as i64]), false)
    }

    fn shipped_over_500(&mut self) -> Result<DocSum> {
        let sql = format!(
            "SELECT {} FROM orders WHERE {} = 'shipped' AND {} > 500",
            self.columns(),
            self.field("status"),
            self.field("total")
        );
        self.select(&sql, [()], false)
    }

    fn plans(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (what, pred) in [
            ("email", format!("{} = 'x'", self.field("email"))),
            ("region", format!("{} = 'x'", self.field("region"))),
            ("customer_id", format!("{f} >= 1 AND {f} < 2", f = self.field("customer_id"))),
            (
                "status/total",
                format!("{} = 'shipped' AND {} > 500", self.field("status"), self.field("total")),
            ),
        ] {
            let sql = format!("EXPLAIN QUERY PLAN SELECT {} FROM orders WHERE {pred}", self.columns());
            let mut stmt = self.conn.prepare(&sql)?;
            let detail: Vec<String> =
                stmt.query_map([], |r| r.get::<_, String>(3))?.collect::<std::result::Result<_, _>>()?;
            out.push(format!("{what} plan: {}", detail.join("; ")));
        }
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        out.push(format!("file: {} pages of {size} B in use, {free} free", pages - free));
        Ok(out)
    }

    fn close(self: Box<Self>) -> Result<u64> {
        let dir = self.dir.clone();
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(crate::dir_size(&dir))
    }
}
