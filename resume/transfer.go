package resume

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/registry"
)

// job is one distinct blob to transfer and the images that need it.
type job struct {
	desc   ocispec.Descriptor
	ref    reference.Named
	images []string
}

// Transfer fetches every blob the plan's images lack, each distinct blob once, largest
// first, several at a time. A blob that fails fails the images that need it; the others
// go on. It moves images with a failed blob from plan.Images to plan.Failed, also when the
// context is cancelled (the plan then says what was finished); the error is only for a
// cancelled context.
func (f *Fetcher) Transfer(ctx context.Context, plan *Plan) error {
	jobs := f.jobs(plan)

	var mu sync.Mutex
	failed := map[string]error{}
	// A failed blob fails only its images, so no error cancels the others: a plain group
	// with a limit, not errgroup.WithContext.
	var g errgroup.Group
	g.SetLimit(f.limit)
	for _, j := range jobs {
		g.Go(func() error {
			err := f.fetchMissing(ctx, j.ref, j.desc, true)
			if err == nil {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			for _, name := range j.images {
				if _, seen := failed[name]; !seen {
					failed[name] = err
				}
			}
			return nil
		})
	}
	_ = g.Wait()

	kept := plan.Images[:0]
	for _, pi := range plan.Images {
		if err, bad := failed[pi.Image.Name]; bad {
			plan.Failed = append(plan.Failed, &ImageError{Ref: pi.Image.Name, Err: err})
			if ctx.Err() == nil {
				f.log.Error("fetch failed", "image", pi.Image.Name, "err", err)
			}
			continue
		}
		kept = append(kept, pi)
	}
	plan.Images = kept

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("transfer blobs: %w", err)
	}
	return nil
}

// jobs lists the distinct blobs the plan's images lack, largest first: big layers start
// early so they do not trail alone at the end while small ones fill the other slots.
// Ties break on digest so the schedule is the same on every run.
func (f *Fetcher) jobs(plan *Plan) []*job {
	byDigest := map[digest.Digest]*job{}
	// present are the blobs found in the cache: Has opens the file and may hash it, so a
	// layer that many images share is checked once.
	present := map[digest.Digest]bool{}
	var jobs []*job
	for _, pi := range plan.Images {
		for _, desc := range pi.Image.Blobs {
			if present[desc.Digest] {
				continue
			}
			j, ok := byDigest[desc.Digest]
			if !ok && f.store.Has(desc) {
				present[desc.Digest] = true
				continue
			}
			if !ok {
				j = &job{desc: desc, ref: pi.Ref}
				byDigest[desc.Digest] = j
				jobs = append(jobs, j)
			}
			j.images = append(j.images, pi.Image.Name)
		}
	}

	slices.SortFunc(jobs, func(a, b *job) int {
		if c := cmp.Compare(b.desc.Size, a.desc.Size); c != 0 {
			return c
		}
		return cmp.Compare(a.desc.Digest, b.desc.Digest)
	})
	return jobs
}

// fetchBlob makes sure one blob is in the cache, transferring it unless it is there already.
// Concurrent calls for one digest share a single transfer. A partial left by an earlier run
// is continued; if the finished bytes fail verification (a stale or damaged partial), the
// blob is fetched once more from zero before giving up.
func (f *Fetcher) fetchBlob(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor) error {
	return f.fetchMissing(ctx, ref, desc, false)
}

// fetchMissing is fetchBlob for a blob the plan found absent when planned is set: the cache
// is not asked again, since for a damaged file that would hash it, and warn, a second time.
func (f *Fetcher) fetchMissing(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor, planned bool) error {
	_, err, _ := f.inflight.Do(desc.Digest.String(), func() (any, error) {
		if !planned && f.store.Has(desc) {
			return nil, nil
		}

		err := f.transferBlob(ctx, ref, desc)
		if errors.Is(err, cache.ErrCorrupt) && ctx.Err() == nil {
			f.log.Warn("blob failed verification, fetching it again from the start",
				"digest", desc.Digest, "image", ref.String(), "err", err)
			err = f.transferBlob(ctx, ref, desc)
		}
		return nil, err
	})
	return err
}

