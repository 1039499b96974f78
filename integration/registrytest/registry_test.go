package registrytest

import (
	"io"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPushAndGetBlob(t *testing.T) {
	r := Start(t, Options{})
	data := []byte("hello registry")
	dgst := r.PushBlob(t, "a/b", data)

	resp, err := http.Get(r.URL + "/v2/a/b/blobs/" + dgst.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if digest.FromBytes(got) != dgst {
		t.Fatalf("blob digest = %s, want %s", digest.FromBytes(got), dgst)
	}
	if n := r.Requests("GET blob"); n != 1 {
		t.Fatalf("GET blob requests = %d, want 1", n)
	}
}
