package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// blobSize is the layer size of the blob tests: several read chunks, still fast.
const blobSize = 200_000

// blobCase is a registry with one image whose layer blob the test fetches.
type blobCase struct {
	reg    *registrytest.Registry
	faults *blobFaults
	img    testImage
	ref    string
}

func startBlobCase(t testing.TB, f fault) *blobCase {
	t.Helper()

	bf := &blobFaults{}
	reg := registrytest.Start(t, registrytest.Options{Wrap: bf.wrap})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, blobSize)
	bf.fault = f
	return &blobCase{reg: reg, faults: bf, img: img, ref: reg.Host + "/a/b:1"}
}

// fetch runs FetchBlob for the layer into sink.
func (bc *blobCase) fetch(t testing.TB, c *Client, sink *memSink) (BlobStats, error) {
	t.Helper()

	return c.FetchBlob(context.Background(), mustRef(t, bc.ref), bc.img.layer, sink)
}

// checkBlob asserts the sink holds exactly the layer.
func (bc *blobCase) checkBlob(t testing.TB, sink *memSink) {
	t.Helper()

	if got := digest.FromBytes(sink.buf.Bytes()); got != bc.img.layer.Digest {
		t.Fatalf("sink digest = %s (%d bytes), want %s (%d bytes)", got, sink.buf.Len(),
			bc.img.layer.Digest, blobSize)
	}
}

func rangeFrom(off int64) string { return fmt.Sprintf("bytes=%d-%d", off, blobSize-1) }

func TestFetchBlobResumes(t *testing.T) {
	tests := []struct {
		name       string
		fault      fault
		held       int64 // bytes in the sink before the call
		wantRanges []string
		wantStats  BlobStats
		wantServed int64 // -1: unknown (a refused body was partly buffered by the kernel)
		wantResets int
	}{
		{name: "whole blob", wantRanges: []string{""},
			wantStats: BlobStats{Downloaded: blobSize}, wantServed: blobSize},
		{name: "continue a partial blob with a closed range", held: 50_000,
			wantRanges: []string{rangeFrom(50_000)},
			wantStats:  BlobStats{Downloaded: blobSize - 50_000, Resumed: 50_000},
			wantServed: blobSize - 50_000},
		{name: "body cut once", fault: cutAt(map[int]int64{0: 70_000}),
			wantRanges: []string{"", rangeFrom(70_000)},
			wantStats:  BlobStats{Downloaded: blobSize, Retries: 1}, wantServed: blobSize},
		{name: "body cut twice, also when resuming", held: 10_000,
			fault:      cutAt(map[int]int64{0: 60_000, 1: 30_000}),
			wantRanges: []string{rangeFrom(10_000), rangeFrom(70_000), rangeFrom(100_000)},
			wantStats:  BlobStats{Downloaded: blobSize - 10_000, Resumed: 10_000, Retries: 2},
			wantServed: blobSize - 10_000},
		{name: "server ignores range", held: 50_000, fault: ignoreRange,
			wantRanges: []string{rangeFrom(50_000)},
			wantStats:  BlobStats{Downloaded: blobSize}, wantServed: blobSize, wantResets: 1},
		{name: "content-range starts elsewhere", held: 50_000, fault: shiftRange(10),
			wantRanges: []string{rangeFrom(50_000), ""},
			wantStats:  BlobStats{Downloaded: blobSize, Retries: 1},
			wantServed: -1, wantResets: 1},
		{name: "range not satisfiable", held: 50_000,
			fault:      answerFirst(1, http.StatusRequestedRangeNotSatisfiable, nil),
			wantRanges: []string{rangeFrom(50_000), ""},
			wantStats:  BlobStats{Downloaded: blobSize, Retries: 1},
			wantServed: blobSize, wantResets: 1},
		{name: "503 twice then served", fault: answerFirst(2, 503, nil),
			wantRanges: []string{"", "", ""},
			wantStats:  BlobStats{Downloaded: blobSize, Retries: 2}, wantServed: blobSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bc := startBlobCase(t, tt.fault)
			c := testClient(t, Options{})
			sink := sinkHolding(bc.img.layerBytes[:tt.held])

			st, err := bc.fetch(t, c, sink)
			if err != nil {
				t.Fatalf("FetchBlob: %v", err)
			}
			bc.checkBlob(t, sink)

			st.Waited = 0 // backoff with jitter; the Retry-After tests check waits
			if st != tt.wantStats {
				t.Errorf("stats = %+v, want %+v", st, tt.wantStats)
			}
			if got := bc.faults.rangesSeen(); strings.Join(got, ",") !=
				strings.Join(tt.wantRanges, ",") {
				t.Errorf("Range headers = %q, want %q", got, tt.wantRanges)
			}
			if got := bc.faults.bytesServed(); tt.wantServed >= 0 && got != tt.wantServed {
				t.Errorf("bytes served = %d, want %d", got, tt.wantServed)
			}
			if sink.resets != tt.wantResets {
				t.Errorf("sink resets = %d, want %d", sink.resets, tt.wantResets)
			}
		})
	}
}

// ignoreRange drops the Range header, so the registry answers 200 with the whole blob.
func ignoreRange(_ int, _ *http.ResponseWriter, r *http.Request) bool {
	r.Header.Del("Range")
	return false
}

// shiftRange makes the first ranged GET ask for a range starting at start instead, so
// the 206 answer's Content-Range does not start where the client asked.
func shiftRange(start int64) fault {
	return func(i int, _ *http.ResponseWriter, r *http.Request) bool {
		if i == 0 && r.Header.Get("Range") != "" {
			r.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, blobSize-1))
		}
		return false
	}
}

