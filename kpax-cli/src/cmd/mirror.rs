//! `kpax mirror`: copies topics from one cluster to another, as the Go
//! client's MirrorMaker did, but exactly once.
//!
//! Records (keys, values, headers, timestamps) go to the same partition
//! when the two topics have as many partitions, else by key. Each batch is
//! written in one transaction on the destination, together with the
//! source offsets it consumed, committed for a group on the destination
//! cluster (`--group`): a record is in the destination once its offset is
//! committed, and a mirror that stops (killed, Ctrl-C, an error) resumes
//! from those offsets with nothing lost and nothing copied twice (for
//! readers with isolation.level read_committed). A second mirror with the
//! same transactional id fences the first.
//!
//! Without `--follow` the mirror stops once it has copied up to the end
//! offsets the source had when it started.

use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::reader;
use clap::{Args, ValueEnum};
use kpax::admin::{Admin, NewTopic, OffsetSpec};
use kpax::consumer::{IsolationLevel, OffsetReset, StartAt};
use kpax::producer::{ConsumerGroupMetadata, TransactionError};
use kpax::{
    Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the loop looks at the clock while no record arrives.
const TICK: Duration = Duration::from_millis(100);

/// How often progress is printed on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Transactions that may fail in a row (each aborted and retried) before
/// the mirror gives up.
const MAX_FAILED_TRANSACTIONS: u32 = 5;

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartArg {
    /// The oldest record still in the source.
    Earliest,
    /// Only records written after the mirror started.
    Latest,
}

/// Flags of `kpax mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The source cluster's bootstrap brokers.
    #[arg(long, value_name = "HOST:PORT,..")]
    from: String,
    /// The destination cluster's bootstrap brokers.
    #[arg(long, value_name = "HOST:PORT,..")]
    to: String,
    /// Properties for the source: security.protocol, ssl.*, sasl.*,
    /// client.id and the consumer's keys (isolation.level defaults to
    /// read_committed here).
    #[arg(long, value_name = "FILE")]
    from_config: Option<PathBuf>,
    /// Properties for the destination: security.protocol, ssl.*, sasl.*,
    /// client.id and the producer's keys (compression.type, linger.ms, ...).
    #[arg(long, value_name = "FILE")]
    to_config: Option<PathBuf>,
    /// A named profile (see `kpax profile`) for the source, under
    /// --from-config.
    #[arg(long, value_name = "NAME")]
    from_profile: Option<String>,
    /// A named profile for the destination, under --to-config.
    #[arg(long, value_name = "NAME")]
    to_profile: Option<String>,
    /// The topics to mirror (created on the destination with the source's
    /// partition count when missing).
    #[arg(required = true, value_name = "TOPIC")]
    topics: Vec<String>,
    /// The group on the destination cluster whose committed offsets say how
    /// far the mirror got (default: kpax-mirror.TOPIC[+TOPIC..]).
    #[arg(short = 'G', long)]
    group: Option<String>,
    /// The destination producer's transactional id (default: the group).
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// Keep mirroring new records until Ctrl-C (default: stop at the end
    /// offsets the source had at the start).
    #[arg(long)]
    follow: bool,
    /// Where a partition the group has no offset for starts.
    #[arg(long, value_enum, default_value = "earliest")]
    start: StartArg,
    /// Most records in one transaction.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Longest a transaction stays open while records trickle in.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::when::parse_duration)]
    commit_every: Duration,
    /// Bound on connecting, on each transaction, and (without --follow) on
    /// waiting for records.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::when::parse_duration)]
    timeout: Duration,
    /// No progress lines on stderr.
    #[arg(short, long)]
    quiet: bool,
}

impl MirrorArgs {
    /// The connection settings of one side.
    fn side(
        &self,
        brokers: &str,
        config: &Option<PathBuf>,
        profile: &Option<String>,
    ) -> ConnectArgs {
        ConnectArgs {
            brokers: Some(brokers.to_string()),
            config: config.clone(),
            profile: profile.clone(),
            no_env_profile: true,
            client_settings: Vec::new(),
            timeout: self.timeout,
            security_protocol: None,
            tls: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
            tls_insecure: false,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password_file: None,
        }
    }

    /// The destination group.
    fn group(&self) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("kpax-mirror.{}", self.topics.join("+")))
    }
}

/// What the mirror has done.
#[derive(Debug, Default)]
struct Progress {
    /// Records in committed transactions.
    mirrored: u64,
    /// Committed transactions.
    transactions: u64,
    /// Transactions aborted (and their records read again).
    aborted: u64,
}

