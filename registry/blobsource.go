package registry

import (
	"context"
	"net/http"
	"net/url"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// blobSource is one place FetchBlob GETs a blob from: an endpoint's blob API, reached
// through send (ping, token, one renewal on a 401), or a URL the blob's descriptor lists
// (a foreign layer's), reached with no credentials at all. A registry's token or login
// belongs to that registry; a descriptor URL is whatever host a manifest names.
type blobSource struct {
	ep   *endpoint // nil for a descriptor URL
	repo string    // the repository path at ep, which makes the token scope; "" for a URL
	url  string    // what to GET
	base *url.URL  // where the request is meant to go: ep.base, or the parsed URL
}

// endpointSource is the blob API URL of dgst in ref's repository at ep.
func endpointSource(ep *endpoint, ref reference.Named, dgst digest.Digest) blobSource {
	repo := ep.repoPath(ref)
	return blobSource{ep: ep, repo: repo, url: ep.apiURL(repo, "blobs", dgst.String()),
		base: ep.base}
}

// urlSource is a descriptor URL that checkBlobURL accepted.
func urlSource(u *url.URL) blobSource {
	return blobSource{url: u.String(), base: u}
}

// String names the source in logs and errors: the endpoint, or the URL without its
// query (which may hold a signature).
func (s blobSource) String() string {
	if s.ep != nil {
		return s.ep.String()
	}
	return redact(s.url)
}

// host is the host[:port] that concurrency limits and HostStats are kept under.
func (s blobSource) host() string { return s.base.Host }

// getBlob sends one GET of the blob, with retries, over HTTP/1.1 (see transportPair). The
// caller closes the body.
func (c *Client) getBlob(ctx context.Context, s blobSource, hdr http.Header,
	rs *retryStats) (*http.Response, error) {
	ctx = withBlobTransfer(ctx)
	if s.ep != nil {
		return c.send(ctx, apiRequest{ep: s.ep, repo: s.repo, url: s.url, header: hdr,
			stats: rs})
	}
	return c.do(ctx, http.MethodGet, s.url, hdr, nil, rs)
}

// statusError describes a final blob response that is not a success. A descriptor URL's
// 404 names its status: no distribution error document comes with it, and the user
// should read what that host answered.
func (s blobSource) statusError(resp *http.Response, rs *retryStats) error {
	if s.ep == nil && resp.StatusCode == http.StatusNotFound {
		return kindErrorf(ErrNotFound, "%s", resp.Status)
	}
	return statusError(resp, rs)
}
