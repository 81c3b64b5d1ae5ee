//! Crypto-shredding's cost: append and load p50 through the store with and without
//! encryption (in-process, against DynamoDB Local, the same table; sealed with key leases, as
//! the functions run, and without, every use reading the key item), how often a key must be
//! unwrapped (a KMS Decrypt in AWS) for 1,000 active customers with the cache, and what KMS
//! adds per million turns beside DynamoDB. Unwraps are counted as the cache's growth: every
//! miss inserts, and the bench's cache holds every key for the whole run.
use std::time::Instant;

use tidewater::{Caller, Config, ContextLoader, ContextRequest, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender};
use uuid::Uuid;

use crate::process::BENCH_MASTER_KEYS;
use crate::redaction::chat_text;
use crate::report::{Report, Status};
use crate::stats::Samples;
use crate::BoxError;

const CUSTOMERS: usize = 1_000;
const CALLS: usize = 1_000;
/// KMS: $0.03 per 10,000 requests (us-east-1); DynamoDB on-demand as the README's Cost.
const KMS_PER_MILLION: f64 = 3.0;
const READ_UNIT_PER_MILLION: f64 = 0.125;
const WRITE_UNIT_PER_MILLION: f64 = 0.625;

fn turn(config: &Config, id: String, content: &str) -> Result<tidewater::TurnDraft, BoxError> {
    let turn = NewTurn { response_id: id, role: "user".into(), content: content.to_owned(), intent: None, token_count: None, item: None };
    Ok(turn.validate(config)?)
}

fn cached_keys(store: &DynamoStore) -> usize {
    store.config().encryption.as_ref().and_then(|e| e.cache.lock().ok().map(|c| c.len())).unwrap_or(0)
}

/// A store instance of its own (an empty cache) on `plain`'s table, encrypting.
fn sealed_instance(plain: &DynamoStore) -> Result<DynamoStore, BoxError> {
    sealed_instance_leasing(plain, plain.config().key_lease)
}

/// [`sealed_instance`] with key leases of `lease` (zero: none, every use reads the key item).
fn sealed_instance_leasing(plain: &DynamoStore, lease: std::time::Duration) -> Result<DynamoStore, BoxError> {
    let secret = tidewater::Secret::new("MASTER_KEYS", BENCH_MASTER_KEYS)?;
    let config = Config {
        key_cache_entries: 2 * CUSTOMERS,
        key_cache_ttl: std::time::Duration::from_secs(3_600),
        key_lease: lease,
        ..plain.config().clone()
    };
    Ok(DynamoStore::new(plain.client().clone(), config.with_master_keys(&secret)?))
}

