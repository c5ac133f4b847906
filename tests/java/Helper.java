/*
 * Helper.java: drives the official Java Kafka client for kpax's interop tests.
 *
 * Run with the single-file source launcher (no build step):
 *   java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
 *        -cp '<kafka>/lib/*' tests/java/Helper.java <command> [options]
 * (the Rust harness, tests/harness/java.rs, compiles it once with javac
 * instead, so that each launch takes ~0.2 s rather than ~1.5 s).
 *
 * This comment is the contract the Rust tests rely on.
 *
 * Encodings
 *   bytes (keys, values, header values): lowercase hex; "-" = null; "" = empty array.
 *   headers: "" = none; else comma-separated name=hex items, in order (value "-" = null).
 *   stdout: tab-separated lines, each flushed at once; nothing else goes to stdout.
 *   Fatal error: one line on stderr, exit 1.  Bad command line: message on stderr, exit 2
 *   (a client config rejected by Kafka, e.g. --acks 0 --idempotence true, also exits 2).
 *   Java client logging: WARN and above, on stderr (env KPAX_JAVA_LOG=<level> overrides).
 *
 * produce --bootstrap B --topic T [--compression none|gzip|snappy|lz4|zstd]
 *         [--acks all|1|0] [--idempotence true|false] [--transactional-id ID]
 *         [--linger-ms N] [--batch-size N]
 *   stdin:  partition<TAB>key<TAB>value<TAB>headers   (partition: integer, or "-" for
 *           Java's default partitioner; missing trailing fields: key/value null, no
 *           headers; blank lines are ignored)
 *           #begin | #commit | #abort | #flush   (control lines)
 *   With --transactional-id, initTransactions() runs at start.  Record lines are
 *   numbered seq = 0, 1, ... (control lines are not counted).
 *   stdout: ack<TAB>seq<TAB>partition<TAB>offset      (offset -1 with --acks 0)
 *           err<TAB>seq<TAB>ExceptionSimpleName: message
 *             (in completion order; send() throwing synchronously is also an err line)
 *           committed | aborted | flushed   (after the control call returns; every
 *             ack/err of earlier records comes before it; records still buffered at
 *             #abort fail with TransactionAbortedException, so #flush first to get
 *             aborted records into the log)
 *           done<TAB>acked<TAB>failed   (at EOF, after flush() and close(); exit 0)
 *
 * consume --bootstrap B --topic T [--isolation read_committed|read_uncommitted]
 *         [--group G] [--protocol classic|consumer]
 *         [--assignor range|roundrobin|sticky|cooperative-sticky|uniform]
 *         [--group-instance-id ID] [--from beginning|end] [--count N] [--idle-ms N]
 *         [--max-ms N] [--commit sync|none] [--stdin-control] [--poll-ms N]
 *         [--max-poll-records N]
 *   No --group: assign every partition of T, seek to beginning (default) or end.
 *   --group: subscribe, enable.auto.commit=false, auto.offset.reset from --from
 *     (earliest by default).  classic: --assignor range|roundrobin|sticky|
 *     cooperative-sticky -> partition.assignment.strategy; consumer: --assignor
 *     uniform|range -> group.remote.assignor.  --commit defaults to sync with a group
 *     (none without one).  --group-instance-id needs --group.
 *   stdout: assigned|revoked|lost<TAB>p,p,...   (the listener's argument, sorted;
 *             empty field when none; incremental for cooperative / consumer protocol)
 *           ready   (once: after the first assignment, even an empty one, or after
 *             assign+seek without a group; positions are resolved first, so
 *             "--from end" misses nothing produced after it)
 *           rec<TAB>partition<TAB>offset<TAB>key<TAB>value<TAB>headers<TAB>timestamp
 *           commit<TAB>p=offset,...   (commitSync after a poll that printed records:
 *             the next offset of each such partition, past transaction markers when
 *             its whole batch was printed; also in onPartitionsRevoked and at stop,
 *             for whatever was printed but not yet committed; a failed commit is
 *             retried after the next poll, and unless it is RebalanceInProgress, a
 *             warning on stderr)
 *           done<TAB>n   (records printed; after close(), exit 0)
 *   Stops when --count N records were printed (the rest of that poll is neither
 *   printed nor committed); after --idle-ms (default 0 = never) without a record
 *   (the clock starts at "ready"); after --max-ms since start (default 120000); or,
 *   with --stdin-control, on a stdin line "stop" or EOF.  --poll-ms: poll timeout
 *   (default 100, also the granularity of these checks).
 *
 * share-consume --bootstrap B --topic T --group G [--count N] [--idle-ms N] [--max-ms N]
 *         [--poll-ms N] [--max-poll-records N] [--pause-ms N]
 *   A KafkaShareConsumer (share groups, KIP-932) subscribed to T in share group G, in
 *   explicit acknowledgement mode: every record printed is acknowledged ACCEPT, and
 *   commitSync() runs after each poll that printed records (records past --count are
 *   RELEASEd for the other members).
 *   stdout: rec<TAB>partition<TAB>offset<TAB>key<TAB>value<TAB>headers<TAB>timestamp<TAB>delivery
 *           done<TAB>n   (records printed; after close(), exit 0)
 *   Stops at --count, after --idle-ms without a record once one came (default 0 =
 *   never), or after --max-ms since start (default 120000).
 *
 * partition --partitions N
 *   stdin: one hex key per line (empty line = empty key); stdout: per line, the
 *   partition of Java's built-in partitioner for that key (murmur2, positive, mod N).
 */

