package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// lossyBudget is how many times the unique bytes dls may move through the lossy proxy.
const lossyBudget = 1.05

// fetchStats is the part of `dls fetch --json` the bench reads.
type fetchStats struct {
	ImagesFailed    int   `json:"images_failed"`
	BytesDownloaded int64 `json:"bytes_downloaded"`
	Retries         int   `json:"retries"`
}

// probe is a snapshot of the byte counters, to attribute traffic to one run.
type probe struct{ served, moved, resets, conns int64 }

func (b *bench) snapshot(p *proxy) probe {
	s := probe{served: b.served.Load(), moved: -1}
	if p != nil {
		s.moved, s.resets, s.conns = p.moved.Load(), p.resets.Load(), p.conns.Load()
	}
	return s
}

// measured fills a row's traffic figures from the counters since before.
func (b *bench) measured(r row, p *proxy, before probe) row {
	after := b.snapshot(p)
	r.served, r.moved = after.served-before.served, -1
	if p != nil {
		r.moved = after.moved - before.moved
		if resets := after.resets - before.resets; resets > 0 {
			r.extra = joinNote(r.extra, fmt.Sprintf("%d resets", resets))
		}
		if p.scheme == "https" {
			r.extra = joinNote(r.extra, fmt.Sprintf("TCP connections: %d",
				after.conns-before.conns))
		}
	}
	r.requests = b.requests()
	return r
}

// direct runs the three ways straight at the registry, then the follow-ups that need the
// cold cache: assemble against cat and the warm re-run.
func (b *bench) direct(ctx context.Context) error {
	list, cacheDir, archive, err := b.threeWays(ctx, "direct", b.reg.Host, nil, b.cfg.rounds)
	if err != nil {
		return err
	}
	defer os.RemoveAll(cacheDir)
	defer os.Remove(archive)

	if err := b.assembleVsCat(ctx, cacheDir, list); err != nil {
		return err
	}
	return b.warmRerun(ctx, list, cacheDir)
}

// wan runs the three ways through a proxy adding latency and a per-connection rate cap.
func (b *bench) wan(ctx context.Context) error {
	return b.throughProxy(ctx, "wan", proxyOptions{latencyMin: b.cfg.latencyMin,
		latencyMax: b.cfg.latencyMax, rate: b.cfg.rate})
}

// wanTLS is wan over https with HTTP/2 offered, as registries behind a CDN serve: a client
// that multiplexes parallel downloads on one HTTP/2 connection gets one flow's cap.
func (b *bench) wanTLS(ctx context.Context) error {
	return b.throughProxy(ctx, "wan-tls", proxyOptions{latencyMin: b.cfg.latencyMin,
		latencyMax: b.cfg.latencyMax, rate: b.cfg.rate, tls: true})
}

// lossy runs the three ways through a proxy that resets each connection after
// resetEvery bytes.
func (b *bench) lossy(ctx context.Context) error {
	return b.throughProxy(ctx, "lossy", proxyOptions{resetEvery: b.cfg.resetEvery})
}

func (b *bench) throughProxy(ctx context.Context, name string, opts proxyOptions) error {
	p, err := startProxy(b.reg.URL, opts, b.cfg.seed)
	if err != nil {
		return fmt.Errorf("start %s proxy: %w", name, err)
	}
	defer p.close()

	_, cacheDir, archive, err := b.threeWays(ctx, name, p.host, p, 1)
	os.RemoveAll(cacheDir)
	os.Remove(archive)
	return err
}

// threeWays runs a cold dls fetch + assemble, crane pull and the floor against host, rounds
// times, and records a row for each: with several rounds the run of median time, so that
// the order of the tools changes every round (each would otherwise always follow the same
// one, and the disk's state after it). It returns the list, and the dls cache and archive
// of the last round, which the caller removes. A tool failing is a figure (its row says
// why), not an error.
func (b *bench) threeWays(ctx context.Context, scenario, host string, p *proxy, rounds int,
) (list, cacheDir, archive string, err error) {
	fmt.Fprintf(os.Stderr, "bench: %s: dls, crane, floor (%d rounds)\n", scenario, rounds)
	list, refs, err := b.writeList(scenario+".txt", host, len(b.corpus.tags))
	if err != nil {
		return "", "", "", err
	}
	cacheDir, archive = b.path(scenario+"-cache"), b.path(scenario+"-dls.tar")
	tools := []func(){
		func() {
			os.RemoveAll(cacheDir)
			os.Remove(archive)
			b.dlsFetchAssemble(ctx, scenario, p, list, cacheDir, archive)
		},
		func() { b.cranePull(ctx, scenario, p, refs) },
		func() { b.floor(ctx, scenario, host, p) },
	}

	first := len(b.rows)
	for round := range rounds {
		for i := range tools {
			tools[(round+i)%len(tools)]()
		}
	}
	if rounds > 1 {
		b.rows = append(b.rows[:first], medianRows(b.rows[first:])...)
	}
	return list, cacheDir, archive, nil
}

