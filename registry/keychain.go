package registry

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultKeychain is the keychain a Client uses when Options.Keychain is nil. Per host it
// asks Docker's config.json ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, with
// its credsStore and credHelpers), then Podman's auth.json ($REGISTRY_AUTH_FILE, else
// $XDG_RUNTIME_DIR/containers/auth.json, else $XDG_CONFIG_HOME or
// ~/.config/containers/auth.json). Unlike authn.DefaultKeychain, which reads Podman's
// file only when no Docker config exists, a login Docker's file lacks is still found in
// Podman's. Files are read at each lookup; Client caches the answer per host.
func DefaultKeychain() authn.Keychain {
	return authn.NewMultiKeychain(configFileKeychain{load: loadDockerConfig},
		configFileKeychain{load: loadPodmanAuth})
}

// configFileKeychain answers from one Docker-format credentials file. load returns nil
// when the file does not exist.
type configFileKeychain struct {
	load func() (*configfile.ConfigFile, error)
}

// Resolve implements authn.Keychain: the file's login for the resource's registry, or
// authn.Anonymous when it has none.
func (k configFileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	cf, err := k.load()
	if err != nil {
		return nil, err
	}
	if cf == nil {
		return authn.Anonymous, nil
	}

	key := r.RegistryStr()
	if key == name.DefaultRegistry {
		key = authn.DefaultAuthKey // the key Docker files Docker Hub logins under
	}
	ac, err := cf.GetAuthConfig(key)
	if err != nil {
		return nil, fmt.Errorf("read credentials for %s from %s: %w", key, cf.Filename, err)
	}
	if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" &&
		ac.RegistryToken == "" {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password,
		Auth: ac.Auth, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
}

// loadDockerConfig reads Docker's config.json, or returns nil when there is none.
func loadDockerConfig() (*configfile.ConfigFile, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil // no home, no file: anonymous
		}
		dir = filepath.Join(home, ".docker")
	}
	if !isFile(filepath.Join(dir, config.ConfigFileName)) {
		return nil, nil
	}
	return config.Load(dir)
}

// loadPodmanAuth reads Podman's auth.json, or returns nil when there is none.
func loadPodmanAuth() (*configfile.ConfigFile, error) {
	path := podmanAuthPath()
	if path == "" || !isFile(path) {
		return nil, nil
	}

	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()

	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	cf.Filename = path
	return cf, nil
}

// podmanAuthPath is where Podman keeps logins: $REGISTRY_AUTH_FILE when set, else the
// first existing of $XDG_RUNTIME_DIR/containers/auth.json and
// $XDG_CONFIG_HOME/containers/auth.json (~/.config by default); "" when none is known.
func podmanAuthPath() string {
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		return p
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		if p := filepath.Join(dir, "containers", "auth.json"); isFile(p) {
			return p
		}
	}

	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "containers", "auth.json")
}

// isFile reports whether path exists and is not a directory.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}
