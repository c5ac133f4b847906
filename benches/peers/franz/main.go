// franz-go (github.com/twmb/franz-go/pkg/kgo) as a peer in kpax's produce
// and consume benchmarks (benches/produce.rs, benches/consume.rs,
// scripts/bench.sh).
//
//	franz-bench produce --bootstrap B --topic T --records N --size S
//	    [--acks all|1] [--batch BYTES] [--linger-ms L] [--compression none|lz4|zstd]
//	franz-bench consume --bootstrap B --topic T --records N --size S --ranges LOW-HIGH,...
//
// Both take --api-versions-max N: the newest ApiVersions request version
// sent (the other requests are unchanged). librdkafka's mock needs 2: it
// answers ApiVersions v3 and later with an UNSUPPORTED_VERSION body that
// franz-go cannot read, and retries forever.
//
// Prints one `key=value` line with the same keys as the Rust clients of the
// benchmarks. CPU is getrusage(RUSAGE_SELF) user and system time from before
// the client is created to the last acknowledgement (produce) or the N-th
// record (consume); rss_kb is the peak resident set (VmHWM). Payloads are the
// Rust clients' bytes: record i is pool[(i*7919) % span:][:size] of a 4 MiB
// xorshift pool (random bytes without compression, words with it).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

var words = []string{
	"kafka", "record", "batch", "offset", "leader", "epoch", "partition", "topic",
	"consumer", "producer", "group", "commit", "fetch", "broker", "replica", "segment",
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: franz-bench produce|consume --bootstrap B --topic T ...")
		os.Exit(2)
	}
	o, err := opts(os.Args[2:])
	if err == nil {
		switch os.Args[1] {
		case "produce":
			err = produce(o)
		case "consume":
			err = consume(o)
		default:
			err = fmt.Errorf("unknown role %q", os.Args[1])
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "franz bench:", err)
		os.Exit(1)
	}
}

type options map[string]string

func opts(args []string) (options, error) {
	m := options{}
	for i := 0; i < len(args); i++ {
		k, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			return nil, fmt.Errorf("unexpected %q", args[i])
		}
		v := "1"
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			i++
			v = args[i]
		}
		m[k] = v
	}
	return m, nil
}

func (o options) need(k string) (string, error) {
	v, ok := o[k]
	if !ok {
		return "", fmt.Errorf("--%s is required", k)
	}
	return v, nil
}

func (o options) num(k string, d int64) (int64, error) {
	v, ok := o[k]
	if !ok {
		return d, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", k, v, err)
	}
	return n, nil
}

func pool(n int, useWords bool) []byte {
	p := make([]byte, 0, n)
	x := uint64(0x9E3779B97F4A7C15)
	for len(p) < n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if !useWords {
			p = append(p, byte(x))
			continue
		}
		w := words[(x>>32)&15]
		for j := 0; j < len(w) && len(p) < n; j++ {
			p = append(p, w[j])
		}
		if len(p) < n {
			p = append(p, ' ')
		}
	}
	return p
}

func offsetOf(i uint64, span int) int { return int((i * 7919) % uint64(span)) }

func cpu() (user, sys float64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime), tv(ru.Stime)
}

func peakRSSKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// common are the options of every client: seeds, logging, version cap.
func common(o options, bootstrap string) ([]kgo.Opt, error) {
	kopts := []kgo.Opt{kgo.SeedBrokers(strings.Split(bootstrap, ",")...)}
	if _, ok := o["api-versions-max"]; ok {
		v, err := o.num("api-versions-max", 0)
		if err != nil || v < 0 || v > 32767 {
			return nil, fmt.Errorf("--api-versions-max %q: a request version (0..32767)", o["api-versions-max"])
		}
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(18, int16(v))
		kopts = append(kopts, kgo.MaxVersions(vs))
	}
	if os.Getenv("FRANZ_DEBUG") != "" {
		kopts = append(kopts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	return kopts, nil
}

// run is what every role is told: where, which topic, how many records of
// which size.
type run struct {
	bootstrap, topic string
	n, size          int64
}

func runOf(o options) (r run, err error) {
	if r.bootstrap, err = o.need("bootstrap"); err != nil {
		return r, err
	}
	if r.topic, err = o.need("topic"); err != nil {
		return r, err
	}
	if r.n, err = o.num("records", 1_000_000); err != nil {
		return r, err
	}
	if r.size, err = o.num("size", 100); err != nil {
		return r, err
	}
	if r.n <= 0 || r.size <= 0 || r.size > 1<<20 {
		return r, fmt.Errorf("--records %d --size %d: both positive, size at most 1 MiB", r.n, r.size)
	}
	return r, nil
}

func produce(o options) error {
	r, err := runOf(o)
	if err != nil {
		return err
	}
	bootstrap, topic, n, size := r.bootstrap, r.topic, r.n, r.size
	batch, err := o.num("batch", 65536)
	if err != nil {
		return err
	}
	linger, err := o.num("linger-ms", 5)
	if err != nil {
		return err
	}
	all := o["acks"] != "1"
	compression := o["compression"]
	if compression == "" {
		compression = "none"
	}
	var codec kgo.CompressionCodec
	switch compression {
	case "none":
		codec = kgo.NoCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	default:
		return fmt.Errorf("--compression %q: none, lz4, zstd, gzip or snappy", compression)
	}
	data := pool(4<<20, compression != "none")
	span := len(data) - int(size)

	u0, s0 := cpu()
	t0 := time.Now()
	kopts, err := common(o, bootstrap)
	if err != nil {
		return err
	}
	kopts = append(kopts,
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(time.Duration(linger)*time.Millisecond),
		kgo.ProducerBatchMaxBytes(int32(batch)),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(10_000_000),
		kgo.MaxBufferedBytes(256<<20),
	)
	if all {
		// Idempotent: franz-go refuses an in-flight setting and chooses itself.
		kopts = append(kopts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		kopts = append(kopts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(5))
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	var ok, bad atomic.Int64
	var firstErr atomic.Value
	done := func(_ *kgo.Record, err error) {
		if err == nil {
			ok.Add(1)
			return
		}
		bad.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	ctx := context.Background()
	for i := uint64(0); i < uint64(n); i++ {
		off := offsetOf(i, span)
		cl.Produce(ctx, &kgo.Record{Value: data[off : off+int(size)]}, done)
	}
	enq := time.Since(t0).Seconds()
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	wall := time.Since(t0).Seconds()
	u1, s1 := cpu()
	cl.Close()
	user, sys := u1-u0, s1-s0
	acks := "all"
	if !all {
		acks = "1"
	}
	fmt.Printf("client=franz size=%d records=%d acks=%s compression=%s ok=%d err=%d enq_s=%.4f wall_s=%.4f rec_s=%.0f "+
		"user_s=%.3f sys_s=%.3f cpu_s=%.3f us_per_rec=%.4f rss_kb=%d warmup=0\n",
		size, n, acks, compression, ok.Load(), bad.Load(), enq, wall, float64(n)/wall,
		user, sys, user+sys, (user+sys)*1e6/float64(n), peakRSSKB())
	if ok.Load() != n || bad.Load() != 0 {
		return fmt.Errorf("%d of %d delivered, %d errors (first: %v)", ok.Load(), n, bad.Load(), firstErr.Load())
	}
	return nil
}

func consume(o options) error {
	r, err := runOf(o)
	if err != nil {
		return err
	}
	bootstrap, topic, n, size := r.bootstrap, r.topic, r.n, r.size
	rs, err := o.need("ranges")
	if err != nil {
		return err
	}
	if path, ok := strings.CutPrefix(rs, "@"); ok {
		// @FILE: the ranges are in FILE (too long for one argument).
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--ranges: %w", err)
		}
		rs = strings.TrimSpace(string(b))
	}
	var ranges [][2]int64
	var perPass int64
	for _, r := range strings.Split(rs, ",") {
		l, h, ok := strings.Cut(r, "-")
		lo, err1 := strconv.ParseInt(l, 10, 64)
		hi, err2 := strconv.ParseInt(h, 10, 64)
		if !ok || err1 != nil || err2 != nil || hi < lo {
			return fmt.Errorf("--ranges: %q is not LOW-HIGH", r)
		}
		ranges = append(ranges, [2]int64{lo, hi})
		perPass += hi - lo
	}
	if perPass == 0 {
		return errors.New("--ranges: empty")
	}

	u0, s0 := cpu()
	t0 := time.Now()
	starts := map[int32]kgo.Offset{}
	for p, r := range ranges {
		starts[int32(p)] = kgo.NewOffset().At(r[0])
	}
	kopts, err := common(o, bootstrap)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(kopts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchMaxBytes(50<<20),
		kgo.FetchMaxPartitionBytes(8<<20),
		// franz-go refuses less than 10 ms (the other clients wait 5 ms).
		kgo.FetchMaxWait(10*time.Millisecond),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var got, bytes, xsum, passes int64
	var first, wall, user, sys float64
	ctx := context.Background()
	last := time.Now()
outer:
	for {
		passes++
		if passes > 1 {
			back := map[int32]kgo.EpochOffset{}
			for p, r := range ranges {
				back[int32(p)] = kgo.EpochOffset{Epoch: -1, Offset: r[0]}
			}
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: back})
		}
		var inPass int64
		for inPass < perPass {
			fs := cl.PollRecords(ctx, 100_000)
			if errs := fs.Errors(); len(errs) > 0 {
				return fmt.Errorf("fetch: %v", errs[0].Err)
			}
			if fs.NumRecords() == 0 {
				if time.Since(last) > 20*time.Second {
					return fmt.Errorf("stalled after %d records", got)
				}
				continue
			}
			last = time.Now()
			it := fs.RecordIter()
			for !it.Done() {
				r := it.Next()
				if r.Offset >= ranges[r.Partition][1] {
					continue
				}
				if got == 0 {
					first = time.Since(t0).Seconds()
				}
				bytes += int64(len(r.Value))
				if len(r.Value) > 0 {
					xsum += int64(r.Value[0])
				}
				inPass++
				got++
				if got == n {
					wall = time.Since(t0).Seconds()
					u1, s1 := cpu()
					user, sys = u1-u0, s1-s0
					break outer
				}
			}
		}
	}
	fmt.Printf("client=franz size=%d records=%d got=%d bytes=%d passes=%d per_pass=%d first_s=%.4f wall_s=%.4f "+
		"rec_s=%.0f mb_s=%.1f user_s=%.3f sys_s=%.3f cpu_s=%.3f us_per_rec=%.4f rss_kb=%d warmup=0 xsum=%d\n",
		size, n, got, bytes, passes, perPass, first, wall, float64(got)/wall, float64(bytes)/wall/1e6,
		user, sys, user+sys, (user+sys)*1e6/float64(got), peakRSSKB(), xsum)
	if got != n || bytes != n*size {
		return fmt.Errorf("read %d records / %d bytes, expected %d / %d", got, bytes, n, n*size)
	}
	return nil
}
