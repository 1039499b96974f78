// Package registry speaks the OCI distribution protocol: references, endpoints and mirrors,
// auth challenges and tokens, manifests, blob GETs with Range, and retries. It knows nothing
// of the cache or of archives.
//
// Contract used by the rest of dls (to be implemented in this package):
//
//	// ParseReference parses and normalises one image reference the way containerd and
//	// Docker do (github.com/distribution/reference ParseNormalizedNamed): "busybox" becomes
//	// "docker.io/library/busybox:latest". name:tag, name@digest and name:tag@digest are
//	// accepted; a bare name gets ":latest".
//	func ParseReference(s string) (reference.Named, error)
//
//	// ParseList reads an image list (one reference per line; blank lines and # comments
//	// ignored; a trailing "# comment" after a reference too). source names the input in
//	// errors, which carry "source:line: …". Every bad line is reported, not only the first
//	// (errors.Join), and the valid ones are still returned. Duplicates are dropped, keeping
//	// first-seen order.
//	func ParseList(r io.Reader, source string) ([]reference.Named, error)
//
//	// LoadRegistriesConfig reads k3s/RKE2 registries.yaml (mirrors with endpoint lists and
//	// rewrite, configs with auth and tls).
//	func LoadRegistriesConfig(path string) (*RegistriesConfig, error)
//
//	type Options struct {
//		Config       *RegistriesConfig // nil: no mirrors
//		Logger       *slog.Logger      // nil: slog.Default()
//		RetryMax     int               // attempts after the first; default 5
//		RetryWaitMax time.Duration     // longest single wait; a longer Retry-After fails
//		UserAgent    string
//		Transport    http.RoundTripper // nil: a tuned http.Transport (tests inject proxies)
//	}
//	func NewClient(opts Options) (*Client, error)
//
//	// Resolve GETs the manifest for ref (tag or digest; digest wins for name:tag@digest)
//	// from the first endpoint that answers (mirrors in order, then the default endpoint).
//	// The body is capped (MaxManifestSize), hashed locally, checked against the requested
//	// digest, and schema 1 is refused with a message naming the image.
//	func (c *Client) Resolve(ctx context.Context, ref reference.Named) (Manifest, error)
//
//	// FetchManifest GETs a manifest by digest in ref's repository (an index's child).
//	func (c *Client) FetchManifest(ctx context.Context, ref reference.Named,
//		desc ocispec.Descriptor) (Manifest, error)
//
//	type Manifest struct {
//		Descriptor ocispec.Descriptor // MediaType, Digest (of Bytes), Size
//		Bytes      []byte             // the registry's bytes, never re-marshalled
//	}
//
//	// BlobSink receives a blob's bytes. Offset says how many it already holds, so the
//	// fetch continues with Range: bytes=Offset-(Size-1). Reset drops them all, for a
//	// server that ignores Range or answers a Content-Range that does not start at Offset.
//	type BlobSink interface {
//		io.Writer
//		Offset() int64
//		Reset() error
//	}
//
//	// FetchBlob streams desc from ref's repository into sink, starting at sink.Offset().
//	// A body cut mid-way, a stall (idle timeout) or a retryable status continues from the
//	// new offset with a closed Range, going back to the registry URL after a redirect.
//	// It does not verify the digest (the sink does, at commit) but never writes more than
//	// desc.Size bytes in total. Safe for concurrent use with different sinks.
//	func (c *Client) FetchBlob(ctx context.Context, ref reference.Named,
//		desc ocispec.Descriptor, sink BlobSink) (BlobStats, error)
//
//	type BlobStats struct {
//		Downloaded int64 // body bytes received this call
//		Resumed    int64 // bytes that were already held when the call began
//		Retries    int
//		Waited     time.Duration
//	}
//
// Error kinds for errors.Is: ErrNotFound (404 / MANIFEST_UNKNOWN / BLOB_UNKNOWN),
// ErrUnauthorized (401/403 after auth), ErrRateLimited (429 past the retry budget),
// ErrUnsupported (schema 1, unknown media type).
package registry
