// The Java client (kafka-clients) as a peer in kpax's produce and consume
// benchmarks (benches/produce.rs, benches/consume.rs, scripts/bench.sh).
//
//   java -cp 'KAFKA_LIB/*:CLASSES' Bench produce --bootstrap B --topic T --records N --size S
//        [--acks all|1] [--batch BYTES] [--linger-ms L] [--compression none|lz4|zstd] [--warmup N]
//   java -cp 'KAFKA_LIB/*:CLASSES' Bench consume --bootstrap B --topic T --records N --size S
//        --ranges LOW-HIGH,... [--warmup N]
//
// Prints one `key=value` line with the same keys as the Rust clients of the
// benchmarks. CPU is this process's user and system time (/proc/self/stat,
// every thread: the JIT compiler and the GC included) from before the timed
// client is created to the last acknowledgement (produce) or the N-th record
// (consume). The JIT is warmed up outside the timed part: a first client
// of the same kind produces (or consumes) --warmup records (default: a
// fifth of N, at most 300,000) and is closed before the timed one starts.
// rss_kb is the process's peak resident set (VmHWM), warm-up included.
//
// Payloads are the same bytes as the Rust clients': record i is
// pool[(i * 7919) % span ..][..size] of a 4 MiB xorshift pool (random bytes
// without compression, words from a 16-word list with it).

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Bench {
    static final String[] WORDS = {
        "kafka", "record", "batch", "offset", "leader", "epoch", "partition", "topic",
        "consumer", "producer", "group", "commit", "fetch", "broker", "replica", "segment",
    };

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Bench produce|consume --bootstrap B --topic T ...");
            System.exit(2);
        }
        Map<String, String> o = opts(args);
        try {
            switch (args[0]) {
                case "produce" -> produce(o);
                case "consume" -> consume(o);
                default -> throw new IllegalArgumentException("unknown role " + args[0]);
            }
        } catch (Exception e) {
            System.out.flush();
            System.err.println("java bench: " + e);
            System.exit(1);
        }
        // The client's threads are closed; exit without waiting for the JVM's.
        System.out.flush();
        System.exit(0);
    }

    static Map<String, String> opts(String[] args) {
        Map<String, String> m = new HashMap<>();
        for (int i = 1; i < args.length; i++) {
            if (!args[i].startsWith("--")) throw new IllegalArgumentException("unexpected " + args[i]);
            String k = args[i].substring(2);
            String v = (i + 1 < args.length && !args[i + 1].startsWith("--")) ? args[++i] : "1";
            m.put(k, v);
        }
        return m;
    }

    static String need(Map<String, String> o, String k) {
        String v = o.get(k);
        if (v == null) throw new IllegalArgumentException("--" + k + " is required");
        return v;
    }

    static long num(Map<String, String> o, String k, long d) {
        String v = o.get(k);
        return v == null ? d : Long.parseLong(v);
    }

    /** The shared payload pool: xorshift bytes, or words when compressible. */
    static byte[] pool(int len, boolean words) {
        byte[] p = new byte[len];
        long x = 0x9E3779B97F4A7C15L;
        int i = 0;
        while (i < len) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            if (!words) {
                p[i++] = (byte) x;
            } else {
                String w = WORDS[(int) ((x >>> 32) & 15)];
                for (int j = 0; j < w.length() && i < len; j++) p[i++] = (byte) w.charAt(j);
                if (i < len) p[i++] = ' ';
            }
        }
        return p;
    }

    static int offsetOf(long i, int span) {
        return (int) Long.remainderUnsigned(i * 7919L, span);
    }

    /** user and system CPU seconds of this process (/proc/self/stat, 100 Hz ticks). */
    static double[] cpu() throws Exception {
        String s = Files.readString(Path.of("/proc/self/stat"));
        String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
        return new double[] {Long.parseLong(f[11]) / 100.0, Long.parseLong(f[12]) / 100.0};
    }

    static long peakRssKb() throws Exception {
        for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (l.startsWith("VmHWM:")) return Long.parseLong(l.replaceAll("[^0-9]", ""));
        }
        return 0;
    }

    // ------------------------------------------------------------ produce

    static Properties producerProps(Map<String, String> o, long batch) {
        boolean all = !"1".equals(o.getOrDefault("acks", "all"));
        Properties p = new Properties();
        p.put("bootstrap.servers", need(o, "bootstrap"));
        p.put("acks", all ? "all" : "1");
        p.put("enable.idempotence", all ? "true" : "false");
        p.put("linger.ms", o.getOrDefault("linger-ms", "5"));
        p.put("batch.size", Long.toString(batch));
        p.put("compression.type", o.getOrDefault("compression", "none"));
        p.put("max.in.flight.requests.per.connection", "5");
        p.put("buffer.memory", Long.toString(256L << 20));
        p.put("max.request.size", Long.toString(Math.max(batch, 1 << 20)));
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        return p;
    }

    /** What a client saw, sampled at the last acknowledgement or the N-th record (before close). */
    static final class Outcome {
        long ok, err, got, bytes, xsum, passes;
        double enqS, firstS, wallS;
        double[] cpu;
    }

    /** Sends n records; the outcome is sampled once every callback has run, before close. */
    static Outcome send(Properties props, String topic, long n, int size, byte[] pool) throws Exception {
        AtomicLong ok = new AtomicLong(), err = new AtomicLong();
        int span = pool.length - size;
        long t0 = System.nanoTime();
        Outcome out = new Outcome();
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props)) {
            for (long i = 0; i < n; i++) {
                // A value is a byte[] of its own, as Java users hand it over
                // (ByteBufferSerializer in 4.x sends a wrapped slice's whole array).
                int off = offsetOf(i, span);
                byte[] v = Arrays.copyOfRange(pool, off, off + size);
                p.send(new ProducerRecord<>(topic, null, v), (md, e) -> {
                    if (e == null) ok.incrementAndGet();
                    else err.incrementAndGet();
                });
            }
            out.enqS = (System.nanoTime() - t0) / 1e9;
            // flush() returns once every callback has run: the last acknowledgement.
            p.flush();
            out.wallS = (System.nanoTime() - t0) / 1e9;
            out.cpu = cpu();
            out.ok = ok.get();
            out.err = err.get();
        }
        return out;
    }

    static void produce(Map<String, String> o) throws Exception {
        String topic = need(o, "topic");
        long n = num(o, "records", 1_000_000);
        int size = (int) num(o, "size", 100);
        long batch = num(o, "batch", 65536);
        String compression = o.getOrDefault("compression", "none");
        long warm = num(o, "warmup", Math.min(n / 5, 300_000));
        byte[] pool = pool(4 << 20, !"none".equals(compression));
        Properties props = producerProps(o, batch);
        if (warm > 0) send(props, topic, warm, size, pool);
        double[] c0 = cpu();
        Outcome r = send(props, topic, n, size, pool);
        double wall = r.wallS;
        double user = r.cpu[0] - c0[0], sys = r.cpu[1] - c0[1];
        System.out.printf(
            "client=java size=%d records=%d acks=%s compression=%s ok=%d err=%d enq_s=%.4f wall_s=%.4f rec_s=%.0f "
                + "user_s=%.3f sys_s=%.3f cpu_s=%.3f us_per_rec=%.4f rss_kb=%d warmup=%d%n",
            size, n, "1".equals(o.get("acks")) ? "1" : "all", compression, r.ok, r.err, r.enqS, wall,
            n / wall, user, sys, user + sys, (user + sys) * 1e6 / n, peakRssKb(), warm);
        if (r.ok != n || r.err != 0) {
            throw new IllegalStateException(r.ok + " of " + n + " delivered, " + r.err + " errors");
        }
    }

    // ------------------------------------------------------------ consume

    /** Reads `want` records in passes over `ranges` (each partition from low to high, again and again). */
    static Outcome read(Map<String, String> o, String topic, long[][] ranges, long want, long t0) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", need(o, "bootstrap"));
        p.put("enable.auto.commit", "false");
        p.put("fetch.max.bytes", Integer.toString(50 << 20));
        p.put("max.partition.fetch.bytes", Integer.toString(8 << 20));
        p.put("fetch.max.wait.ms", "5");
        p.put("max.poll.records", "10000");
        p.put("receive.buffer.bytes", "-1");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        List<TopicPartition> tps = new ArrayList<>();
        long perPass = 0;
        for (int i = 0; i < ranges.length; i++) {
            tps.add(new TopicPartition(topic, i));
            perPass += ranges[i][1] - ranges[i][0];
        }
        Outcome out = new Outcome();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            c.assign(tps);
            long last = System.nanoTime();
            outer:
            while (true) {
                out.passes++;
                for (int i = 0; i < ranges.length; i++) c.seek(tps.get(i), ranges[i][0]);
                long inPass = 0;
                while (inPass < perPass) {
                    ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                    if (rs.isEmpty()) {
                        if (System.nanoTime() - last > 20_000_000_000L) {
                            throw new IllegalStateException("stalled after " + out.got + " records");
                        }
                        continue;
                    }
                    last = System.nanoTime();
                    for (ConsumerRecord<byte[], byte[]> r : rs) {
                        int part = r.partition();
                        // Past high (a pass boundary): the next pass reads it again.
                        if (r.offset() >= ranges[part][1]) continue;
                        if (out.got == 0) out.firstS = (System.nanoTime() - t0) / 1e9;
                        byte[] v = r.value();
                        if (v != null) {
                            out.bytes += v.length;
                            out.xsum += v.length > 0 ? v[0] & 0xff : 0;
                        }
                        inPass++;
                        out.got++;
                        if (out.got == want) {
                            out.wallS = (System.nanoTime() - t0) / 1e9;
                            out.cpu = cpu();
                            break outer;
                        }
                    }
                }
            }
        }
        return out;
    }

    static void consume(Map<String, String> o) throws Exception {
        String topic = need(o, "topic");
        long n = num(o, "records", 1_000_000);
        int size = (int) num(o, "size", 100);
        String rv = need(o, "ranges");
        // @FILE: the ranges are in FILE (too long for one argument).
        if (rv.startsWith("@")) rv = Files.readString(Path.of(rv.substring(1))).trim();
        String[] rs = rv.split(",");
        long[][] ranges = new long[rs.length][2];
        for (int i = 0; i < rs.length; i++) {
            String[] lh = rs[i].split("-");
            ranges[i][0] = Long.parseLong(lh[0]);
            ranges[i][1] = Long.parseLong(lh[1]);
        }
        long warm = num(o, "warmup", Math.min(n / 5, 300_000));
        if (warm > 0) read(o, topic, ranges, warm, System.nanoTime());
        double[] c0 = cpu();
        Outcome out = read(o, topic, ranges, n, System.nanoTime());
        double wall = out.wallS;
        double user = out.cpu[0] - c0[0], sys = out.cpu[1] - c0[1];
        long perPass = 0;
        for (long[] r : ranges) perPass += r[1] - r[0];
        System.out.printf(
            "client=java size=%d records=%d got=%d bytes=%d passes=%d per_pass=%d first_s=%.4f wall_s=%.4f "
                + "rec_s=%.0f mb_s=%.1f user_s=%.3f sys_s=%.3f cpu_s=%.3f us_per_rec=%.4f rss_kb=%d warmup=%d xsum=%d%n",
            size, n, out.got, out.bytes, out.passes, perPass, out.firstS, wall, out.got / wall,
            out.bytes / wall / 1e6, user, sys, user + sys, (user + sys) * 1e6 / out.got, peakRssKb(), warm, out.xsum);
        if (out.got != n || out.bytes != n * size) {
            throw new IllegalStateException(
                "read " + out.got + " records / " + out.bytes + " bytes, expected " + n + " / " + n * size);
        }
    }
}
