// Package resume is dls's fetch stage. It resolves image references to pinned manifests,
// selects platforms, works out which blobs the cache lacks, and transfers exactly those,
// continuing any partial download a previous run left behind. A fresh run, a re-run and a
// run after kill -9 are the same code path: every fetch is a resumption.
//
// Resolution (reference → digests) and transfer (digests → blobs) are separate steps so a
// plan can later be sharded across machines whose caches are then merged.
package resume

import (
	"log/slog"
	"time"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/registry"
)

// DefaultConcurrency is how many blobs transfer at once. Registries and CDNs serve each
// connection at a limited rate, so several flows in parallel are how a fetch fills a link.
const DefaultConcurrency = 6

// resolveConcurrency bounds how many references resolve at once; resolution is a handful of
// small requests per image, so latency, not bandwidth, is what parallelism hides.
const resolveConcurrency = 8

// DefaultPlatform is what dls fetches when no platform is given: the usual air-gap target,
// never silently the platform of the machine running dls.
var DefaultPlatform = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// Observer follows blob transfers, for progress display. Calls come from several goroutines
// at once; implementations must be safe for concurrent use and must not block.
type Observer interface {
	// BlobStarted is called when a transfer begins, with the bytes already held.
	BlobStarted(desc ocispec.Descriptor, offset int64)
	// BlobProgress is called as bytes arrive.
	BlobProgress(dgst digest.Digest, n int64)
	// BlobReset is called when the bytes held were dropped and the transfer starts over.
	BlobReset(dgst digest.Digest)
	// BlobFinished is called once per started transfer, with its outcome.
	BlobFinished(dgst digest.Digest, err error)
}

// Options configure a Fetcher.
type Options struct {
	// Platforms to fetch configs and layers for; empty means DefaultPlatform.
	Platforms []ocispec.Platform
	// Concurrency is how many blobs transfer at once; zero means DefaultConcurrency.
	Concurrency int
	// Logger receives progress at info and recovered faults at warn; nil: slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told about each blob transfer.
	Observer Observer
	// KeepAttestations also fetches the configs and layers (SBOMs, provenance) of an
	// index's attestation manifests. Their manifests are always kept.
	KeepAttestations bool
}

// Fetcher fills a cache from registries. It is safe to call Resolve and Transfer from one
// goroutine at a time; each fans out internally.
type Fetcher struct {
	client    *registry.Client
	store     *cache.Cache
	platforms []ocispec.Platform
	limit     int
	log       *slog.Logger
	observer  Observer
	// attestations says whether attestation contents are fetched (Options.KeepAttestations).
	attestations bool

	// inflight makes concurrent requests for one blob share a single transfer.
	inflight singleflight.Group
	stats    counters
}

// New returns a Fetcher that reads from client and writes into store. The caller keeps
// ownership of both.
func New(client *registry.Client, store *cache.Cache, opts Options) *Fetcher {
	f := &Fetcher{
		client:    client,
		store:     store,
		platforms: opts.Platforms,
		limit:     opts.Concurrency,
		log:       opts.Logger,
		observer:  opts.Observer,

		attestations: opts.KeepAttestations,
	}
	if len(f.platforms) == 0 {
		f.platforms = []ocispec.Platform{DefaultPlatform}
	}
	for i, p := range f.platforms {
		f.platforms[i] = platforms.Normalize(p)
	}
	if f.limit <= 0 {
		f.limit = DefaultConcurrency
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.observer == nil {
		f.observer = nopObserver{}
	}
	return f
}

// Stats summarise one fetch. Byte counts are of blob bodies; manifests are counted in
// Blobs but their few kilobytes are not worth a separate figure.
type Stats struct {
	Images          int           `json:"images"`
	ImagesFailed    int           `json:"images_failed"`
	Blobs           int           `json:"blobs"`
	BlobsDownloaded int           `json:"blobs_downloaded"`
	BytesDownloaded int64         `json:"bytes_downloaded"`
	BlobsReused     int           `json:"blobs_reused"`
	BytesReused     int64         `json:"bytes_reused"`
	BytesResumed    int64         `json:"bytes_resumed"`
	Retries         int           `json:"retries"`
	Waited          time.Duration `json:"-"`
	WaitedSeconds   float64       `json:"waited_seconds"`
	Elapsed         time.Duration `json:"-"`
	Seconds         float64       `json:"seconds"`
}

type nopObserver struct{}

func (nopObserver) BlobStarted(ocispec.Descriptor, int64) {}
func (nopObserver) BlobProgress(digest.Digest, int64)     {}
func (nopObserver) BlobReset(digest.Digest)               {}
func (nopObserver) BlobFinished(digest.Digest, error)     {}
