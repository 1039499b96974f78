package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dlsproject/dls/integration/registrytest"
)

// bench holds the registry, the corpus and the figures measured so far.
type bench struct {
	cfg    config
	tb     *benchTB
	reg    *registrytest.Registry
	served atomic.Int64 // response bytes the registry wrote
	corpus *corpus
	// buildTime is how long building and pushing the corpus took.
	buildTime time.Duration
	rows      []row
	facts     []fact
	fig       figures
}

// row is one tool's run in one scenario.
type row struct {
	scenario, tool string
	elapsed        time.Duration
	err            error
	// served is what the registry sent; moved what the proxy delivered (-1: no proxy).
	served, moved int64
	requests      string
	maxRSS        int64
	// failed counts the images dls fetch reported failed.
	failed int
	// extra is a short note: retries, resets, outcome details.
	extra string
}

// fact is one figure outside the side-by-side table.
type fact struct{ what, value string }

func (b *bench) addFact(what, format string, args ...any) {
	b.facts = append(b.facts, fact{what: what, value: fmt.Sprintf(format, args...)})
	fmt.Fprintf(os.Stderr, "bench: %s: %s\n", what, fmt.Sprintf(format, args...))
}

// runAll builds the corpus and runs every measurement in turn.
func (b *bench) runAll(ctx context.Context) error {
	b.reg = registrytest.Start(b.tb, registrytest.Options{Wrap: b.countBytes})
	fmt.Fprintf(os.Stderr, "bench: building a %s corpus of %d images at %s\n",
		human(b.cfg.size), b.cfg.images, b.reg.URL)
	start := time.Now()
	c, err := buildCorpus(b.tb, b.reg, b.cfg.images, b.cfg.size, b.cfg.seed)
	if err != nil {
		return err
	}
	b.corpus, b.buildTime = c, time.Since(start)
	if b.cfg.serve {
		return b.serveUntilDone(ctx)
	}

	steps := []func(context.Context) error{
		b.direct, b.wan, b.wanTLS, b.lossy, b.xfs, b.smallList, b.syntheticLs,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// serveUntilDone writes the full list and waits for ctx to end, so that dls can be run,
// traced or profiled by hand against the corpus.
func (b *bench) serveUntilDone(ctx context.Context) error {
	list, _, err := b.writeList("serve.txt", b.reg.Host, len(b.corpus.tags))
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "bench: serving %s; list %s; interrupt to stop\n", b.reg.URL, list)
	<-ctx.Done()
	return nil
}

// countBytes wraps the registry handler to count the response bytes it writes.
func (b *bench) countBytes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&countingResponse{ResponseWriter: w, n: &b.served}, r)
	})
}

// countingResponse counts body bytes; ReadFrom keeps the server's sendfile path.
type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingResponse) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingResponse) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.n.Add(n)
	return n, err
}

func (c *countingResponse) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// path is a name inside the work directory.
func (b *bench) path(name string) string { return filepath.Join(b.cfg.work, name) }

// writeList writes the first n tags as references at host, one per line.
func (b *bench) writeList(name, host string, n int) (string, []string, error) {
	var refs []string
	for _, tag := range b.corpus.tags[:n] {
		refs = append(refs, host+"/"+tag)
	}
	path := b.path(name)
	err := os.WriteFile(path, []byte(strings.Join(refs, "\n")+"\n"), 0o644)
	return path, refs, err
}

// requests summarises the registry's request counters since the last reset.
func (b *bench) requests() string {
	kinds := []string{"GET manifest", "HEAD manifest", "GET blob", "HEAD blob"}
	var parts []string
	for _, k := range kinds {
		if n := b.reg.Requests(k); n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
