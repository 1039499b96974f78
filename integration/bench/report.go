package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// report prints the Markdown report to stdout and, when asked, to cfg.out.
func (b *bench) report(total time.Duration) error {
	var sb strings.Builder
	b.writeReport(&sb, total)
	fmt.Print(sb.String())
	if b.cfg.out == "" {
		return nil
	}
	return os.WriteFile(b.cfg.out, []byte(sb.String()), 0o644)
}

func (b *bench) writeReport(w io.Writer, total time.Duration) {
	c := b.corpus
	fmt.Fprintf(w, "# dls benchmark\n\n")
	fmt.Fprintf(w, "- machine: %d CPUs, %s/%s, %s; bench took %s\n", runtime.NumCPU(),
		runtime.GOOS, runtime.GOARCH, runtime.Version(), total.Round(time.Second))
	fmt.Fprintf(w, "- corpus: %d images (every %dth an amd64+arm64 index), %d distinct "+
		"amd64 layers (%d compressible text), layers %s to %s; a linux/amd64 fetch needs "+
		"%d blobs, %s; built and pushed in %s\n", len(c.tags), indexEvery, c.layers,
		c.compressible, human(c.smallest), human(c.largest), len(c.needed),
		human(c.uniqueBytes()), seconds(b.buildTime))
	fmt.Fprintf(w, "- wan proxy: %s-%s added per request, %s/s per TCP connection; wan-tls: "+
		"the same over https offering HTTP/2 (self-signed, verification skipped); "+
		"lossy proxy: RST after %s on each connection\n", b.cfg.latencyMin, b.cfg.latencyMax,
		human(b.cfg.rate), human(b.cfg.resetEvery))
	fmt.Fprintf(w, "- floor: every needed blob GET once (top-level documents by tag), %d at "+
		"a time, bodies discarded; MB/s columns are unique bytes ÷ time\n",
		b.cfg.concurrency)
	fmt.Fprintf(w, "- hash floor (direct only): the same GETs, each body hashed with sha256 "+
		"and dropped: what any fetcher that verifies must do\n")
	fmt.Fprintf(w, "- disk floor (direct and xfs): the same GETs, each body also hashed with "+
		"sha256, written to a file of its own and fsynced: what any fetcher that verifies "+
		"and keeps what it stores must do\n")
	rss := "peak RSS: GNU time's maximum resident set size of each command"
	if !haveGNUTime() {
		rss = "peak RSS: " + noRSS + " (a child's rusage would count the bench's own RSS)"
	}
	fmt.Fprintf(w, "- %s\n\n", rss)

	b.writeTargets(w)
	fmt.Fprintf(w, "## Measurements\n\n")

	fmt.Fprintf(w, "| scenario | tool | time | unique MB/s | ÷ floor | registry sent "+
		"| proxy delivered | requests at the registry | peak RSS | notes |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---|---:|---|\n")
	for _, r := range b.rows {
		b.writeRow(w, r)
	}

	fmt.Fprintf(w, "\n| ratio | direct | wan | wan-tls | lossy |\n|---|---:|---:|---:|---:|\n")
	for _, q := range [][2]string{
		{"dls fetch", "floor"}, {"dls fetch+assemble", "floor"}, {"crane pull", "floor"},
		{"dls fetch+assemble", "crane pull"},
	} {
		fmt.Fprintf(w, "| %s ÷ %s | %s | %s | %s | %s |\n", q[0], q[1],
			b.ratio("direct", q[0], q[1]), b.ratio("wan", q[0], q[1]),
			b.ratio("wan-tls", q[0], q[1]), b.ratio("lossy", q[0], q[1]))
	}

	for _, q := range [][2]string{
		{"dls fetch", "hash floor"}, {"dls fetch", "disk floor"},
		{"dls fetch+assemble", "disk floor"},
	} {
		fmt.Fprintf(w, "| %s ÷ %s | %s | — | — | — |\n", q[0], q[1],
			b.ratio("direct", q[0], q[1]))
	}
	if xfs := b.ratio("xfs", "dls fetch", "disk floor"); xfs != "—" {
		fmt.Fprintf(w, "\n| ratio on XFS with reflink | xfs |\n|---|---:|\n")
		for _, q := range [][2]string{
			{"dls fetch", "floor"}, {"dls fetch+assemble", "floor"},
			{"dls fetch", "disk floor"}, {"dls fetch+assemble", "disk floor"},
		} {
			fmt.Fprintf(w, "| %s ÷ %s | %s |\n", q[0], q[1], b.ratio("xfs", q[0], q[1]))
		}
	}

	fmt.Fprintf(w, "\n| measurement | figure |\n|---|---|\n")
	for _, f := range b.facts {
		fmt.Fprintf(w, "| %s | %s |\n", f.what, f.value)
	}
}

func (b *bench) writeRow(w io.Writer, r row) {
	when := seconds(r.elapsed)
	notes := r.extra
	if r.err != nil {
		when = "FAILED after " + when
		notes = joinNote(notes, shorten(r.err.Error()))
	}
	speed, vsFloor := "", ""
	if r.err == nil && r.tool != "dls assemble" {
		speed = fmt.Sprintf("%.1f", float64(rate(b.corpus.uniqueBytes(), r.elapsed))/1e6)
		vsFloor = b.ratio(r.scenario, r.tool, "floor")
	}
	moved := "—"
	if r.moved >= 0 {
		moved = human(r.moved)
	}
	rss := "—"
	if r.maxRSS > 0 {
		rss = human(r.maxRSS)
	}
	fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.scenario,
		r.tool, when, speed, vsFloor, human(r.served), moved, r.requests, rss, notes)
}

// ratio is the time of tool a over tool b (b matched by prefix, for the floor's name) in
// one scenario, or "—" when either is missing or failed.
func (b *bench) ratio(scenario, a, bPrefix string) string {
	var ta, tb time.Duration
	for _, r := range b.rows {
		if r.scenario != scenario || r.err != nil {
			continue
		}
		if r.tool == a {
			ta = r.elapsed
		}
		if strings.HasPrefix(r.tool, bPrefix) {
			tb = r.elapsed
		}
	}
	if ta == 0 || tb == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", ta.Seconds()/tb.Seconds())
}

// shorten makes an error fit a table cell: one line, clipped.
func shorten(s string) string {
	s = strings.TrimSpace(s)
	s = strings.NewReplacer("|", "/", "\n", " ").Replace(s)
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// human formats a byte count in binary units.
func human(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}