import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.*;
import java.util.function.Supplier;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.*;

public class Helper {
    private static PrintStream out;

    /** Bad command line (exit 2). */
    static final class UsageError extends Exception {
        private static final long serialVersionUID = 1L;
        UsageError(String msg) { super(msg); }
    }

    public static void main(String[] args) {
        // Keep the real stdout for protocol lines only; anything else printing to
        // System.out ends up on stderr.
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
        System.setOut(System.err);
        configureLogging();
        int rc = 0;
        try {
            String cmd = args.length > 0 ? args[0] : "";
            switch (cmd) {
                case "produce" -> produce(new Opts(args, Set.of("bootstrap", "topic", "compression",
                        "acks", "idempotence", "transactional-id", "linger-ms", "batch-size"), Set.of()));
                case "consume" -> consume(new Opts(args, Set.of("bootstrap", "topic", "isolation", "group",
                        "protocol", "assignor", "group-instance-id", "from", "count", "idle-ms", "max-ms",
                        "commit", "poll-ms", "max-poll-records"), Set.of("stdin-control")));
                case "share-consume" -> shareConsume(new Opts(args, Set.of("bootstrap", "topic", "group",
                        "count", "idle-ms", "max-ms", "poll-ms", "max-poll-records", "pause-ms"), Set.of()));
                case "partition" -> partition(new Opts(args, Set.of("partitions"), Set.of()));
                default -> throw new UsageError("usage: Helper produce|consume|share-consume|partition [options]"
                        + (cmd.isEmpty() ? "" : " (unknown command: " + cmd + ")"));
            }
        } catch (UsageError e) {
            System.err.println("Helper: " + e.getMessage()); rc = 2;
        } catch (Throwable t) {
            System.err.println("Helper: fatal: " + describeChain(t)); rc = 1;
        }
        out.flush();
        System.exit(rc);
    }

    /**
     * The lib dir binds slf4j to Log4j 2 (log4j-slf4j-impl + log4j-core). Without a
     * config Log4j 2 logs ERROR to stdout, so point it (before any logger exists) at
     * a generated config: everything at WARN+ to stderr.
     */
    static void configureLogging() {
        if (System.getProperty("log4j2.configurationFile") != null) return;
        String level = Optional.ofNullable(System.getenv("KPAX_JAVA_LOG")).orElse("warn");
        try {
            Path f = Files.createTempFile("kpax-helper-log4j2-", ".properties");
            f.toFile().deleteOnExit();
            Files.writeString(f, String.join("\n", "status = error",
                    "appender.err.type = Console", "appender.err.name = STDERR", "appender.err.target = SYSTEM_ERR",
                    "appender.err.layout.type = PatternLayout",
                    "appender.err.layout.pattern = [java %d{HH:mm:ss.SSS} %p %c{1}] %m%n",
                    "rootLogger.level = " + level, "rootLogger.appenderRef.err.ref = STDERR", ""));
            System.setProperty("log4j2.configurationFile", f.toUri().toString());
        } catch (IOException e) {
            System.err.println("Helper: cannot write a log4j2 config: " + e);
        }
    }