pub(crate) async fn crypto_cost(plain: &DynamoStore, report: &mut Report, rounds: usize) -> Result<(), BoxError> {
    let sealed = sealed_instance(plain)?;
    let unleased = sealed_instance_leasing(plain, std::time::Duration::ZERO)?;
    let stores = [plain, &sealed, &unleased];
    let caller = Caller::new("bench-crypto", Vec::<String>::new());
    let mut sessions = Vec::new();
    for store in stores {
        sessions.push(store.create_session(&caller, NewSession::default()).await?.session_id);
    }
    let content = chat_text(29, 1_000);
    let (mut appends, mut loads): ([Samples; 3], [Samples; 3]) = Default::default();
    for round in 0..(20 + rounds) {
        for step in 0..3 {
            let which = (step + round) % 3;
            let draft = turn(stores[which].config(), format!("r{round}"), &content)?;
            let started = Instant::now();
            stores[which].append_turn(&caller, sessions[which], draft).await?;
            if round >= 20 {
                appends[which].push_duration(started.elapsed());
            }
        }
    }
    let request = ContextRequest { max_turns: Some(10), ..ContextRequest::default() };
    for round in 0..(20 + rounds) {
        for step in 0..3 {
            let which = (step + round) % 3;
            let started = Instant::now();
            stores[which].load_context(&caller, sessions[which], request).await?;
            if round >= 20 {
                loads[which].push_duration(started.elapsed());
            }
        }
    }
    let append_plain = report.figure("crypto.append_plain_p50_ms", "store append, 1 KB turn, in the clear, p50", appends[0].median(), "ms");
    let append_sealed = report.figure("crypto.append_sealed_p50_ms", "store append, 1 KB turn, sealed, p50", appends[1].median(), "ms");
    let load_plain = report.figure("crypto.load_plain_p50_ms", "store load-context, N=10, in the clear, p50", loads[0].median(), "ms");
    let load_sealed = report.figure("crypto.load_sealed_p50_ms", "store load-context, N=10, sealed, p50", loads[1].median(), "ms");
    let append_unleased = report.figure("crypto.append_unleased_p50_ms", "store append, 1 KB turn, sealed, no key lease, p50", appends[2].median(), "ms");
    let load_unleased = report.figure("crypto.load_unleased_p50_ms", "store load-context, N=10, sealed, no key lease, p50", loads[2].median(), "ms");
    report.figure("crypto.append_overhead_unleased", "append p50 overhead of encryption without a key lease", (append_unleased / append_plain - 1.0) * 100.0, "%");
    report.figure("crypto.load_overhead_unleased", "load-context p50 overhead of encryption without a key lease", (load_unleased / load_plain - 1.0) * 100.0, "%");
    let append_overhead = report.figure("crypto.append_overhead", "append p50 overhead of encryption", (append_sealed / append_plain - 1.0) * 100.0, "%");
    let load_overhead = report.figure("crypto.load_overhead", "load-context p50 overhead of encryption", (load_sealed / load_plain - 1.0) * 100.0, "%");
    let worst = append_overhead.max(load_overhead);
    report.check(
        "Encryption",
        "append and load-context p50, sealed against in the clear (store, in-process, DynamoDB Local)",
        "≤ 5 %",
        format!("append {append_overhead:+.1} %, load {load_overhead:+.1} %"),
        if worst <= 5.0 { Status::Met } else { Status::Missed },
        "one session in a loop: a key lease (KEY_LEASE_MS) spares nearly every read of the key item; without one, each sealed call adds a consistent GetItem".to_owned(),
    );

    // 1,000 customers, each with a session; the first sealed append makes each key (a KMS Encrypt).
    let customers: Vec<Caller> = (0..CUSTOMERS).map(|i| Caller::new(format!("bench-crypto-{i}"), Vec::<String>::new())).collect();
    let mut their_sessions: Vec<Uuid> = Vec::with_capacity(CUSTOMERS);
    let maker = sealed_instance(plain)?;
    for (i, customer) in customers.iter().enumerate() {
        let session = plain.create_session(customer, NewSession::default()).await?.session_id;
        maker.append_turn(customer, session, turn(maker.config(), format!("first-{i}"), "hello")?).await?;
        their_sessions.push(session);
    }
    // Then uniform traffic over them, from a cold instance: 1,000 appends, then 1,000 more.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut pick = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % CUSTOMERS as u64) as usize
    };
    let cold = sealed_instance(plain)?;
    let mut unwraps = Vec::new();
    for batch in 0..2 {
        let before = cached_keys(&cold);
        for i in 0..CALLS {
            let who = pick();
            let draft = turn(cold.config(), format!("b{batch}-{i}"), &content)?;
            cold.append_turn(&customers[who], their_sessions[who], draft).await?;
        }
        unwraps.push(cached_keys(&cold) - before);
    }
    let loader = sealed_instance(plain)?;
    let before = cached_keys(&loader);
    for _ in 0..CALLS {
        let who = pick();
        loader.load_context(&customers[who], their_sessions[who], request).await?;
    }
    let load_unwraps = cached_keys(&loader) - before;
    report.figure("crypto.unwraps_first_1000_appends", "unwraps (KMS Decrypt) per 1,000 appends over 1,000 customers, cold instance", unwraps[0] as f64, "");
    let warm = report.figure("crypto.unwraps_next_1000_appends", "unwraps per the next 1,000 appends, same instance (cache 1 h)", unwraps[1] as f64, "");
    report.figure("crypto.unwraps_1000_loads", "unwraps per 1,000 loads over 1,000 customers, cold instance", load_unwraps as f64, "");
    report.figure("crypto.encrypts_per_customer", "KMS Encrypt calls per customer (the key's creation, once)", 1.0, "");

    // Per million turns: KMS at the measured cold rate (the worst case: every instance cold),
    // beside DynamoDB's own: the append (6 WCU transactional, 1 RCU, README Cost) and the key
    // item's consistent read (1 RCU) that encryption adds.
    let kms = report.figure("crypto.kms_per_million_turns_cold", "KMS per million turns, cold-instance rate", unwraps[0] as f64 / CALLS as f64 * KMS_PER_MILLION, "$");
    report.figure("crypto.kms_per_million_turns_warm", "KMS per million turns, warm-instance rate", warm / CALLS as f64 * KMS_PER_MILLION, "$");
    let dynamodb = report.figure("crypto.dynamodb_per_million_turns", "DynamoDB per million turns (append: 6 WCU, 1 RCU)", 6.0 * WRITE_UNIT_PER_MILLION + READ_UNIT_PER_MILLION, "$");
    report.figure("crypto.key_reads_per_million_turns", "the key item's consistent read, per million turns, at most (a lease spares repeats within KEY_LEASE_MS)", READ_UNIT_PER_MILLION, "$");
    report.note(format!(
        "Encryption: KMS adds at most ${kms:.2} per million turns (every instance cold) beside DynamoDB's ${dynamodb:.2}, plus at most $0.13 for the key item's reads; \
         a key is made (one KMS Encrypt) once per customer."
    ));
    Ok(())
}
