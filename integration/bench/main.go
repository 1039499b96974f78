// Command bench measures dls at fleet scale against the alternatives, on one machine with
// no internet: it builds a corpus of images on a file-backed distribution registry on
// loopback, then times, side by side, a cold dls fetch + assemble, crane pull of the same
// list into one tarball, and the floor (every needed blob fetched once by parallel GETs,
// bodies discarded), directly, through a WAN-like proxy and through a lossy proxy; then
// dls assemble against cat, a warm re-run of dls fetch, peak RSS for a small and the full
// list, and dls ls on a synthetic 1,000-image cache. It prints a Markdown report.
//
// integration/bench/run.sh (make bench) builds dls, installs crane and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// config is the command line.
type config struct {
	dls, crane   string
	work, out    string
	logPath      string
	keep         bool
	serve        bool
	size         int64
	images       int
	seed         uint64
	concurrency  int
	rounds       int
	latencyMin   time.Duration
	latencyMax   time.Duration
	rate         int64
	resetEvery   int64
	smallImages  int
	syntheticLen int
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Fatalf("bench: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	var size, rate, reset string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.dls, "dls", "bin/dls", "the dls binary")
	fs.StringVar(&cfg.crane, "crane", "", "the crane binary; empty skips crane")
	fs.StringVar(&cfg.work, "work", "", "work directory (default: a new one under /tmp)")
	fs.StringVar(&cfg.out, "out", "", "also write the report to this file")
	fs.StringVar(&cfg.logPath, "log", "", "append commands' stderr here (default: in -work)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&cfg.serve, "serve", false,
		"build the corpus, write its list and serve it until interrupted (for profiling)")
	fs.StringVar(&size, "size", "500M", "distinct linux/amd64 bytes of the corpus (K, M, G)")
	fs.IntVar(&cfg.images, "images", 40, "images in the corpus")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the corpus and the proxies' delays")
	fs.IntVar(&cfg.concurrency, "concurrency", 6, "parallel GETs of the floor")
	fs.IntVar(&cfg.rounds, "rounds", 3,
		"rounds of the direct scenario, in turning order; each tool's median is reported")
	fs.DurationVar(&cfg.latencyMin, "wan-latency-min", 20*time.Millisecond, "WAN delay, least")
	fs.DurationVar(&cfg.latencyMax, "wan-latency-max", 50*time.Millisecond, "WAN delay, most")
	fs.StringVar(&rate, "wan-rate", "10M", "WAN bytes per second per TCP connection")
	fs.StringVar(&reset, "reset-every", "50M", "lossy proxy: reset a connection after this")
	fs.IntVar(&cfg.smallImages, "small", 4, "images of the small list (peak RSS)")
	fs.IntVar(&cfg.syntheticLen, "ls-images", 1000, "images of the synthetic cache for ls")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}

	var err error
	for _, f := range []struct {
		s   string
		dst *int64
	}{{size, &cfg.size}, {rate, &cfg.rate}, {reset, &cfg.resetEvery}} {
		if *f.dst, err = parseSize(f.s); err != nil {
			return cfg, err
		}
	}
	if cfg.rounds < 1 {
		return cfg, fmt.Errorf("need -rounds ≥ 1")
	}
	if cfg.images < 3 || cfg.smallImages < 1 || cfg.smallImages > cfg.images {
		return cfg, fmt.Errorf("need -images ≥ 3 and 1 ≤ -small ≤ -images")
	}
	return cfg, nil
}

// parseSize reads a byte count with an optional K, M or G suffix (binary units; a
// trailing B or iB is ignored): "500M", "2G", "2GiB", "1048576".
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"),
		"I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with K, M or G, e.g. 500M", s)
	}
	return int64(v * float64(mult)), nil
}

// run makes the work directory, runs the bench and removes the directory unless kept.
func run(ctx context.Context, cfg config) (err error) {
	if cfg.dls, err = filepath.Abs(cfg.dls); err != nil {
		return err
	}
	if cfg.work == "" {
		if cfg.work, err = os.MkdirTemp("/tmp", "dls-bench-"); err != nil {
			return err
		}
	} else if err = os.MkdirAll(cfg.work, 0o755); err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(cfg.work)
	}

	tb := newBenchTB(cfg.work)
	defer tb.cleanup()
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			err = fe
		}
	}()

	if cfg.logPath == "" {
		cfg.logPath = filepath.Join(cfg.work, "commands.log")
	}
	b := &bench{cfg: cfg, tb: tb}
	start := time.Now()
	if err := b.runAll(ctx); err != nil {
		return err
	}
	return b.report(time.Since(start))
}