// medianRows keeps, of each tool's rows, the one of median time, noting all the times; a
// tool that failed in any round keeps its failed row, so a failure is never hidden. Tools
// keep the order of their first rows.
func medianRows(rows []row) []row {
	var order []string
	byTool := map[string][]row{}
	for _, r := range rows {
		if _, ok := byTool[r.tool]; !ok {
			order = append(order, r.tool)
		}
		byTool[r.tool] = append(byTool[r.tool], r)
	}

	var out []row
	for _, tool := range order {
		runs := byTool[tool]
		if i := slices.IndexFunc(runs, func(r row) bool { return r.err != nil }); i >= 0 {
			out = append(out, runs[i])
			continue
		}
		slices.SortFunc(runs, func(x, y row) int { return cmp.Compare(x.elapsed, y.elapsed) })
		times := make([]string, len(runs))
		for i, r := range runs {
			times[i] = seconds(r.elapsed)
		}
		m := runs[len(runs)/2]
		m.extra = joinNote(m.extra, fmt.Sprintf("median of %s", strings.Join(times, ", ")))
		out = append(out, m)
	}
	return out
}

// dlsFetchAssemble records rows for a cold dls fetch, dls assemble and their sum.
func (b *bench) dlsFetchAssemble(ctx context.Context, scenario string, p *proxy,
	list, cacheDir, archive string) {
	b.reg.ResetCounts()
	before := b.snapshot(p)
	// Every tool starts with no dirty pages of an earlier step (the corpus push, the
	// previous tool's output) left for it to wait on.
	syscall.Sync()
	args := []string{"--log-level", "warn", "--cache", cacheDir, "fetch", "--json"}
	args, err := b.trustProxy(scenario, p, args)
	if err != nil {
		b.rows = append(b.rows, row{scenario: scenario, tool: "dls fetch", err: err})
		return
	}
	res := runChild(ctx, b.cfg.logPath, b.cfg.dls, append(args, list)...)
	fetch := b.measured(row{scenario: scenario, tool: "dls fetch", elapsed: res.elapsed,
		err: res.err, maxRSS: res.maxRSS}, p, before)
	var st fetchStats
	if err := json.Unmarshal(res.stdout, &st); err == nil {
		fetch.extra = joinNote(fetch.extra, fmt.Sprintf("%d retries", st.Retries))
		fetch.failed = st.ImagesFailed
		if st.ImagesFailed > 0 {
			fetch.extra = joinNote(fetch.extra, fmt.Sprintf("%d images failed",
				st.ImagesFailed))
		}
	}
	if p != nil && fetch.moved >= 0 {
		fetch.extra = joinNote(fetch.extra, b.movedVerdict(fetch.moved))
	}
	b.rows = append(b.rows, fetch)

	b.reg.ResetCounts()
	res = runChild(ctx, b.cfg.logPath, b.cfg.dls, "--log-level", "warn", "--cache",
		cacheDir, "assemble", "-o", archive, list)
	asm := row{scenario: scenario, tool: "dls assemble", elapsed: res.elapsed, err: res.err,
		maxRSS: res.maxRSS, moved: -1, requests: "none"}
	if fi, err := os.Stat(archive); err == nil {
		asm.extra = "archive " + human(fi.Size())
	}
	b.rows = append(b.rows, asm)
	b.rows = append(b.rows, row{scenario: scenario, tool: "dls fetch+assemble",
		elapsed: fetch.elapsed + asm.elapsed, err: firstErr(fetch.err, asm.err),
		served: fetch.served, moved: fetch.moved, maxRSS: max(fetch.maxRSS, asm.maxRSS),
		failed: fetch.failed})
}

