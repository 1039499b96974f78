package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// errNoHeadDigest says a HEAD gave no usable digest (405, or no valid
// Docker-Content-Digest), so the tag is asked again with a GET.
var errNoHeadDigest = errors.New("HEAD gives no digest")

// TagDigest returns the digest ref's tag points to now, from the first endpoint that
// answers (mirrors in order, then the registry). It sends a HEAD, which Docker Hub does not
// count as a pull, and takes the Docker-Content-Digest header: the registry's claim, not
// checked against any bytes. When the HEAD is refused (405) or carries no valid digest
// header (older registries), it GETs the manifest and hashes it locally instead. Any digest
// ref carries is ignored. A tag the registry does not know wraps ErrNotFound.
func (c *Client) TagDigest(ctx context.Context, ref reference.NamedTagged) (digest.Digest,
	error) {
	action := "look up tag " + tagOnly(ref).String()
	return fromAny(ctx, c, ref, action, func(ep *endpoint) (digest.Digest, error) {
		return c.tagDigestFrom(ctx, ep, ref)
	})
}

// tagDigestFrom asks one endpoint for ref's tag: HEAD first, GET when HEAD cannot say.
func (c *Client) tagDigestFrom(ctx context.Context, ep *endpoint,
	ref reference.NamedTagged) (digest.Digest, error) {
	d, err := c.headTag(ctx, ep, ref)
	if !errors.Is(err, errNoHeadDigest) {
		return d, err
	}

	c.log.Debug("falling back to GET for a tag's digest", "endpoint", ep.String(),
		"image", ref.String(), "reason", err)
	m, err := c.manifestFrom(ctx, ep, ref, ref.Tag(), "", -1)
	if err != nil {
		return "", err
	}
	return m.Descriptor.Digest, nil
}

// headTag sends HEAD /v2/<repo>/manifests/<tag> and returns its Docker-Content-Digest,
// or an errNoHeadDigest error when the answer cannot give one.
func (c *Client) headTag(ctx context.Context, ep *endpoint,
	ref reference.NamedTagged) (digest.Digest, error) {
	release, err := c.limiter.acquire(ctx, ep.base.Host)
	if err != nil {
		return "", err
	}
	defer release()

	repo := ep.repoPath(ref)
	var rs retryStats
	resp, err := c.send(ctx, apiRequest{
		method: http.MethodHead,
		ep:     ep,
		repo:   repo,
		url:    ep.apiURL(repo, "manifests", ref.Tag()),
		header: http.Header{"Accept": {manifestAccept}},
		stats:  &rs,
	})
	if err != nil {
		return "", err
	}
	defer drainClose(resp.Body)

	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed:
		return "", fmt.Errorf("%w: %s", errNoHeadDigest, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return "", statusError(resp, &rs)
	}

	d := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
	if d == "" {
		return "", fmt.Errorf("%w: no Docker-Content-Digest header", errNoHeadDigest)
	}
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: Docker-Content-Digest %q: %v", errNoHeadDigest, d, err)
	}
	return d, nil
}

// checkTag looks up the tag of a name:tag@digest reference whose manifest m was fetched
// by digest, and returns the tag's digest, or "" when the lookup failed. A tag pointing
// to other bytes, or a failed lookup, is logged as a warning; the pinned digest wins
// either way, so neither is an error.
func (c *Client) checkTag(ctx context.Context, ref reference.NamedTagged,
	m Manifest) digest.Digest {
	tagged, err := c.TagDigest(ctx, ref)
	if err != nil && ctx.Err() != nil {
		return "" // cancelled: the caller's next step reports it
	}
	if err != nil {
		c.log.Warn("cannot check the tag of a pinned image; using the pinned digest",
			"image", ref.String(), "error", err)
		return ""
	}

	if sameBytes(tagged, m) {
		return m.Descriptor.Digest
	}
	c.log.Warn("tag moved or the digest belongs to another tag; using the pinned digest",
		"image", ref.String(), "tag_digest", tagged, "pinned_digest", m.Descriptor.Digest)
	return tagged
}

// sameBytes reports whether d is the digest of m's bytes, also when d uses another
// algorithm than m.Descriptor.Digest. d must be valid (its algorithm available).
func sameBytes(d digest.Digest, m Manifest) bool {
	if d.Algorithm() == m.Descriptor.Digest.Algorithm() {
		return d == m.Descriptor.Digest
	}
	return d.Algorithm().FromBytes(m.Bytes) == d
}

// tagOnly drops any digest from ref, leaving name:tag.
func tagOnly(ref reference.NamedTagged) reference.NamedTagged {
	t, err := reference.WithTag(reference.TrimNamed(ref), ref.Tag())
	if err != nil {
		return ref // cannot happen: the tag came from a parsed reference
	}
	return t
}
