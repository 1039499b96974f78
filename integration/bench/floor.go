package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// floorAttempts bounds the requests one blob of the floor may take through a lossy proxy.
const floorAttempts = 50

// floorResult is what the floor fetch did.
type floorResult struct {
	elapsed time.Duration
	bytes   int64
	retries int64
}

// floorKind is what a floor does with each body.
type floorKind int

const (
	// discardFloor drops the bytes: the floor of the targets.
	discardFloor floorKind = iota
	// hashFloor hashes them with sha256: the least a fetcher that verifies must do.
	hashFloor
	// diskFloor hashes them and writes each blob to a file of its own, fsynced when
	// complete: the least a fetcher that verifies and keeps what it stores across a power
	// cut must do.
	diskFloor
)

// fetchFloor is the floor every tool is compared with: one process fetching every needed
// blob once (top-level documents by tag), conc at a time, largest first, doing with each
// body only what kind says (dir holds the disk floor's files). A cut body is continued with
// a Range request, so the floor also completes through the lossy proxy.
//
// base is the registry's scheme and host. Over https the floor skips verifying the
// certificate and speaks HTTP/1.1 (a custom TLS config turns Go's HTTP/2 off), so its
// parallel GETs are parallel connections.
func fetchFloor(ctx context.Context, base string, c *corpus, conc int, kind floorKind,
	dir string) (floorResult, error) {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: conc, DisableCompression: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()

	var bytes, retries atomic.Int64
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, b := range c.sortedBySize() {
		u := base + "/v2/" + b.repo + "/blobs/" + b.desc.Digest.String()
		switch {
		case b.tag != "":
			u = base + "/v2/" + b.repo + "/manifests/" + b.tag
		case b.manifest:
			u = base + "/v2/" + b.repo + "/manifests/" + b.desc.Digest.String()
		}
		g.Go(func() error {
			sink, err := newFloorSink(kind, dir, b.desc.Digest.Encoded())
			if err != nil {
				return err
			}
			n, r, err := getResuming(gctx, client, u, b.desc.Size, sink)
			bytes.Add(n)
			retries.Add(int64(r))
			return errors.Join(err, sink.finish(b.desc.Digest))
		})
	}
	err := g.Wait()
	return floorResult{elapsed: time.Since(start), bytes: bytes.Load(),
		retries: retries.Load()}, err
}

// floorSink takes one blob's body: discarded, hashed, or hashed and written to a file.
type floorSink struct {
	io.Writer
	file *os.File  // nil unless writing
	hash hash.Hash // nil when discarding
}

// newFloorSink returns the sink of kind for blob name, its file in dir for the disk floor.
func newFloorSink(kind floorKind, dir, name string) (*floorSink, error) {
	switch kind {
	case discardFloor:
		return &floorSink{Writer: io.Discard}, nil
	case hashFloor:
		h := sha256.New()
		return &floorSink{Writer: h, hash: h}, nil
	}

	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	return &floorSink{Writer: io.MultiWriter(h, f), file: f, hash: h}, nil
}

// finish fsyncs and closes the file, if any, and checks the hash, if any, against want.
func (s *floorSink) finish(want digest.Digest) error {
	var err error
	if s.file != nil {
		err = errors.Join(s.file.Sync(), s.file.Close())
	}
	if s.hash == nil {
		return err
	}
	if got := digest.NewDigest(digest.SHA256, s.hash); err == nil && got != want {
		err = fmt.Errorf("floor: %s hashes to %s", want, got)
	}
	return err
}

// getResuming GETs u into sink, continuing a cut body from where it stopped with Range
// when size is known (size < 0: a tag, fetched whole in one request). It returns the body
// bytes received and the requests repeated. An error status is final.
func getResuming(ctx context.Context, client *http.Client, u string, size int64,
	sink io.Writer) (int64, int, error) {
	var got int64
	for attempt := range floorAttempts {
		n, err := getOnce(ctx, client, u, got, size, sink)
		got += n
		var se *statusError
		if err == nil || size < 0 || ctx.Err() != nil || errors.As(err, &se) {
			return got, attempt, err
		}
	}
	return got, floorAttempts, fmt.Errorf("get %s: no complete body in %d attempts", u,
		floorAttempts)
}

// getOnce makes one GET from offset off, copying the body into sink.
func getOnce(ctx context.Context, client *http.Client, u string, off, size int64,
	sink io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, "+
		"application/vnd.oci.image.manifest.v1+json")
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, size-1))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return 0, &statusError{url: u, status: resp.Status}
	}

	n, err := io.Copy(sink, resp.Body)
	if err == nil && size >= 0 && off+n < size {
		err = errors.New("body ended early")
	}
	if err != nil {
		return n, fmt.Errorf("get %s: %w", u, err)
	}
	return n, nil
}

// statusError is an answer other than 200 or 206: retrying it would not help.
type statusError struct{ url, status string }

func (e *statusError) Error() string { return "get " + e.url + ": status " + e.status }