/// Runs `kpax mirror`.
///
/// # Errors
/// Bad flags or config files; a source topic that does not exist; a
/// destination topic that cannot be created; a transaction failing
/// [`MAX_FAILED_TRANSACTIONS`] times in a row; another mirror with the
/// same transactional id taking over (fenced); no record within the
/// timeout while the end is not reached.
pub async fn run(args: MirrorArgs) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(t) = args.topics.iter().find(|t| !seen.insert(t.as_str())) {
        return Err(CliError::Usage(format!("topic {t} is named twice")));
    }
    let from = args.side(&args.from, &args.from_config, &args.from_profile);
    let to = args.side(&args.to, &args.to_config, &args.to_profile);
    let from_brokers = crate::connect::parse_brokers(&args.from, "--from")?;
    let to_brokers = crate::connect::parse_brokers(&args.to, "--to")?;
    if from_brokers.iter().any(|b| to_brokers.contains(b)) {
        return Err(CliError::Usage(
            "--from and --to name the same brokers: a topic cannot be mirrored onto itself".into(),
        ));
    }
    let group = args.group();
    let txn_id = args
        .transactional_id
        .clone()
        .unwrap_or_else(|| group.clone());

    // Settings first, so that a bad file fails before anything connects.
    let from_props = from.properties()?;
    let mut consumer_config = ConsumerConfig::from_properties(&from_props)
        .map_err(|e| CliError::Config(e.to_string()))?
        .with_auto_offset_reset(OffsetReset::Earliest);
    consumer_config.group_id = None;
    consumer_config.group_instance_id = None;
    consumer_config.enable_auto_commit = false;
    if from_props.get("isolation.level").is_none() {
        consumer_config = consumer_config.with_isolation_level(IsolationLevel::ReadCommitted);
    }
    let to_props = to.properties()?;
    let producer_config = ProducerConfig::from_properties(&to_props)
        .map_err(|e| CliError::Config(e.to_string()))?
        .with_transactional_id(txn_id.clone());
    let source = from.cluster()?;
    let dest = to.cluster()?;
    let source_admin = Admin::new(source.clone());
    let dest_admin = Admin::new(dest.clone());

    // The topics on both sides, the ends to reach, and where to start.
    let (same_partitions, starts, ends) = to
        .bounded("preparing the mirror", async {
            let mut same_partitions = BTreeMap::new();
            let mut starts: BTreeMap<TopicPartition, i64> = BTreeMap::new();
            let mut ends: BTreeMap<TopicPartition, i64> = BTreeMap::new();
            let committed = dest_admin
                .list_group_offsets(&group, None)
                .await
                .kafka(|| format!("reading group {group}'s offsets on {}", args.to))?;
            for topic in &args.topics {
                let partitions = source
                    .partitions(topic)
                    .await
                    .kafka(|| format!("source topic {topic}"))?;
                let dest_count =
                    dest_partitions(&dest, &dest_admin, topic, partitions.len()).await?;
                same_partitions.insert(topic.clone(), dest_count == partitions.len());
                if !args.follow {
                    let latest =
                        reader::offsets(&source_admin, topic, &partitions, OffsetSpec::Latest)
                            .await?;
                    ends.extend(
                        latest
                            .into_iter()
                            .map(|(p, o)| (TopicPartition::new(topic.as_str(), p), o)),
                    );
                }
                // Concrete offsets, so that an aborted transaction can
                // be read again from where it began.
                let spec = match args.start {
                    StartArg::Earliest => OffsetSpec::Earliest,
                    StartArg::Latest => OffsetSpec::Latest,
                };
                let fresh = reader::offsets(&source_admin, topic, &partitions, spec).await?;
                for p in partitions {
                    let at = committed
                        .iter()
                        .find(|(tp, _)| tp.topic == *topic && tp.partition == p)
                        .and_then(|(_, c)| c.as_ref().ok())
                        .and_then(|c| c.offset);
                    let start = at.or_else(|| fresh.get(&p).copied()).unwrap_or(0);
                    starts.insert(TopicPartition::new(topic.as_str(), p), start);
                }
            }
            Ok((same_partitions, starts, ends))
        })
        .await?;

    let consumer =
        Consumer::new(source, consumer_config).kafka(|| "starting the consumer".into())?;
    for (tp, start) in &starts {
        consumer.assign([tp.clone()], StartAt::Offset(*start));
    }
    let producer = Producer::new(dest, producer_config).kafka(|| "starting the producer".into())?;
    let result = async {
        to.bounded(&format!("initialising transactions ({txn_id})"), async {
            producer
                .init_transactions()
                .await
                .kafka(|| format!("initialising transactions as {txn_id}"))
        })
        .await?;
        let mut m = Mirror {
            args: &args,
            consumer: &consumer,
            producer: &producer,
            meta: ConsumerGroupMetadata::new(group.clone()),
            same_partitions,
            ends,
            committed: starts,
            open: Open::default(),
            progress: Progress::default(),
        };
        let started = Instant::now();
        m.run().await?;
        Ok::<_, CliError>((m.progress, started.elapsed()))
    }
    .await;
    producer.close(Duration::from_secs(5)).await;
    consumer.close().await;
    let (progress, took) = result?;
    println!(
        "mirrored {} records of {} from {} to {} in {:.1}s ({} transactions, {} aborted); group {group} on {} holds the offsets",
        progress.mirrored,
        args.topics.join(", "),
        args.from,
        args.to,
        took.as_secs_f64(),
        progress.transactions,
        progress.aborted,
        args.to,
    );
    Ok(())
}

