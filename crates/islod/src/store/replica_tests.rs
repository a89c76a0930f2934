use std::sync::Arc;

use super::*;

fn node(ledger: &Arc<MemLedger>, name: &str) -> Store {
    Store::memory_in(Some(Replica {
        ledger: ledger.clone(),
        node: name.into(),
    }))
    .unwrap()
}

#[test]
fn the_table_a_statement_writes_is_found() {
    for (sql, table) in [
        ("INSERT INTO tenants (id) VALUES (?1)", "tenants"),
        ("INSERT OR REPLACE INTO images (a) VALUES (1)", "images"),
        ("REPLACE INTO x(a) VALUES (1)", "x"),
        ("UPDATE sandboxes SET a = 1", "sandboxes"),
        ("UPDATE OR IGNORE secrets SET a = 1", "secrets"),
        ("DELETE FROM session_tokens WHERE 1", "session_tokens"),
        ("  insert\n into shares(a) values (1)", "shares"),
    ] {
        assert_eq!(target_table(sql).as_deref(), Some(table), "{sql}");
    }
    assert!(is_shared("UPDATE sandboxes SET status = 'x'"));
    assert!(!is_shared("INSERT INTO exec_sessions (id) VALUES (1)"));
    assert!(
        is_shared("WITH x AS (SELECT 1) DELETE FROM images"),
        "unknown shapes replicate"
    );
}

#[test]
fn values_round_trip_through_json() {
    let b = Batch {
        schema: 3,
        node: "n1".into(),
        stmts: vec![Stmt {
            sql: "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)".into(),
            params: vec![
                Val::Null,
                Val::Int(-7),
                Val::Real(1.5),
                Val::Text("é".into()),
                Val::Blob(vec![0, 255, 1]),
            ],
        }],
    };
    let text = serde_json::to_string(&b).unwrap();
    assert_eq!(serde_json::from_str::<Batch>(&text).unwrap(), b);
}

#[test]
fn what_one_node_writes_every_node_reads_and_local_rows_stay_home() {
    let ledger = Arc::new(MemLedger::default());
    let (a, b) = (node(&ledger, "a"), node(&ledger, "b"));
    let t = a.ensure_tenant("team").unwrap();
    b.sync().unwrap();
    assert_eq!(b.tenant_name(&t).unwrap().as_deref(), Some("team"));
    // b writes on a's tenant; a catches up when it next writes or syncs
    b.insert_key(&t, "ci", "hash-1").unwrap();
    a.sync().unwrap();
    assert_eq!(a.keys_of(&t).unwrap().len(), 1);
    // a node-local table is not replicated
    a.write(|tx| {
        tx.execute(
            "INSERT INTO images (reference, digest, config, layers, pulled_at) VALUES ('r', 'd', '{}', '[]', 'now')",
            rusqlite::params![],
        )?;
        Ok(())
    })
    .unwrap();
    b.sync().unwrap();
    let n = |s: &Store| -> i64 {
        s.db()
            .query_row("SELECT COUNT(*) FROM images", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!((n(&a), n(&b)), (1, 0));
}

#[test]
fn racing_writers_both_land_in_one_order() {
    let ledger = Arc::new(MemLedger::default());
    let (a, b) = (node(&ledger, "a"), node(&ledger, "b"));
    // b is behind: its write is refused by the ledger, it catches up and runs again
    a.ensure_tenant("one").unwrap();
    let t2 = b.ensure_tenant("two").unwrap();
    // ensure_tenant read "one" is missing on b's stale state the first time; both exist now
    a.sync().unwrap();
    b.sync().unwrap();
    for s in [&a, &b] {
        assert!(s.tenant_name(&t2).unwrap().is_some());
        let n: i64 = s
            .db()
            .query_row("SELECT COUNT(*) FROM tenants", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
    // the same name from two stale nodes: one tenant, one id
    let c = node(&ledger, "c");
    let x = a.ensure_tenant("same").unwrap();
    let y = b.ensure_tenant("same").unwrap();
    assert_eq!(x, y);
    c.sync().unwrap();
    assert_eq!(c.ensure_tenant("same").unwrap(), x);
    assert_eq!(
        ledger.head().unwrap(),
        3,
        "one entry per new tenant, none for a read"
    );
}

#[test]
fn the_first_node_seeds_the_ledger_and_a_foreign_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let alone = Store::open(&dir.path().join("a.db")).unwrap();
    let t = alone.ensure_tenant("old").unwrap();
    alone.insert_key(&t, "k", "h").unwrap();
    drop(alone);
    let ledger = Arc::new(MemLedger::default());
    let rep = |n: &str| Replica {
        ledger: ledger.clone(),
        node: n.into(),
    };
    let a = Store::open_in(&dir.path().join("a.db"), Some(rep("a"))).unwrap();
    let b = Store::open_in(&dir.path().join("b.db"), Some(rep("b"))).unwrap();
    assert_eq!(b.keys_of(&t).unwrap().len(), 1, "b starts from a's seed");
    drop(a);
    let a = Store::open_in(&dir.path().join("a.db"), Some(rep("a"))).unwrap();
    assert_eq!(
        a.keys_of(&t).unwrap().len(),
        1,
        "a rejoins without seeding twice"
    );
    let other = Store::open(&dir.path().join("c.db")).unwrap();
    other.ensure_tenant("mine").unwrap();
    drop(other);
    let e = Store::open_in(&dir.path().join("c.db"), Some(rep("c")))
        .err()
        .unwrap();
    assert!(e.to_string().contains("empty state directory"), "{e}");
}

#[test]
fn a_batch_from_a_newer_schema_stops_the_replica() {
    let ledger = Arc::new(MemLedger::default());
    let a = node(&ledger, "a");
    ledger
        .append(
            0,
            &Batch {
                schema: super::super::schema_version() + 1,
                node: "future".into(),
                stmts: vec![],
            },
        )
        .unwrap();
    let e = a.sync().unwrap_err().to_string();
    assert!(
        e.contains("upgrade this node") && e.contains("future"),
        "{e}"
    );
}
