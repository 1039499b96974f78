package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize caps a manifest or index read into memory. distribution refuses to
// store manifests over 4 MiB, so nothing legitimate is larger.
const MaxManifestSize = 4 << 20

// Docker's manifest media types (OCI's are in image-spec).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestAccept lists the types dls reads. Schema 1 is left out on purpose, and the
// schema 2 types are kept in, or old registries convert down to schema 1.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex,
	ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList,
	MediaTypeDockerManifest,
}, ", ")

// Resolve GETs the manifest for ref (tag or digest) from the first endpoint that answers:
// mirrors in order, then the default endpoint. The body is capped at MaxManifestSize,
// hashed locally, checked against the requested digest (or Docker-Content-Digest for a
// tag), and schema 1 is refused with ErrUnsupported. When every endpoint fails, the error
// lists each endpoint's failure.
//
// For name:tag@digest the digest wins: the manifest is fetched by digest, then the tag is
// looked up (TagDigest) and the result recorded in Manifest.TagDigest, with a warning
// when the tag points elsewhere. A failed tag lookup is only a warning.
func (c *Client) Resolve(ctx context.Context, ref reference.Named) (Manifest, error) {
	ident, want := "", digest.Digest("")
	if d, ok := ref.(reference.Digested); ok {
		ident, want = d.Digest().String(), d.Digest()
	} else if t, ok := ref.(reference.Tagged); ok {
		ident = t.Tag()
	} else {
		ident = "latest"
	}

	m, err := c.manifestFromAny(ctx, ref, ident, want, -1)
	if err != nil {
		return Manifest{}, err
	}

	if tagged, ok := ref.(reference.NamedTagged); ok && want != "" {
		m.TagDigest = c.checkTag(ctx, tagged, m)
	}
	return m, nil
}

// FetchManifest GETs the manifest desc names (by digest) in ref's repository, e.g. an
// index's child, and checks its digest and size against desc.
func (c *Client) FetchManifest(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor) (Manifest, error) {
	if err := desc.Digest.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("fetch manifest %s of %s: %w", desc.Digest, ref, err)
	}
	return c.manifestFromAny(ctx, ref, desc.Digest.String(), desc.Digest, desc.Size)
}

// manifestFromAny tries each endpoint in order and returns the first manifest fetched.
func (c *Client) manifestFromAny(ctx context.Context, ref reference.Named, ident string,
	want digest.Digest, size int64) (Manifest, error) {
	return fromAny(ctx, c, ref, "fetch manifest "+ref.String(),
		func(ep *endpoint) (Manifest, error) {
			return c.manifestFrom(ctx, ep, ref, ident, want, size)
		})
}

// fromAny runs try against each endpoint of ref in order and returns the first success.
// Each failure is wrapped as "action from endpoint: cause" and logged; when all fail, the
// error lists them all. A cancelled ctx stops at once.
func fromAny[T any](ctx context.Context, c *Client, ref reference.Named, action string,
	try func(*endpoint) (T, error)) (T, error) {
	var zero T
	var errs endpointErrors
	for _, ep := range c.endpoints(ref) {
		ep, err := c.reach(ctx, ep)
		if err == nil {
			var v T
			if v, err = try(ep); err == nil {
				return v, nil
			}
		}

		err = fmt.Errorf("%s from %s: %w", action, ep, err)
		if ctx.Err() != nil {
			return zero, err
		}
		c.logFallthrough(ep, err)
		errs = append(errs, err)
	}
	return zero, errs.join()
}

// logFallthrough notes an endpoint that failed: a mirror without the image is routine
// (debug), and so is an endpoint marked down (markDown warned once); anything else is a
// fault the next endpoint may recover from (warn).
func (c *Client) logFallthrough(ep *endpoint, err error) {
	if errors.Is(err, ErrNotFound) {
		c.log.Debug("endpoint does not have it", "endpoint", ep.String(), "error", err)
		return
	}
	if errors.Is(err, ErrUnreachable) && c.isDown(ep) {
		c.log.Debug("endpoint failed", "endpoint", ep.String(), "error", err)
		return
	}
	c.log.Warn("endpoint failed", "endpoint", ep.String(), "error", err)
}

// manifestFrom GETs one manifest from one endpoint and verifies it.
func (c *Client) manifestFrom(ctx context.Context, ep *endpoint, ref reference.Named,
	ident string, want digest.Digest, size int64) (Manifest, error) {
	release, err := c.limiter.acquire(ctx, ep.base.Host)
	if err != nil {
		return Manifest{}, err
	}
	defer release()

	repo := ep.repoPath(ref)
	var rs retryStats
	resp, err := c.send(ctx, apiRequest{
		ep:     ep,
		repo:   repo,
		url:    ep.apiURL(repo, "manifests", ident),
		header: http.Header{"Accept": {manifestAccept}},
		stats:  &rs,
	})
	if err != nil {
		return Manifest{}, err
	}
	defer drainClose(resp.Body)

	if resp.StatusCode != http.StatusOK {
		return Manifest{}, statusError(resp, &rs)
	}

	body, err := readManifest(resp, size)
	if err != nil {
		return Manifest{}, err
	}
	return verifyManifest(ref, resp, body, want)
}

// statusError is responseError plus how many attempts were made: when there were
// several, or when the status is one worth retrying, so a failure with retries turned
// off says "after 1 attempt" rather than leaving the user to wonder.
func statusError(resp *http.Response, rs *retryStats) error {
	err := responseError(resp)
	if rs.attempts > 1 || retryableStatus[resp.StatusCode] {
		return fmt.Errorf("%w (after %s)", err, plural(max(rs.attempts, 1), "attempt"))
	}
	return err
}

// readManifest reads a manifest body, refusing one over MaxManifestSize or, when size is
// known (>= 0), of another length. Content-Length is checked before reading.
func readManifest(resp *http.Response, size int64) ([]byte, error) {
	limit := int64(MaxManifestSize)
	if size >= 0 {
		limit = min(size, limit)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("manifest of %d bytes exceeds the %d-byte limit",
			resp.ContentLength, limit)
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("manifest exceeds the %d-byte limit", limit)
	}
	if size >= 0 && int64(len(body)) != size {
		return nil, fmt.Errorf("manifest has %d bytes, descriptor says %d", len(body), size)
	}
	return body, nil
}