/// The partition count of `topic` on the destination, creating it with
/// `want` partitions (and the broker's default replication factor) when
/// it is missing.
async fn dest_partitions(
    dest: &kpax::Cluster,
    admin: &Admin,
    topic: &str,
    want: usize,
) -> Result<usize> {
    use kpax::proto::generated::ErrorCode;
    match dest.partitions(topic).await {
        Ok(p) => return Ok(p.len()),
        Err(kpax::Error::Broker { code, .. }) if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => {}
        Err(e) => {
            return Err(CliError::Kafka {
                context: format!("destination topic {topic}"),
                source: e,
            })
        }
    }
    let partitions =
        i32::try_from(want).map_err(|_| CliError::Failed(format!("{topic}: {want} partitions")))?;
    let created = admin
        .create_topics(&[NewTopic::new(topic, partitions, -1)], false)
        .await
        .kafka(|| format!("creating {topic} on the destination"))?;
    for (name, r) in created {
        match r {
            Ok(_) => eprintln!("mirror: created {name} on the destination ({want} partitions)"),
            Err(kpax::Error::Broker { code, .. }) if code == ErrorCode::TOPIC_ALREADY_EXISTS => {}
            Err(e) => {
                return Err(CliError::Kafka {
                    context: format!("creating {name} on the destination"),
                    source: e,
                })
            }
        }
    }
    // The new topic reaches the metadata a moment later (callers bound
    // the wait).
    let mut wait = Duration::from_millis(50);
    loop {
        match reader::partitions(dest, topic).await {
            Err(CliError::Kafka {
                source: kpax::Error::Broker { code, .. },
                ..
            }) if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            r => return Ok(r?.len()),
        }
    }
}

/// The transaction being filled.
#[derive(Debug, Default)]
struct Open {
    /// When it began; `None`: no transaction is open.
    since: Option<Instant>,
    /// Records sent in it.
    records: u64,
    /// The source offset after the last record sent in it, per partition.
    next: BTreeMap<TopicPartition, i64>,
}

/// The copying loop.
struct Mirror<'a> {
    args: &'a MirrorArgs,
    consumer: &'a Consumer,
    producer: &'a Producer,
    meta: ConsumerGroupMetadata,
    /// Per topic: whether the destination has as many partitions.
    same_partitions: BTreeMap<String, bool>,
    /// Without --follow: the source offsets to reach.
    ends: BTreeMap<TopicPartition, i64>,
    /// Where each partition's next transaction starts: its start, then the
    /// source offset after its last committed record.
    committed: BTreeMap<TopicPartition, i64>,
    open: Open,
    progress: Progress,
}