// trustProxy adds to dls fetch's args a registries.yaml that skips verifying the proxy's
// self-signed certificate, when p serves https.
func (b *bench) trustProxy(scenario string, p *proxy, args []string) ([]string, error) {
	if p == nil || p.scheme != "https" {
		return args, nil
	}
	path := b.path(scenario + "-registries.yaml")
	yaml := fmt.Sprintf("configs:\n  %q:\n    tls:\n      insecure_skip_verify: true\n", p.host)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	return append(args, "--registries", path), nil
}

// movedVerdict compares the bytes moved through a proxy with the unique bytes.
func (b *bench) movedVerdict(moved int64) string {
	ratio := float64(moved) / float64(b.corpus.uniqueBytes())
	verdict := "ok"
	if ratio > lossyBudget {
		verdict = fmt.Sprintf("OVER %.2f×", lossyBudget)
	}
	return fmt.Sprintf("moved %.3f× unique (%s)", ratio, verdict)
}

// cranePull records crane pulling refs into one tarball.
func (b *bench) cranePull(ctx context.Context, scenario string, p *proxy, refs []string) {
	if b.cfg.crane == "" {
		return
	}
	out := b.path(scenario + "-crane.tar")
	defer os.Remove(out)

	b.reg.ResetCounts()
	before := b.snapshot(p)
	syscall.Sync()
	args := []string{"pull", "--platform", "linux/amd64"}
	if p != nil && p.scheme == "https" {
		args = append(args, "--insecure") // the proxy's certificate is self-signed
	}
	args = append(args, refs...)
	res := runChild(ctx, b.cfg.logPath, b.cfg.crane, append(args, out)...)
	r := b.measured(row{scenario: scenario, tool: "crane pull", elapsed: res.elapsed,
		err: res.err, maxRSS: res.maxRSS}, p, before)
	if fi, err := os.Stat(out); err == nil && res.ok() {
		r.extra = joinNote(r.extra, "tarball "+human(fi.Size()))
		// crane does not fsync its tarball, while dls fsyncs every blob and the archive;
		// say what making crane's output durable costs, outside its time.
		start := time.Now()
		syscall.Sync()
		r.extra = joinNote(r.extra, "then sync "+seconds(time.Since(start)))
	}
	b.rows = append(b.rows, r)
}

// floor records the floor fetch with the configured parallelism and, for the direct
// scenario, the hash and disk floors too (see fetchFloor).
func (b *bench) floor(ctx context.Context, scenario, host string, p *proxy) {
	b.floorRow(ctx, scenario, host, p, discardFloor, "")
	if scenario != "direct" {
		return
	}

	b.floorRow(ctx, scenario, host, p, hashFloor, "")
	dir := b.path("disk-floor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.rows = append(b.rows, row{scenario: scenario, tool: floorTools[diskFloor], err: err})
		return
	}
	defer os.RemoveAll(dir)
	b.floorRow(ctx, scenario, host, p, diskFloor, dir)
}

// floorTools names the floors' rows; ratio finds the discard floor by the prefix "floor".
var floorTools = map[floorKind]string{
	hashFloor: "hash floor (GET, sha256)",
	diskFloor: "disk floor (GET, sha256, write, fsync)",
}

func (b *bench) floorRow(ctx context.Context, scenario, host string, p *proxy,
	kind floorKind, dir string) {
	b.reg.ResetCounts()
	before := b.snapshot(p)
	ctx, cancel := context.WithTimeout(ctx, childTimeout)
	defer cancel()
	syscall.Sync()
	base := "http://" + host
	if p != nil {
		base = p.scheme + "://" + host
	}
	res, err := fetchFloor(ctx, base, b.corpus, b.cfg.concurrency, kind, dir)
	tool := floorTools[kind]
	if kind == discardFloor {
		tool = fmt.Sprintf("floor (%d GETs at once)", b.cfg.concurrency)
	}
	r := b.measured(row{scenario: scenario, tool: tool, elapsed: res.elapsed, err: err}, p,
		before)
	r.extra = joinNote(r.extra, fmt.Sprintf("%d retries", res.retries))
	b.rows = append(b.rows, r)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// seconds formats d for the tables.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
