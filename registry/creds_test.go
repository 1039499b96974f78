package registry

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

// fixedHelper is a credential helper that knows one login for every host.
type fixedHelper struct{ user, pass string }

func (h fixedHelper) Get(string) (string, string, error) { return h.user, h.pass, nil }

// isolateHome points every place the default keychain reads at empty test directories.
func isolateHome(t *testing.T) string {
	t.Helper()

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	return home
}

func TestCredentialsFromKeychainFiles(t *testing.T) {
	// otherHost is a login for some other registry, which must not hide the one we need.
	const otherHost = `{"auths":{"other.example:5000":{"auth":"Ym9iOmh1bnRlcjI="}}}`
	tests := []struct {
		name  string
		setup func(t *testing.T, home, authJSON string)
	}{
		{"docker config.json in DOCKER_CONFIG", func(t *testing.T, home, authJSON string) {
			dir := filepath.Join(home, "dockercfg")
			mustWrite(t, filepath.Join(dir, "config.json"), authJSON)
			t.Setenv("DOCKER_CONFIG", dir)
		}},
		{"podman auth.json in REGISTRY_AUTH_FILE", func(t *testing.T, home, authJSON string) {
			path := filepath.Join(home, "auth.json")
			mustWrite(t, path, authJSON)
			t.Setenv("REGISTRY_AUTH_FILE", path)
		}},
		{"podman auth.json under XDG_RUNTIME_DIR", func(t *testing.T, home, authJSON string) {
			dir := filepath.Join(home, "run")
			mustWrite(t, filepath.Join(dir, "containers", "auth.json"), authJSON)
			t.Setenv("XDG_RUNTIME_DIR", dir)
		}},
		{"podman auth.json when docker config.json is for another host",
			func(t *testing.T, home, authJSON string) {
				dir := filepath.Join(home, "dockercfg")
				mustWrite(t, filepath.Join(dir, "config.json"), otherHost)
				t.Setenv("DOCKER_CONFIG", dir)
				path := filepath.Join(home, "auth.json")
				mustWrite(t, path, authJSON)
				t.Setenv("REGISTRY_AUTH_FILE", path)
			}},
		{"podman auth.json under ~/.config when ~/.docker/config.json exists",
			func(t *testing.T, home, authJSON string) {
				mustWrite(t, filepath.Join(home, ".docker", "config.json"), otherHost)
				mustWrite(t, filepath.Join(home, ".config", "containers", "auth.json"),
					authJSON)
			}},
		{"docker config.json wins over podman auth.json for the same host",
			func(t *testing.T, home, authJSON string) {
				dir := filepath.Join(home, "dockercfg")
				mustWrite(t, filepath.Join(dir, "config.json"), authJSON)
				t.Setenv("DOCKER_CONFIG", dir)
				path := filepath.Join(home, "auth.json")
				wrong := base64.StdEncoding.EncodeToString([]byte("mallory:wrong"))
				mustWrite(t, path, strings.Replace(authJSON,
					base64.StdEncoding.EncodeToString([]byte("alice:s3cret")), wrong, 1))
				t.Setenv("REGISTRY_AUTH_FILE", path)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := isolateHome(t)
			ts := startTokenServer(t)
			ts.user, ts.pass = "alice", "s3cret"
			reg, img := startTokenRegistry(t, ts)
			auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
			tt.setup(t, home, `{"auths":{"`+reg.Host+`":{"auth":"`+auth+`"}}}`)
			c := testClient(t, Options{Keychain: DefaultKeychain()})

			m, err := c.Resolve(context.Background(), mustRef(t, reg.Host+"/a/b:1"))
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Descriptor.Digest != img.manifestDigest {
				t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
			}
			if _, logins := ts.requests(); strings.Join(logins, ",") != "alice" {
				t.Errorf("token logins = %q, want [alice]", logins)
			}
		})
	}
}

func TestRegistriesYAMLLoginWinsOverKeychain(t *testing.T) {
	ts := startTokenServer(t)
	ts.user, ts.pass = "alice", "s3cret"
	reg, _ := startTokenRegistry(t, ts)
	c := testClient(t, Options{
		Keychain: authn.NewKeychainFromHelper(fixedHelper{user: "mallory", pass: "wrong"}),
		Config: &RegistriesConfig{Configs: map[string]HostConfig{reg.Host: {
			Auth: &AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))},
		}}},
	})

	if _, err := c.Resolve(context.Background(), mustRef(t, reg.Host+"/a/b:1")); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if _, logins := ts.requests(); strings.Join(logins, ",") != "alice" {
		t.Errorf("token logins = %q, want [alice]", logins)
	}
}

func TestKeychainHostNames(t *testing.T) {
	var asked []string
	kc := authn.NewKeychainFromHelper(helperFunc(func(host string) (string, string, error) {
		asked = append(asked, host)
		return "", "", nil
	}))
	c := testClient(t, Options{Keychain: kc, Config: &RegistriesConfig{
		Mirrors: map[string]Mirror{"docker.io": {Endpoints: []string{"https://m.example:5000"}}},
	}})

	for _, ep := range c.endpoints(mustRef(t, "busybox")) {
		c.credentialsFor(context.Background(), ep)
		c.credentialsFor(context.Background(), ep) // cached: not asked again
	}
	if strings.Join(asked, ",") != "m.example:5000,index.docker.io" {
		t.Errorf("keychain asked for %q, want the mirror host then index.docker.io", asked)
	}
}

// helperFunc adapts a function to authn.Helper.
type helperFunc func(string) (string, string, error)

func (f helperFunc) Get(host string) (string, string, error) { return f(host) }

// mustWrite writes data to path, creating its directory.
func mustWrite(t testing.TB, path, data string) {
	t.Helper()

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatalf("create %s: %v", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
