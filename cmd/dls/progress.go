package main

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/dlsproject/dls/resume"
)

// progressInterval is how often a progress line is logged when stderr is not a terminal:
// often enough to show a long fetch is alive, rarely enough to keep CI logs readable.
const progressInterval = 10 * time.Second

// progress shows blob transfers: a bar per active blob on a terminal, a periodic log line
// otherwise. Stop must be called once the fetch is over; it may be called more than once.
type progress interface {
	resume.Observer
	Stop()
}

func newProgress(e *env) progress {
	if e.isTerminal {
		return newBars(e)
	}
	return newTicker(e)
}

// bars draws one mpb bar per blob in flight.
type bars struct {
	container *mpb.Progress
	mu        sync.Mutex
	active    map[digest.Digest]*mpb.Bar
	once      sync.Once
}

func newBars(e *env) *bars {
	return &bars{
		container: mpb.New(mpb.WithOutput(e.stderr), mpb.WithAutoRefresh()),
		active:    map[digest.Digest]*mpb.Bar{},
	}
}

func (b *bars) BlobStarted(desc ocispec.Descriptor, offset int64) {
	bar := b.container.AddBar(desc.Size,
		mpb.PrependDecorators(decor.Name(desc.Digest.Encoded()[:12]+" ")),
		mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"),
			decor.Name(" "), decor.Percentage()),
		mpb.BarRemoveOnComplete(),
	)
	bar.SetCurrent(offset)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.active[desc.Digest] = bar
}

func (b *bars) BlobProgress(dgst digest.Digest, n int64) {
	if bar := b.bar(dgst); bar != nil {
		bar.IncrInt64(n)
	}
}

func (b *bars) BlobReset(dgst digest.Digest) {
	if bar := b.bar(dgst); bar != nil {
		bar.SetCurrent(0)
	}
}

func (b *bars) BlobFinished(dgst digest.Digest, err error) {
	b.mu.Lock()
	bar := b.active[dgst]
	delete(b.active, dgst)
	b.mu.Unlock()
	if bar == nil {
		return
	}
	if err != nil {
		bar.Abort(true)
		return
	}
	bar.SetTotal(-1, true)
}

func (b *bars) bar(dgst digest.Digest) *mpb.Bar {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active[dgst]
}

func (b *bars) Stop() {
	b.once.Do(func() {
		b.mu.Lock()
		for _, bar := range b.active {
			bar.Abort(true)
		}
		b.mu.Unlock()
		b.container.Wait()
	})
}

// ticker logs a line with the running totals every progressInterval.
type ticker struct {
	mu       sync.Mutex
	active   int
	done     int
	received int64
	stop     chan struct{}
	once     sync.Once
}

func newTicker(e *env) *ticker {
	t := &ticker{stop: make(chan struct{})}
	go func() {
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tick.C:
				t.mu.Lock()
				e.log.Info("progress", "active", t.active, "finished", t.done,
					"received", humanBytes(t.received))
				t.mu.Unlock()
			}
		}
	}()
	return t
}

func (t *ticker) BlobStarted(ocispec.Descriptor, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.active++
}

func (t *ticker) BlobProgress(_ digest.Digest, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.received += n
}

func (t *ticker) BlobReset(digest.Digest) {}

func (t *ticker) BlobFinished(digest.Digest, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.active--
	t.done++
}

func (t *ticker) Stop() { t.once.Do(func() { close(t.stop) }) }