// transferBlob runs one download into the cache's ingest for desc and commits it.
func (f *Fetcher) transferBlob(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor) (err error) {
	// A run interrupted while downloads wait their turn would otherwise create an empty
	// partial file for each of them.
	if err := ctx.Err(); err != nil {
		return err
	}

	ing, err := f.store.Ingest(desc)
	if err != nil {
		return fmt.Errorf("open partial blob %s: %w", desc.Digest, err)
	}
	defer func() {
		if cerr := ing.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close partial blob %s: %w", desc.Digest, cerr)
		}
	}()

	f.observer.BlobStarted(desc, ing.Offset())
	defer func() { f.observer.BlobFinished(desc.Digest, err) }()

	sink := &observedSink{Ingest: ing, dgst: desc.Digest, observer: f.observer}
	st, err := f.client.FetchBlob(ctx, ref, desc, sink)
	f.stats.transferred(st)
	if err != nil {
		// FetchBlob's errors already read "fetch blob <digest> of <ref> from <endpoint>: …";
		// wrapping them again would say it twice.
		return err
	}

	if err := ing.Commit(); err != nil {
		return fmt.Errorf("commit blob %s of %s: %w", desc.Digest, ref, err)
	}
	f.stats.stored(desc.Digest)
	return nil
}

// observedSink reports the bytes written through it to an Observer.
type observedSink struct {
	*cache.Ingest
	dgst     digest.Digest
	observer Observer
}

func (s *observedSink) Write(p []byte) (int, error) {
	n, err := s.Ingest.Write(p)
	s.observer.BlobProgress(s.dgst, int64(n))
	return n, err
}

func (s *observedSink) Reset() error {
	s.observer.BlobReset(s.dgst)
	return s.Ingest.Reset()
}

// counters accumulate, across goroutines, what Stats cannot derive from the plan and the
// client: body bytes and which blobs this run stored.
type counters struct {
	mu         sync.Mutex
	downloaded int64
	resumed    int64
	fetched    map[digest.Digest]bool
}

// stored records a blob this run put into the cache.
func (c *counters) stored(dgst digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fetched == nil {
		c.fetched = map[digest.Digest]bool{}
	}
	c.fetched[dgst] = true
}

func (c *counters) transferred(st registry.BlobStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.downloaded += st.Downloaded
	c.resumed += st.Resumed
}

// Stats returns the figures of everything this Fetcher did so far for plan, with elapsed
// as the duration. Every distinct blob the plan's images need is either downloaded by this
// run or reused from the cache; blobs of failed images count only when this run stored
// them. Byte counts are of configs and layers only, as BytesDownloaded counts the bodies of
// blob GETs.
func (f *Fetcher) Stats(plan *Plan, elapsed time.Duration) Stats {
	f.stats.mu.Lock()
	s := Stats{BytesDownloaded: f.stats.downloaded, BytesResumed: f.stats.resumed}
	fetched := maps.Clone(f.stats.fetched)
	f.stats.mu.Unlock()

	seen := map[digest.Digest]bool{}
	for _, pi := range plan.Images {
		for _, desc := range pi.Image.Blobs {
			if seen[desc.Digest] {
				continue
			}
			seen[desc.Digest] = true
			s.Blobs++
			if fetched[desc.Digest] {
				s.BlobsDownloaded++
			} else {
				s.BlobsReused++
				if !isManifest(desc.MediaType) {
					s.BytesReused += desc.Size
				}
			}
		}
	}

	// Blobs this run stored for images that then failed (a signal, a lost registry) are in
	// the cache all the same: count them, so an interrupted run's summary says what it kept.
	for dgst := range fetched {
		if !seen[dgst] {
			s.Blobs++
			s.BlobsDownloaded++
		}
	}

	// Retries and waits come from the client, which sees every request: manifests and
	// tokens as well as blob bodies.
	for _, hs := range f.client.Stats() {
		s.Retries += hs.Retries
		s.Waited += hs.Waited
	}

	s.Images = len(plan.Images) + len(plan.Failed)
	s.ImagesFailed = len(plan.Failed)
	s.Elapsed = elapsed
	s.Seconds = elapsed.Seconds()
	s.WaitedSeconds = s.Waited.Seconds()
	return s
}
