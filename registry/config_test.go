package registry

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// writeFile writes data to name under a temporary directory and returns the path.
func writeFile(t testing.TB, name, data string) string {
	t.Helper()

	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

func TestLoadRegistriesConfig(t *testing.T) {
	path := writeFile(t, "registries.yaml", `
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example.com/v2"
    rewrite:
      "^rancher/(.*)": "mirrored/$1"
  "*":
    endpoint: ["mirror.example.com:5000"]
configs:
  "mirror.example.com":
    auth:
      username: user
      password: secret
    tls:
      ca_file: /etc/ssl/ca.pem
      insecure_skip_verify: true
  "other.example.com":
    auth:
      auth: dXNlcjpwYXNz
      identity_token: refresh
unknown_key_k3s_may_add: 1
`)
	cfg, err := LoadRegistriesConfig(path)
	if err != nil {
		t.Fatalf("LoadRegistriesConfig: %v", err)
	}

	hub := cfg.Mirrors["docker.io"]
	if strings.Join(hub.Endpoints, " ") != "http://127.0.0.1:5000 https://mirror.example.com/v2" {
		t.Errorf("docker.io endpoints = %q", hub.Endpoints)
	}
	if hub.Rewrites["^rancher/(.*)"] != "mirrored/$1" {
		t.Errorf("docker.io rewrites = %q", hub.Rewrites)
	}
	mc := cfg.Configs["mirror.example.com"]
	if mc.Auth.Username != "user" || mc.Auth.Password != "secret" ||
		mc.TLS.CAFile != "/etc/ssl/ca.pem" || !mc.TLS.InsecureSkipVerify {
		t.Errorf("mirror.example.com config = %+v %+v", mc.Auth, mc.TLS)
	}
	user, pass, err := cfg.Configs["other.example.com"].Auth.credentials()
	if user != "user" || pass != "pass" || err != nil {
		t.Errorf("decoded auth = %q %q %v, want user pass", user, pass, err)
	}
	if want := `"unknown_key_k3s_may_add"`; cfg.Ignored != want {
		t.Errorf("Ignored = %q, want %q", cfg.Ignored, want)
	}
}

func TestLoadRegistriesConfigNamesAMisspelledKey(t *testing.T) {
	path := writeFile(t, "registries.yaml",
		"mirorrs:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\"]\n")
	cfg, err := LoadRegistriesConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mirrors) != 0 || cfg.Ignored != `"mirorrs"` {
		t.Errorf("mirrors = %v, Ignored = %q; want none and \"mirorrs\"", cfg.Mirrors,
			cfg.Ignored)
	}

	clean := writeFile(t, "clean.yaml", "mirrors:\n  docker.io:\n    endpoint: [\"x:5000\"]\n")
	cfg, err = LoadRegistriesConfig(clean)
	if err != nil || cfg.Ignored != "" {
		t.Errorf("clean file: Ignored = %q, err %v; want none", cfg.Ignored, err)
	}
}

func TestLoadRegistriesConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"bad rewrite", "mirrors:\n  docker.io:\n    rewrite:\n      \"(\": x\n",
			`mirror "docker.io": rewrite "(": error parsing regexp`},
		{"bad scheme", "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
			`mirror "docker.io": endpoint "ftp://x": scheme must be http or https`},
		{"bad auth", "configs:\n  h:\n    auth:\n      auth: \"!!\"\n",
			`configs "h": decode auth`},
		{"not yaml", "mirrors: [\n", "load registries config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "registries.yaml", tt.yaml)
			_, err := LoadRegistriesConfig(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestEndpointsFor(t *testing.T) {
	cfg := &RegistriesConfig{Mirrors: map[string]Mirror{
		"docker.io": {
			Endpoints: []string{"http://127.0.0.1:5000", "https://m.example.com/v2/"},
			Rewrites:  map[string]string{"^rancher/(.*)": "mirrored/$1"},
		},
		"*":               {Endpoints: []string{"localhost:6000"}},
		"registry.k8s.io": {Endpoints: []string{"https://registry.k8s.io"}},
		"127.0.0.1:7000":  {Endpoints: []string{"http://127.0.0.1:7000"}},
	}}
	mirrors, err := compileMirrors(cfg)
	if err != nil {
		t.Fatalf("compileMirrors: %v", err)
	}

	tests := []struct {
		name, ref string
		want      []string // endpoint base + " " + repository path (+ " or http")
	}{
		{"mirrors then hub, rewritten at mirrors only", "rancher/pause:3.6", []string{
			"http://127.0.0.1:5000 mirrored/pause",
			"https://m.example.com mirrored/pause",
			"https://registry-1.docker.io rancher/pause",
		}},
		{"rewrite that does not match", "busybox", []string{
			"http://127.0.0.1:5000 library/busybox",
			"https://m.example.com library/busybox",
			"https://registry-1.docker.io library/busybox",
		}},
		{"wildcard mirror, loopback without scheme is https or http", "quay.io/a/b",
			[]string{
				"https://localhost:6000 a/b or http",
				"https://quay.io a/b",
			}},
		{"mirror equal to the default is listed once", "registry.k8s.io/pause", []string{
			"https://registry.k8s.io pause",
		}},
		{"loopback registry named as its own http mirror is plain http",
			"127.0.0.1:7000/a/b", []string{"http://127.0.0.1:7000 a/b"}},
		{"loopback registry is https or http", "127.0.0.1:5000/a/b", []string{
			"https://localhost:6000 a/b or http",
			"https://127.0.0.1:5000 a/b or http",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := mustRef(t, tt.ref)
			var got []string
			for _, ep := range endpointsFor(mirrors, ref) {
				line := ep.String() + " " + ep.repoPath(ref)
				if ep.tryHTTP {
					line += " or http"
				}
				got = append(got, line)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("endpoints =\n%s\nwant\n%s", strings.Join(got, "\n"),
					strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestMirrorDeadEndpointFallsThrough(t *testing.T) {
	origin := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, mirror, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 100)
	dead := registrytest.Unreachable(t)

	c := testClient(t, Options{RetryMax: 1, Config: &RegistriesConfig{
		Mirrors: map[string]Mirror{origin.Host: {
			Endpoints: []string{"http://" + dead, mirror.URL},
		}},
	}})
	ref := mustRef(t, origin.Host+"/a/b:1")

	m, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if m.Descriptor.Digest != img.manifestDigest {
		t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
	}
	if n := mirror.Requests("GET manifest"); n != 1 {
		t.Errorf("mirror served %d manifest GETs, want 1", n)
	}
	if n := origin.Requests("GET manifest"); n != 0 {
		t.Errorf("origin served %d manifest GETs, want 0", n)
	}

	sink := &memSink{}
	if _, err := c.FetchBlob(context.Background(), ref, img.layer, sink); err != nil {
		t.Fatalf("FetchBlob: %v", err)
	}
	if string(sink.buf.Bytes()) != string(img.layerBytes) {
		t.Errorf("blob bytes differ from the pushed layer")
	}
}

func TestMirrorRewrite(t *testing.T) {
	mirror := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, mirror, "mirrored/pause", "3.6", ocispec.MediaTypeImageManifest,
		testSeed, 100)

	c := testClient(t, Options{Config: &RegistriesConfig{
		Mirrors: map[string]Mirror{"docker.io": {
			Endpoints: []string{mirror.URL},
			Rewrites:  map[string]string{"^rancher/(.*)": "mirrored/$1"},
		}},
	}})
	ref := mustRef(t, "rancher/pause:3.6")

	m, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if m.Descriptor.Digest != img.manifestDigest {
		t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
	}
	if ref.String() != "docker.io/rancher/pause:3.6" {
		t.Errorf("reference changed to %s", ref)
	}
}