    /** Prints one protocol line (tab-separated) and flushes it. Called from client threads too. */
    static synchronized void emit(Object... fields) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < fields.length; i++) sb.append(i == 0 ? "" : "\t").append(fields[i]);
        out.print(sb.append('\n'));
        out.flush();
    }

    // ---------------------------------------------------------------- produce

    static void produce(Opts o) throws Exception {
        String topic = o.required("topic");
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, o.required("bootstrap"));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, o.oneOf("compression", "none", "none", "gzip", "snappy", "lz4", "zstd"));
        if (o.has("acks")) p.put(ProducerConfig.ACKS_CONFIG, o.oneOf("acks", null, "all", "1", "0"));
        if (o.has("idempotence")) p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, o.oneOf("idempotence", null, "true", "false"));
        String txId = o.get("transactional-id", null);
        if (txId != null) p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txId);
        if (o.has("linger-ms")) p.put(ProducerConfig.LINGER_MS_CONFIG, Long.toString(o.number("linger-ms", 0, 0)));
        if (o.has("batch-size")) p.put(ProducerConfig.BATCH_SIZE_CONFIG, Long.toString(o.number("batch-size", 0, 0)));

        KafkaProducer<byte[], byte[]> producer = construct(() -> new KafkaProducer<byte[], byte[]>(p));
        if (txId != null) producer.initTransactions();
        AtomicLong acked = new AtomicLong(), failed = new AtomicLong();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        long seq = 0;
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) continue;
            if (line.startsWith("#")) {
                switch (line.trim()) {
                    case "#begin" -> producer.beginTransaction();
                    case "#commit" -> { producer.commitTransaction(); emit("committed"); }
                    case "#abort" -> { producer.abortTransaction(); emit("aborted"); }
                    case "#flush" -> { producer.flush(); emit("flushed"); }
                    default -> throw new IllegalArgumentException("unknown control line: " + line);
                }
                continue;
            }
            ProducerRecord<byte[], byte[]> record = parseRecord(topic, line);
            long s = seq++;
            AtomicBoolean reported = new AtomicBoolean();
            Callback cb = (md, e) -> {
                if (!reported.compareAndSet(false, true)) return;
                if (e == null) {
                    acked.incrementAndGet();
                    emit("ack", s, md.partition(), md.offset());
                } else {
                    failed.incrementAndGet();
                    emit("err", s, describe(e));
                }
            };
            try { producer.send(record, cb); } catch (RuntimeException e) { cb.onCompletion(null, e); }
        }
        producer.flush(); producer.close();
        emit("done", acked.get(), failed.get());
    }

    static ProducerRecord<byte[], byte[]> parseRecord(String topic, String line) {
        String[] f = line.split("\t", -1);
        if (f.length > 4) throw new IllegalArgumentException("more than 4 fields in record line: " + line);
        Integer partition;
        try { partition = f[0].equals("-") ? null : Integer.valueOf(f[0]); }
        catch (NumberFormatException e) { throw new IllegalArgumentException("bad partition in record line: " + line); }
        byte[] key = f.length > 1 ? unhex(f[1]) : null;
        byte[] value = f.length > 2 ? unhex(f[2]) : null;
        List<Header> headers = f.length > 3 ? parseHeaders(f[3]) : List.of();
        return new ProducerRecord<>(topic, partition, key, value, headers);
    }

    static List<Header> parseHeaders(String s) {
        List<Header> headers = new ArrayList<>();
        if (s.isEmpty()) return headers;
        for (String item : s.split(",", -1)) {
            int eq = item.indexOf('=');
            if (eq < 0) throw new IllegalArgumentException("bad header item (want name=hex): " + item);
            headers.add(new RecordHeader(item.substring(0, eq), unhex(item.substring(eq + 1))));
        }
        return headers;
    }

    // ---------------------------------------------------------------- consume

    static void consume(Opts o) throws Exception {
        String topic = o.required("topic");
        String group = o.get("group", null);
        String protocol = o.oneOf("protocol", "classic", "classic", "consumer");
        String assignor = o.oneOf("assignor", null, "range", "roundrobin", "sticky", "cooperative-sticky", "uniform");
        boolean fromEnd = o.oneOf("from", "beginning", "beginning", "end").equals("end");
        boolean commit = o.oneOf("commit", group != null ? "sync" : "none", "sync", "none").equals("sync");
        long count = o.number("count", 0, 0), idleMs = o.number("idle-ms", 0, 0);
        long maxMs = o.number("max-ms", 120_000, 0), pollMs = o.number("poll-ms", 100, 1);
        // A slow member: it sleeps this long after each poll that brought records.
        long pauseMs = o.number("pause-ms", 0, 0);
        if (group == null) {
            for (String g : List.of("protocol", "assignor", "group-instance-id"))
                if (o.has(g)) throw new UsageError("--" + g + " needs --group");
            if (commit) throw new UsageError("--commit sync needs --group");
        }
        if (assignor != null && protocol.equals("consumer") && !Set.of("uniform", "range").contains(assignor))
            throw new UsageError("--protocol consumer takes --assignor uniform|range, not " + assignor);
        if (assignor != null && protocol.equals("classic") && assignor.equals("uniform"))
            throw new UsageError("--assignor uniform needs --protocol consumer");

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.required("bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, o.oneOf("isolation", "read_uncommitted", "read_committed", "read_uncommitted"));
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (o.has("max-poll-records")) p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Long.toString(o.number("max-poll-records", 0, 1)));
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, fromEnd ? "latest" : "earliest");
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            if (o.has("group-instance-id")) p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, o.get("group-instance-id", null));
            if (assignor != null && protocol.equals("consumer")) p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
            if (assignor != null && protocol.equals("classic")) p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, switch (assignor) {
                case "range" -> RangeAssignor.class.getName();
                case "roundrobin" -> RoundRobinAssignor.class.getName();
                case "sticky" -> StickyAssignor.class.getName();
                default -> CooperativeStickyAssignor.class.getName();
            });
        }

        long start = System.currentTimeMillis();
        AtomicBoolean stopRequested = new AtomicBoolean();
        if (o.has("stdin-control")) {
            Thread t = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                    for (String line; (line = in.readLine()) != null; )
                        if (line.trim().equals("stop")) break;
                } catch (IOException ignored) { /* like EOF */ }
                stopRequested.set(true);
            }, "stdin-control");
            t.setDaemon(true); t.start();
        }

        KafkaConsumer<byte[], byte[]> consumer = construct(() -> new KafkaConsumer<byte[], byte[]>(p));
        Offsets offsets = new Offsets(consumer, commit);
        boolean ready = false;
        if (group == null) {
            List<TopicPartition> tps = new ArrayList<>();
            while (tps.isEmpty()) {
                for (PartitionInfo pi : consumer.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
                if (tps.isEmpty()) {
                    if (System.currentTimeMillis() - start >= maxMs) throw new IllegalStateException("topic " + topic + " has no partitions");
                    Thread.sleep(100);
                }
            }
            consumer.assign(tps);
            if (fromEnd) consumer.seekToEnd(tps); else consumer.seekToBeginning(tps);
            for (TopicPartition tp : tps) consumer.position(tp);
            emit("ready");
            ready = true;
        } else consumer.subscribe(List.of(topic), offsets);

        long printed = 0, lastActivity = System.currentTimeMillis();
        while (!stopRequested.get()) {
            long now = System.currentTimeMillis();
            if (now - start >= maxMs || (ready && idleMs > 0 && now - lastActivity >= idleMs)) break;
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(Math.min(pollMs, maxMs - (now - start))));
            if (!ready && offsets.assignedOnce) {
                for (TopicPartition tp : consumer.assignment()) consumer.position(tp);
                emit("ready");
                ready = true;
                lastActivity = System.currentTimeMillis();
            }
            for (TopicPartition tp : records.partitions()) {
                List<ConsumerRecord<byte[], byte[]>> list = records.records(tp);
                int done = 0;
                for (ConsumerRecord<byte[], byte[]> r : list) {
                    if (count > 0 && printed >= count) break;
                    emit("rec", r.partition(), r.offset(), hex(r.key()), hex(r.value()), headers(r), r.timestamp());
                    printed++; done++;
                }
                // Whole batch printed: the position (past any transaction markers);
                // otherwise just past the last printed record.
                if (done > 0) offsets.consumed.put(tp, done == list.size() ? consumer.position(tp) : list.get(done - 1).offset() + 1);
            }
            if (!records.isEmpty()) lastActivity = System.currentTimeMillis();
            offsets.commitPending(null); // no-op unless something was printed (or a commit failed)
            if (count > 0 && printed >= count) break;
        }
        offsets.commitPending(null);
        consumer.close();
        emit("done", printed);
    }

    /** Tracks printed/committed offsets; it is also the rebalance listener. */
    static final class Offsets implements ConsumerRebalanceListener {
        final KafkaConsumer<byte[], byte[]> consumer;
        final boolean commit;
        final Map<TopicPartition, Long> consumed = new HashMap<>(), committed = new HashMap<>();
        volatile boolean assignedOnce;

        Offsets(KafkaConsumer<byte[], byte[]> consumer, boolean commit) { this.consumer = consumer; this.commit = commit; }

        /** commitSync of what was printed and not yet committed (only in {@code among}, if given). */
        void commitPending(Collection<TopicPartition> among) {
            if (!commit) return;
            Map<TopicPartition, OffsetAndMetadata> map = new TreeMap<>(Comparator.comparingInt(TopicPartition::partition));
            // At stop / after a poll: what is still assigned; in onPartitionsRevoked: those.
            Collection<TopicPartition> owned = among != null ? among : consumer.assignment();
            consumed.forEach((tp, next) -> {
                if (owned.contains(tp) && !next.equals(committed.get(tp)))
                    map.put(tp, new OffsetAndMetadata(next));
            });
            if (map.isEmpty()) return;
            try {
                consumer.commitSync(map);
            } catch (RuntimeException e) {
                // Not fatal: a rebalance in progress (cooperative) is retried after the
                // next poll; anything else (e.g. kicked out) means re-delivery.
                if (!(e instanceof org.apache.kafka.common.errors.RebalanceInProgressException))
                    System.err.println("Helper: commit failed: " + describe(e));
                return;
            }
            StringJoiner j = new StringJoiner(",");
            map.forEach((tp, om) -> {
                committed.put(tp, om.offset());
                j.add(tp.partition() + "=" + om.offset());
            });
            emit("commit", j);
        }

        void forget(Collection<TopicPartition> parts) {
            consumed.keySet().removeAll(parts);
            committed.keySet().removeAll(parts);
        }

        @Override public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            commitPending(parts);
            forget(parts);
            emit("revoked", partitionList(parts));
        }

        @Override public void onPartitionsLost(Collection<TopicPartition> parts) {
            forget(parts);
            emit("lost", partitionList(parts));
        }

        @Override public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            emit("assigned", partitionList(parts));
            assignedOnce = true;
        }
    }

    static String partitionList(Collection<TopicPartition> parts) {
        StringJoiner j = new StringJoiner(",");
        parts.stream().mapToInt(TopicPartition::partition).sorted().forEach(n -> j.add(Integer.toString(n)));
        return j.toString();
    }

    static String headers(ConsumerRecord<byte[], byte[]> r) {
        StringJoiner j = new StringJoiner(",");
        for (Header h : r.headers()) j.add(h.key() + "=" + hex(h.value()));
        return j.toString();
    }

    // ---------------------------------------------------------------- share-consume

    static void shareConsume(Opts o) throws Exception {
        String topic = o.required("topic"), group = o.required("group");
        long count = o.number("count", 0, 0), idleMs = o.number("idle-ms", 0, 0);
        long maxMs = o.number("max-ms", 120_000, 0), pollMs = o.number("poll-ms", 100, 1);
        // A slow member: it sleeps this long after each poll that brought records.
        long pauseMs = o.number("pause-ms", 0, 0);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.required("bootstrap"));
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put("share.acknowledgement.mode", "explicit");
        if (o.has("max-poll-records")) p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Long.toString(o.number("max-poll-records", 0, 1)));
        long start = System.currentTimeMillis(), printed = 0, lastRecord = 0;
        KafkaShareConsumer<byte[], byte[]> consumer = construct(() -> new KafkaShareConsumer<byte[], byte[]>(p));
        consumer.subscribe(List.of(topic));
        while (true) {
            long now = System.currentTimeMillis();
            if (now - start >= maxMs || (lastRecord > 0 && idleMs > 0 && now - lastRecord >= idleMs)) break;
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(Math.min(pollMs, Math.max(1, maxMs - (now - start)))));
            boolean any = false;
            for (ConsumerRecord<byte[], byte[]> r : records) {
                if (count > 0 && printed >= count) {
                    consumer.acknowledge(r, AcknowledgeType.RELEASE);
                    continue;
                }
                emit("rec", r.partition(), r.offset(), hex(r.key()), hex(r.value()), headers(r), r.timestamp(),
                        deliveryCount(r));
                consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                printed++; any = true;
            }
            if (!records.isEmpty()) consumer.commitSync();
            if (any) lastRecord = System.currentTimeMillis();
            if (any && pauseMs > 0) Thread.sleep(pauseMs);
            if (count > 0 && printed >= count) break;
        }
        consumer.close();
        emit("done", printed);
    }

    /** ConsumerRecord.deliveryCount() (Kafka 4.0+), by reflection so that the helper
     *  still compiles against the 3.9 client; "-" when absent. */
    static String deliveryCount(ConsumerRecord<?, ?> r) {
        try {
            Object o = r.getClass().getMethod("deliveryCount").invoke(r);
            return ((Optional<?>) o).map(String::valueOf).orElse("-");
        } catch (ReflectiveOperationException e) {
            return "-";
        }
    }

    // ---------------------------------------------------------------- partition

    static void partition(Opts o) throws Exception {
        long n = o.number("partitions", -1, 1);
        if (n < 0) throw new UsageError("missing --partitions");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            byte[] key = unhex(line.trim());
            if (key == null) throw new IllegalArgumentException("a null key has no key partition");
            emit(BuiltInPartitioner.partitionForKey(key, (int) n));
        }
    }

    // ---------------------------------------------------------------- utilities

    /** Builds a client; a config Kafka rejects is a usage error. */
    static <T> T construct(Supplier<T> make) throws UsageError {
        try { return make.get(); } catch (KafkaException e) {
            for (Throwable c = e; c != null; c = c.getCause())
                if (c instanceof ConfigException) throw new UsageError("rejected client config: " + c.getMessage());
            throw e;
        }
    }

    static byte[] unhex(String s) {
        if (s.equals("-")) return null;
        if (s.length() % 2 != 0) throw new IllegalArgumentException("odd-length hex: " + s);
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) {
            int hi = Character.digit(s.charAt(2 * i), 16), lo = Character.digit(s.charAt(2 * i + 1), 16);
            if (hi < 0 || lo < 0) throw new IllegalArgumentException("bad hex: " + s);
            b[i] = (byte) (hi << 4 | lo);
        }
        return b;
    }

    static String hex(byte[] b) {
        if (b == null) return "-";
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) sb.append(Character.forDigit(x >> 4 & 15, 16)).append(Character.forDigit(x & 15, 16));
        return sb.toString();
    }

    static String describe(Throwable t) {
        return (t.getClass().getSimpleName() + ": " + t.getMessage()).replaceAll("[\t\r\n]+", " ");
    }

    static String describeChain(Throwable t) {
        StringBuilder sb = new StringBuilder(describe(t));
        for (Throwable c = t.getCause(); c != null && c != c.getCause(); c = c.getCause())
            sb.append(" (caused by ").append(describe(c)).append(')');
        return sb.toString();
    }

    /** "--name value" options, plus value-less flags. */
    static final class Opts {
        private final Map<String, String> values = new HashMap<>();

        Opts(String[] args, Set<String> valued, Set<String> flags) throws UsageError {
            for (int i = 1; i < args.length; i++) {
                String name = args[i].startsWith("--") ? args[i].substring(2) : null;
                String value;
                if (name != null && flags.contains(name)) value = "true";
                else if (name != null && valued.contains(name)) {
                    if (++i >= args.length) throw new UsageError("missing value for " + args[i - 1]);
                    value = args[i];
                } else throw new UsageError("unknown option for " + args[0] + ": " + args[i]);
                if (values.put(name, value) != null) throw new UsageError("--" + name + " given twice");
            }
        }

        boolean has(String name) { return values.containsKey(name); }
        String get(String name, String def) { return values.getOrDefault(name, def); }

        String required(String name) throws UsageError {
            String v = values.get(name);
            if (v == null) throw new UsageError("missing --" + name);
            return v;
        }

        String oneOf(String name, String def, String... allowed) throws UsageError {
            String v = values.get(name);
            if (v == null) return def;
            if (!Arrays.asList(allowed).contains(v))
                throw new UsageError("--" + name + " must be one of " + String.join("|", allowed) + ", not " + v);
            return v;
        }

        long number(String name, long def, long min) throws UsageError {
            String v = values.get(name);
            if (v == null) return def;
            try {
                long n = Long.parseLong(v);
                if (n >= min) return n;
            } catch (NumberFormatException ignored) { /* reported below */ }
            throw new UsageError("--" + name + " must be an integer >= " + min + ", not " + v);
        }
    }
}
