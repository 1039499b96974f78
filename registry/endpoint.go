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
}

// rewrite is one compiled rewrite rule of a mirror.
type rewrite struct {
	re   *regexp.Regexp
	repl string
}

// mirrorSet is a registries.yaml mirror entry, parsed once.
type mirrorSet struct {
	endpoints []*url.URL
	rewrites  []rewrite
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
			u, err := parseEndpointURL(s)
			if err != nil {
				return nil, fmt.Errorf("mirror %q: %w", name, err)
			}
			set.endpoints = append(set.endpoints, u)
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
// its registry (or of "*"), then the registry's default endpoint. An endpoint that equals
// the default one is listed once.
func endpointsFor(mirrors map[string]mirrorSet, ref reference.Named) []*endpoint {
	domain := reference.Domain(ref)
	set, ok := mirrors[domain]
	if !ok {
		set = mirrors[wildcardMirror]
	}

	def := defaultEndpoint(domain)
	var eps []*endpoint
	for _, u := range set.endpoints {
		if u.String() == def.base.String() && len(set.rewrites) == 0 {
			continue
		}
		eps = append(eps, &endpoint{
			base: u, registry: domain, mirror: true, rewrites: set.rewrites,
		})
	}
	return append(eps, def)
}

// defaultEndpoint is the registry's own API endpoint: registry-1.docker.io for Docker
// Hub, plain http for loopback hosts (as Docker does), https for everything else.
func defaultEndpoint(domain string) *endpoint {
	host := domain
	if domain == dockerHubDomain {
		host = dockerHubHost
	}

	scheme := "https"
	if isLoopback(hostOnly(host)) {
		scheme = "http"
	}
	return &endpoint{base: &url.URL{Scheme: scheme, Host: host}, registry: domain}
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
