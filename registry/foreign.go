package registry

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobFromURLs fetches the rest of desc from the urls its descriptor lists, in order,
// after every endpoint failed with regErrs. Foreign layers (Docker's
// rootfs.foreign.diff.tar[.gzip], OCI's deprecated layer.nondistributable.v1.*) are the
// case in practice: registries may refuse to serve them, and their manifest names a
// public host that does. Any descriptor with urls is handled alike, since the sink
// verifies the digest whoever sent the bytes.
//
// Each url must pass checkBlobURL and is sent no credentials: not the registry's token,
// not a registries.yaml login for that host. The sink keeps what earlier sources wrote,
// so a url continues with a closed Range like a resumed registry blob. When all fail,
// the error names the digest, the image and each url with its failure.
func (c *Client) blobFromURLs(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor, sink BlobSink, stats *BlobStats, regErrs endpointErrors) error {
	c.log.Info("blob not fetched from the registry; trying the urls of its descriptor",
		"digest", desc.Digest, "image", ref.String(), "urls", len(desc.URLs))

	var urlErrs endpointErrors
	for _, raw := range desc.URLs {
		err := c.blobFromURL(ctx, ref, raw, desc, sink, stats)
		if err == nil {
			// The sink may still refuse these bytes at commit; this line says who sent them.
			c.log.Info("blob fetched from a url of its descriptor", "digest", desc.Digest,
				"url", redact(raw))
			return nil
		}

		err = fmt.Errorf("%s: %w", redact(raw), err)
		if isFinal(ctx, err) {
			return fmt.Errorf("fetch blob %s of %s from %w", desc.Digest, ref, err)
		}
		c.log.Warn("blob url failed", "digest", desc.Digest, "error", err)
		urlErrs = append(urlErrs, err)
	}
	return urlsFailed(ref, desc, regErrs, urlErrs)
}

// blobFromURL checks one descriptor url and fetches the rest of the blob from it.
func (c *Client) blobFromURL(ctx context.Context, ref reference.Named, raw string,
	desc ocispec.Descriptor, sink BlobSink, stats *BlobStats) error {
	u, err := checkBlobURL(ref, raw)
	if err != nil {
		return err
	}
	return c.blobFrom(ctx, urlSource(u), desc, sink, stats)
}

// checkBlobURL parses a descriptor url and refuses what dls does not fetch: schemes other
// than https (plain http only for loopback hosts, as for registries), urls without a
// host, and internal addresses named by an image whose registry is not itself internal
// (a public manifest steering requests at the network dls runs in).
func checkBlobURL(ref reference.Named, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the url, query and all; the caller names it redacted.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("not a valid url: %w", err)
	}
	if u.Host == "" {
		return nil, errors.New("refusing a url without a host")
	}

	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return nil, errors.New("refusing plain http: only https urls are fetched, " +
			"except from loopback hosts")
	default:
		return nil, fmt.Errorf("refusing url scheme %q: only https urls are fetched", u.Scheme)
	}

	registry := reference.Domain(ref)
	if isInternal(u.Hostname()) && !isInternal(hostOnly(registry)) {
		return nil, fmt.Errorf("refusing an internal address named by an image from %s",
			registry)
	}
	return u, nil
}

// urlsFailed is the error of a blob neither the endpoints nor the urls delivered. When
// every endpoint simply lacked it, only the urls' failures are worth reading; otherwise
// the endpoints' errors come first.
func urlsFailed(ref reference.Named, desc ocispec.Descriptor, regErrs,
	urlErrs endpointErrors) error {
	notFound := true
	for _, err := range regErrs {
		notFound = notFound && errors.Is(err, ErrNotFound)
	}
	if !notFound {
		return fmt.Errorf("%w; and its urls failed: %w", regErrs.join(), urlErrs.join())
	}

	where := "the registry"
	if len(regErrs) > 1 {
		where = "the registry or its mirrors"
	}
	return fmt.Errorf("fetch blob %s of %s: not in %s, and its urls failed: %w",
		desc.Digest, ref, where, urlErrs.join())
}
