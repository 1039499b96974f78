package registry

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// maxConfigSize caps registries.yaml; real files are a few kilobytes.
const maxConfigSize = 1 << 20

// RegistriesConfig is the k3s/RKE2 registries.yaml: mirrors say where to fetch a
// registry's images from, configs say how to authenticate to and trust each host.
type RegistriesConfig struct {
	// Mirrors is keyed by registry name as it appears in references ("docker.io",
	// "registry.k8s.io", "host:5000"), or "*" for every registry without its own entry.
	Mirrors map[string]Mirror `json:"mirrors,omitempty"`
	// Configs is keyed by host[:port] of an endpoint (a mirror's or the registry's own).
	Configs map[string]HostConfig `json:"configs,omitempty"`
	// Ignored says which key of the file dls does not know, when one is there; it was
	// ignored, as k3s ignores it, and the caller should warn: it may be a misspelling.
	Ignored string `json:"-"`
}

// Mirror lists the endpoints tried, in order, before the registry's default endpoint.
type Mirror struct {
	// Endpoints are URLs such as "https://mirror.example.com:5000"; a URL without a scheme
	// means https (for loopback hosts, https then plain http, unless configs has tls for
	// the host). A path is kept in front of "/v2/", and a trailing "/v2" is dropped.
	// TODO: k3s's override_path (a path used as the API root, without /v2) is not supported.
	Endpoints []string `json:"endpoint,omitempty"`
	// Rewrites map a regular expression on the repository path to a replacement
	// ("^rancher/(.*)": "mirrored/$1"). They apply at mirror endpoints only, never at the
	// default endpoint, as in k3s.
	Rewrites map[string]string `json:"rewrite,omitempty"`
}

// HostConfig holds the credentials and TLS settings of one host.
type HostConfig struct {
	Auth *AuthConfig `json:"auth,omitempty"`
	TLS  *TLSConfig  `json:"tls,omitempty"`
}

// AuthConfig is a registry login. Username and Password, or Auth (base64 of
// "user:password", as in Docker's config.json), or IdentityToken (an OAuth2 refresh token).
type AuthConfig struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identity_token,omitempty"`
}

// TLSConfig says how to trust a host and how to present a client certificate to it.
type TLSConfig struct {
	CAFile             string `json:"ca_file,omitempty"`
	CertFile           string `json:"cert_file,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// LoadRegistriesConfig reads a k3s/RKE2 registries.yaml. Unknown keys are ignored, as k3s
// ignores them, so a file written for k3s loads here unchanged; the first is named in
// Ignored. Endpoints, rewrite patterns and base64 auth strings are checked now, so a typo
// fails before any fetch.
func LoadRegistriesConfig(path string) (*RegistriesConfig, error) {
	data, err := readCapped(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("load registries config %s: %w", path, err)
	}

	var cfg RegistriesConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("load registries config %s: %w", path, err)
	}

	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("load registries config %s: %w", path, err)
	}

	// The strict decoder stops at the first unknown key, which is enough to point at it.
	var strict RegistriesConfig
	if err := yaml.UnmarshalStrict(data, &strict); err != nil {
		cfg.Ignored = unknownKey(err)
	}
	return &cfg, nil
}

// unknownKey extracts the quoted key from a strict decoding error.
func unknownKey(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "unknown field "); i >= 0 {
		return msg[i+len("unknown field "):]
	}
	return msg
}

// validate checks what would otherwise fail late, in the middle of a fetch.
func (cfg *RegistriesConfig) validate() error {
	for name, m := range cfg.Mirrors {
		for _, ep := range m.Endpoints {
			if _, _, err := parseEndpointURL(ep); err != nil {
				return fmt.Errorf("mirror %q: %w", name, err)
			}
		}
		for pattern := range m.Rewrites {
			if _, err := regexp.Compile(pattern); err != nil {
				return fmt.Errorf("mirror %q: rewrite %q: %w", name, pattern, err)
			}
		}
	}
	for host, hc := range cfg.Configs {
		if hc.Auth == nil || hc.Auth.Auth == "" {
			continue
		}
		if _, _, err := hc.Auth.credentials(); err != nil {
			return fmt.Errorf("configs %q: %w", host, err)
		}
	}
	return nil
}

// credentials returns the username and password, decoding Auth when it is set.
func (a *AuthConfig) credentials() (user, pass string, err error) {
	if a.Auth == "" {
		return a.Username, a.Password, nil
	}

	raw, err := base64.StdEncoding.DecodeString(a.Auth)
	if err != nil {
		return "", "", fmt.Errorf("decode auth: %w (want base64 of user:password)", err)
	}

	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", fmt.Errorf("decode auth: no ':' between user and password")
	}
	return user, pass, nil
}

// parseEndpointURL parses a mirror endpoint; no scheme means https. For a loopback host
// written without a scheme, tryHTTP says plain http may be used when https fails, as
// Docker does for its insecure registries.
func parseEndpointURL(s string) (u *url.URL, tryHTTP bool, err error) {
	raw := s
	schemeless := !strings.Contains(raw, "://")
	if schemeless {
		raw = "https://" + raw
	}

	u, err = url.Parse(raw)
	if err != nil {
		return nil, false, fmt.Errorf("endpoint %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, false, fmt.Errorf("endpoint %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return nil, false, fmt.Errorf("endpoint %q: no host", s)
	}

	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v2")
	u.RawQuery, u.Fragment = "", ""
	return u, schemeless && isLoopback(u.Hostname()), nil
}

// hasTLSConfig reports whether registries.yaml has a tls section for host[:port] (by
// host:port or by host alone, as hostTransports picks transports). Such a host is
// reached over https only.
func (cfg *RegistriesConfig) hasTLSConfig(hostport string) bool {
	if cfg == nil {
		return false
	}
	for k, hc := range cfg.Configs {
		if hc.TLS != nil && (strings.EqualFold(k, hostport) ||
			strings.EqualFold(k, hostOnly(hostport))) {
			return true
		}
	}
	return false
}

// readCapped reads a whole file, refusing one larger than limit.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}
