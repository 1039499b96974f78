package registry

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []challenge
	}{
		{"docker hub bearer",
			[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`},
			[]challenge{{"bearer", map[string]string{
				"realm": "https://auth.docker.io/token", "service": "registry.docker.io"}}}},
		{"quoted comma and insufficient scope",
			[]string{`Bearer realm="https://a/t", error="insufficient_scope", ` +
				`scope="repository:a/b:pull,push repository:c:pull"`},
			[]challenge{{"bearer", map[string]string{"realm": "https://a/t",
				"error": "insufficient_scope",
				"scope": "repository:a/b:pull,push repository:c:pull"}}}},
		{"two challenges in one header, scheme case ignored",
			[]string{`BASIC realm="r1", bearer realm="https://a/t",service=s`},
			[]challenge{{"basic", map[string]string{"realm": "r1"}},
				{"bearer", map[string]string{"realm": "https://a/t", "service": "s"}}}},
		{"two headers",
			[]string{`Basic realm="registry"`, `Bearer realm="https://a/t"`},
			[]challenge{{"basic", map[string]string{"realm": "registry"}},
				{"bearer", map[string]string{"realm": "https://a/t"}}}},
		{"escaped quote and spaces around equals",
			[]string{`Bearer realm = "a \"b\" c"`},
			[]challenge{{"bearer", map[string]string{"realm": `a "b" c`}}}},
		{"garbage is skipped, not looped on",
			[]string{`@@ Bearer realm="x"`},
			[]challenge{{"bearer", map[string]string{"realm": "x"}}}},
		{"empty", []string{""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseChallenges(tt.values)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseChallenges(%q) = %v, want %v", tt.values, got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 8, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{"-5", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Wed, 21 Oct 2015 07:28:00 GMT extra", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.value), func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got, ok := retryAfter(h, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tt.value, got, ok, tt.want,
					tt.wantOK)
			}
		})
	}
}

func TestBackoffStaysWithinBounds(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for retry := range 40 {
		want := min(lo<<min(retry, 30), hi)
		for range 20 {
			got := backoff(lo, hi, retry, nil)
			if got < want/2 || got > want {
				t.Fatalf("backoff(retry %d) = %s, want within [%s, %s]", retry, got, want/2,
					want)
			}
		}
	}
}

func TestCheckRealm(t *testing.T) {
	public := defaultEndpoint("registry.example.com")
	loop := defaultEndpoint("127.0.0.1:5000")
	tests := []struct {
		name  string
		ep    *endpoint
		realm string
		ok    bool
	}{
		{"https realm of a public registry", public, "https://auth.example.com/token", true},
		{"http realm of an https registry", public, "http://auth.example.com/token", false},
		{"loopback realm of a public registry", public, "https://127.0.0.1/token", false},
		{"private realm of a public registry", public, "https://10.1.2.3/token", false},
		{"link-local realm of a public registry", public, "https://169.254.169.254/", false},
		{"http loopback realm of a loopback registry", loop, "http://127.0.0.1:9/token", true},
		{"no realm", public, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkRealm(tt.ep, tt.realm)
			if (err == nil) != tt.ok {
				t.Errorf("checkRealm(%s, %q) error = %v, want ok=%v", tt.ep, tt.realm, err,
					tt.ok)
			}
		})
	}
}