impl Mirror<'_> {
    async fn run(&mut self) -> Result<()> {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut idle_since = Instant::now();
        let mut shown = Instant::now();
        let mut failures = 0u32;
        loop {
            if !self.args.quiet && shown.elapsed() >= PROGRESS_EVERY {
                shown = Instant::now();
                eprintln!("mirror: {}", self.progress_line());
            }
            let full = self.open.records >= u64::from(self.args.batch);
            let due = self
                .open
                .since
                .is_some_and(|t| t.elapsed() >= self.args.commit_every);
            let done = !self.args.follow && self.reached_ends();
            if self.open.since.is_some() && (full || due || done) {
                match self.commit().await? {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        self.abort(e, failures).await?;
                    }
                }
                continue;
            }
            if done {
                return Ok(());
            }
            let room = (u64::from(self.args.batch) - self.open.records).max(1) as usize;
            tokio::select! {
                _ = &mut ctrl_c => {
                    if self.open.since.is_some() {
                        if let Err(e) = self.commit().await? {
                            self.abort(e, MAX_FAILED_TRANSACTIONS).await?;
                        }
                    }
                    return Ok(());
                }
                got = tokio::time::timeout(TICK, self.consumer.recv_batch(room)) => match got {
                    Err(_) => {
                        if !self.args.follow && idle_since.elapsed() >= self.args.timeout {
                            return Err(CliError::Timeout {
                                what: format!(
                                    "mirroring (no record arrived; {})",
                                    self.progress_line()
                                ),
                                after: self.args.timeout,
                            });
                        }
                    }
                    Ok(batch) => {
                        let batch = batch.kafka(|| "consuming from the source".into())?;
                        idle_since = Instant::now();
                        if let Err(e) = self.send(batch).await {
                            failures += 1;
                            self.abort(e, failures).await?;
                        }
                    }
                },
            }
        }
    }

    /// Sends `batch` in the open transaction (beginning one if needed).
    async fn send(&mut self, batch: Vec<ConsumerRecord>) -> kpax::Result<()> {
        for r in batch {
            let tp = TopicPartition::new(&*r.topic, r.partition);
            if self.ends.get(&tp).is_some_and(|end| r.offset >= *end) {
                continue;
            }
            if self.open.since.is_none() {
                self.producer.begin_transaction()?;
                self.open.since = Some(Instant::now());
            }
            let same = self
                .same_partitions
                .get(tp.topic.as_str())
                .copied()
                .unwrap_or(false);
            let out = ProducerRecord {
                topic: tp.topic.clone(),
                partition: same.then_some(r.partition),
                key: r.key_bytes(),
                value: r.value_bytes(),
                headers: r
                    .headers_owned()
                    .into_iter()
                    .map(|h| (h.key, h.value))
                    .collect(),
                timestamp: (r.timestamp >= 0).then_some(r.timestamp),
            };
            // The delivery is checked by commit_transaction, which fails
            // (abortable) when any record of the transaction failed.
            drop(self.producer.send(out).await?);
            self.open.records += 1;
            self.open.next.insert(tp, r.offset + 1);
        }
        Ok(())
    }

    /// Commits the open transaction with its source offsets: the
    /// transaction's error (to abort) inside, a timeout outside (whether it
    /// committed is then unknown; a rerun resumes from what did).
    async fn commit(&mut self) -> Result<kpax::Result<()>> {
        let bound = self.args.timeout;
        let work = async {
            if !self.open.next.is_empty() {
                self.producer
                    .send_offsets_to_transaction(self.open.next.clone(), &self.meta)
                    .await?;
            }
            self.producer.commit_transaction().await
        };
        let r = tokio::time::timeout(bound, work)
            .await
            .map_err(|_| CliError::Timeout {
                what: format!("committing a transaction ({})", self.progress_line()),
                after: bound,
            })?;
        if r.is_ok() {
            self.progress.mirrored += self.open.records;
            self.progress.transactions += 1;
            self.committed.extend(std::mem::take(&mut self.open.next));
            self.open = Open::default();
        }
        Ok(r)
    }

    /// Aborts the open transaction after `error` and reads its records
    /// again from `committed`; gives up on a fatal error (fenced) or after
    /// [`MAX_FAILED_TRANSACTIONS`] failures in a row.
    async fn abort(&mut self, error: kpax::Error, failures: u32) -> Result<()> {
        if matches!(error, kpax::Error::Transaction(TransactionError::Fatal(_))) {
            return Err(CliError::Kafka {
                context: format!(
                    "mirroring (another producer with transactional id {} may have taken over)",
                    self.args
                        .transactional_id
                        .clone()
                        .unwrap_or_else(|| self.args.group())
                ),
                source: error,
            });
        }
        if failures >= MAX_FAILED_TRANSACTIONS {
            return Err(CliError::Kafka {
                context: format!("mirroring ({failures} transactions failed in a row)"),
                source: error,
            });
        }
        eprintln!("mirror: transaction failed, aborting and reading its records again: {error}");
        if self.open.since.is_some() {
            tokio::time::timeout(self.args.timeout, self.producer.abort_transaction())
                .await
                .map_err(|_| CliError::Timeout {
                    what: "aborting the transaction".into(),
                    after: self.args.timeout,
                })?
                .kafka(|| "aborting the transaction".into())?;
        }
        for tp in std::mem::take(&mut self.open.next).into_keys() {
            let at = self.committed.get(&tp).copied().unwrap_or(0);
            self.consumer
                .seek(&tp.topic, tp.partition, StartAt::Offset(at));
        }
        self.open = Open::default();
        self.progress.aborted += 1;
        Ok(())
    }

    /// Whether every partition's position has reached its end.
    fn reached_ends(&self) -> bool {
        let positions = self.consumer.positions();
        self.ends.iter().all(|(tp, end)| {
            let at = self
                .open
                .next
                .get(tp)
                .copied()
                .into_iter()
                .chain(positions.get(tp).copied())
                .chain(self.committed.get(tp).copied())
                .max();
            at.is_some_and(|o| o >= *end)
        })
    }

    fn progress_line(&self) -> String {
        let lag = self.consumer.stats().total_lag();
        format!(
            "{} records mirrored in {} transactions ({} in the open one), {} aborted, source lag {}",
            self.progress.mirrored,
            self.progress.transactions,
            self.open.records,
            self.progress.aborted,
            lag,
        )
    }
}