func TestFetchBlobStalledBodyResumes(t *testing.T) {
	bc := startBlobCase(t, func(i int, w *http.ResponseWriter, r *http.Request) bool {
		if i == 0 {
			*w = &stallWriter{ResponseWriter: *w, left: 80_000, done: r.Context().Done()}
		}
		return false
	})
	c := testClient(t, Options{IdleTimeout: 200 * time.Millisecond})
	sink := &memSink{}

	st, err := bc.fetch(t, c, sink)
	if err != nil {
		t.Fatalf("FetchBlob: %v", err)
	}
	bc.checkBlob(t, sink)
	if st.Retries != 1 || st.Downloaded != blobSize {
		t.Errorf("stats = %+v, want 1 retry and %d bytes", st, blobSize)
	}
	if got := bc.faults.rangesSeen(); len(got) != 2 || got[1] != rangeFrom(80_000) {
		t.Errorf("Range headers = %q, want a second GET from 80000", got)
	}
}

func TestFetchBlobRetryAfter(t *testing.T) {
	t.Run("seconds are honoured", func(t *testing.T) {
		bc := startBlobCase(t, answerFirst(1, http.StatusTooManyRequests,
			http.Header{"Retry-After": {"1"}}))
		c := testClient(t, Options{RetryWaitMax: 2 * time.Second})
		sink := &memSink{}

		st, err := bc.fetch(t, c, sink)
		if err != nil {
			t.Fatalf("FetchBlob: %v", err)
		}
		bc.checkBlob(t, sink)
		if st.Retries != 1 || st.Waited != time.Second {
			t.Errorf("stats = %+v, want 1 retry after exactly 1s", st)
		}
	})

	t.Run("an HTTP date is honoured", func(t *testing.T) {
		at := time.Now().Add(time.Second).UTC().Format(http.TimeFormat)
		bc := startBlobCase(t, answerFirst(1, http.StatusServiceUnavailable,
			http.Header{"Retry-After": {at}}))
		c := testClient(t, Options{RetryWaitMax: 3 * time.Second})
		sink := &memSink{}

		st, err := bc.fetch(t, c, sink)
		if err != nil {
			t.Fatalf("FetchBlob: %v", err)
		}
		bc.checkBlob(t, sink)
		if st.Retries != 1 || st.Waited > 2*time.Second {
			t.Errorf("stats = %+v, want 1 retry after at most 2s", st)
		}
	})

	t.Run("longer than RetryWaitMax fails at once", func(t *testing.T) {
		bc := startBlobCase(t, answerFirst(1, http.StatusTooManyRequests,
			http.Header{"Retry-After": {"3600"}}))
		c := testClient(t, Options{RetryWaitMax: 2 * time.Second})

		_, err := bc.fetch(t, c, &memSink{})
		if !errors.Is(err, ErrRateLimited) {
			t.Fatalf("error = %v, want ErrRateLimited", err)
		}
		want := "429 Too Many Requests asks to wait 1h0m0s (Retry-After), longer than the 2s"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
		if n := len(bc.faults.rangesSeen()); n != 1 {
			t.Errorf("blob GETs = %d, want 1", n)
		}
	})

	t.Run("429 past the retry budget", func(t *testing.T) {
		bc := startBlobCase(t, answerFirst(100, http.StatusTooManyRequests, nil))
		c := testClient(t, Options{RetryMax: 2})

		_, err := bc.fetch(t, c, &memSink{})
		if !errors.Is(err, ErrRateLimited) {
			t.Fatalf("error = %v, want ErrRateLimited", err)
		}
		want := "rate limited: 429 Too Many Requests: TOOMANYREQUESTS: slow down " +
			"(after 3 attempts)"
		if !strings.HasSuffix(err.Error(), want) {
			t.Errorf("error = %q, want it to end with %q", err, want)
		}
	})
}

func TestFetchBlobRefusesWrongSize(t *testing.T) {
	bc := startBlobCase(t, nil)
	c := testClient(t, Options{})
	desc := bc.img.layer
	desc.Size = blobSize - 1
	sink := &memSink{}

	_, err := c.FetchBlob(context.Background(), mustRef(t, bc.ref), desc, sink)
	want := "server announces 200000 bytes (Content-Length), expected 199999"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
	if sink.buf.Len() != 0 {
		t.Errorf("sink holds %d bytes, want 0", sink.buf.Len())
	}
}

func TestFetchBlobNotFound(t *testing.T) {
	bc := startBlobCase(t, nil)
	c := testClient(t, Options{})
	desc := bc.img.layer
	desc.Digest = digest.FromString("missing")

	_, err := c.FetchBlob(context.Background(), mustRef(t, bc.ref), desc, &memSink{})
	want := "fetch blob " + desc.Digest.String() + " of " + bc.ref + " from " + bc.reg.URL +
		": not found"
	if !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestFetchBlobAlreadyComplete(t *testing.T) {
	bc := startBlobCase(t, nil)
	c := testClient(t, Options{})
	sink := sinkHolding(bc.img.layerBytes)

	st, err := bc.fetch(t, c, sink)
	if err != nil {
		t.Fatalf("FetchBlob: %v", err)
	}
	if st != (BlobStats{Resumed: blobSize}) || len(bc.faults.rangesSeen()) != 0 {
		t.Errorf("stats = %+v after %d GETs, want nothing fetched", st,
			len(bc.faults.rangesSeen()))
	}
}
