package registry

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/distribution/reference"
)

const (
	// dockerHubDomain is the registry name references use for Docker Hub.
	dockerHubDomain = "docker.io"
	// dockerHubHost is the API host behind docker.io (and index.docker.io).
	dockerHubHost = "registry-1.docker.io"
	// wildcardMirror is the registries.yaml mirror entry for every other registry.
	wildcardMirror = "*"
)

// endpoint is one place an image can be fetched from: a mirror or the registry itself.
type endpoint struct {
	base     *url.URL  // scheme, host and path prefix; the API lives under base + "/v2/"
	registry string    // the registry name in the reference, for configs lookups
	mirror   bool      // rewrites apply only at mirrors
	rewrites []rewrite // in pattern order; the first match wins
	// tryHTTP marks an https endpoint that may be reached over plain http instead: a
	// loopback registry, or a loopback mirror written without a scheme, as Docker does
	// for its insecure registries. See Client.reach.
	tryHTTP bool
}

// rewrite is one compiled rewrite rule of a mirror.
type rewrite struct {
	re   *regexp.Regexp
	repl string
}

// mirrorSet is a registries.yaml mirror entry, parsed once.
type mirrorSet struct {
	endpoints []mirrorURL
	rewrites  []rewrite
}

// mirrorURL is a mirror endpoint's base URL and whether plain http may replace https.
type mirrorURL struct {
	base    *url.URL
	tryHTTP bool
}

// String is the endpoint as error messages name it, e.g. "http://127.0.0.1:5000".
func (e *endpoint) String() string { return e.base.String() }

// repoPath is the repository path to request at this endpoint: the reference's path,
// rewritten by the first matching rule when the endpoint is a mirror.
func (e *endpoint) repoPath(ref reference.Named) string {
	path := reference.Path(ref)
	if !e.mirror {
		return path
	}
	for _, rw := range e.rewrites {
		if rw.re.MatchString(path) {
			return rw.re.ReplaceAllString(path, rw.repl)
		}
	}
	return path
}

// plain is the plain-http twin of an https-first endpoint.
func (e *endpoint) plain() *endpoint {
	p := *e
	base := *e.base
	base.Scheme = "http"
	p.base, p.tryHTTP = &base, false
	return &p
}

// apiURL is the URL of /v2/<repo>/<kind>/<ref> at this endpoint.
func (e *endpoint) apiURL(repo, kind, ref string) string {
	return e.base.String() + "/v2/" + repo + "/" + kind + "/" + ref
}

// compileMirrors parses every mirror entry of cfg. Rewrite patterns are sorted so the rule
// that applies does not depend on map order (k3s does not define an order either).
func compileMirrors(cfg *RegistriesConfig) (map[string]mirrorSet, error) {
	out := map[string]mirrorSet{}
	if cfg == nil {
		return out, nil
	}
	for name, m := range cfg.Mirrors {
		var set mirrorSet
		for _, s := range m.Endpoints {
			u, tryHTTP, err := parseEndpointURL(s)
			if err != nil {
				return nil, fmt.Errorf("mirror %q: %w", name, err)
			}
			set.endpoints = append(set.endpoints, mirrorURL{base: u, tryHTTP: tryHTTP})
		}

		patterns := make([]string, 0, len(m.Rewrites))
		for p := range m.Rewrites {
			patterns = append(patterns, p)
		}
		sort.Strings(patterns)
		for _, p := range patterns {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("mirror %q: rewrite %q: %w", name, p, err)
			}
			set.rewrites = append(set.rewrites, rewrite{re: re, repl: m.Rewrites[p]})
		}
		out[name] = set
	}
	return out, nil
}

// endpointsFor lists where ref can be fetched from, in the order to try: the mirrors of
// its registry (or of "*"), then the registry's default endpoint. A mirror without
// rewrites that equals the default one is listed once, as the default (over plain http
// only, when the mirror says http:// for a loopback registry).
func endpointsFor(mirrors map[string]mirrorSet, ref reference.Named) []*endpoint {
	domain := reference.Domain(ref)
	set, ok := mirrors[domain]
	if !ok {
		set = mirrors[wildcardMirror]
	}

	def := defaultEndpoint(domain)
	var eps []*endpoint
	for _, m := range set.endpoints {
		if len(set.rewrites) == 0 && m.base.String() == def.base.String() {
			continue
		}
		if len(set.rewrites) == 0 && def.tryHTTP && m.base.String() ==
			def.plain().base.String() {
			def = def.plain() // the user named the registry's own endpoint as plain http
			continue
		}
		eps = append(eps, &endpoint{base: m.base, registry: domain, mirror: true,
			rewrites: set.rewrites, tryHTTP: m.tryHTTP})
	}
	return append(eps, def)
}

// defaultEndpoint is the registry's own API endpoint: registry-1.docker.io for Docker
// Hub, https for everything, with plain http as the fallback for loopback hosts (as
// Docker does).
func defaultEndpoint(domain string) *endpoint {
	host := domain
	if domain == dockerHubDomain {
		host = dockerHubHost
	}
	return &endpoint{base: &url.URL{Scheme: "https", Host: host}, registry: domain,
		tryHTTP: isLoopback(hostOnly(host))}
}

// hostOnly strips a port from host[:port], keeping IPv6 literals intact.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// isLoopback reports whether host is localhost or a loopback IP literal.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
