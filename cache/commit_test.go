package cache

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// groupMessage is the debug record of one index transaction for a group of commits.
const groupMessage = "indexed committed blobs in one transaction"

// recordHandler keeps every log record's message and int attributes, for assertions.
type recordHandler struct {
	mu      sync.Mutex
	records []loggedRecord
}

type loggedRecord struct {
	msg  string
	ints map[string]int64
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{msg: r.Message, ints: map[string]int64{}}
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindInt64 {
			rec.ints[a.Key] = a.Value.Int64()
		}

		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, rec)

	return nil
}

func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// groupSizes returns the number of blobs of each group transaction logged, in order.
func (h *recordHandler) groupSizes() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int64
	for _, r := range h.records {
		if r.msg == groupMessage {
			out = append(out, r.ints["blobs"])
		}
	}

	return out
}

// openRecorded opens a writable cache at dir whose log records h keeps.
func openRecorded(t testing.TB, dir string, h *recordHandler) *Cache {
	t.Helper()
	c, err := Open(dir, Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { c.Close() })

	return c
}

// startCommits commits every blob from its own goroutine, half through Ingest and half
// through PutBlob, and returns a channel that yields each blob's Commit error by index once
// all are done.
func startCommits(t testing.TB, c *Cache, descs []ocispec.Descriptor,
	datas [][]byte) <-chan []error {
	t.Helper()
	out := make(chan []error, 1)
	errs := make([]error, len(descs))
	var wg sync.WaitGroup
	for i := range descs {
		wg.Go(func() {
			if i%2 == 0 {
				errs[i] = c.PutBlob(descs[i], datas[i])
				return
			}
			w, err := c.Ingest(descs[i])
			if err == nil {
				_, err = w.Write(datas[i])
			}
			if err == nil {
				err = w.Commit()
			}
			errs[i] = err
		})
	}
	go func() {
		wg.Wait()
		out <- errs
	}()

	return out
}

// waitGathered waits until n blobs wait in the gathering commit group. The caller holds the
// index lock, so none can be recorded meanwhile.
func waitGathered(t testing.TB, c *Cache, n int) {
	t.Helper()
	for {
		c.commits.mu.Lock()
		got := 0
		if c.commits.next != nil {
			got = len(c.commits.next.blobs)
		}
		c.commits.mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// indexedLocked returns the digests the index records; the caller holds the index lock.
func indexedLocked(t testing.TB, c *Cache) []string {
	t.Helper()
	var out []string
	err := c.txLocked(false, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read index: %v", err)
	}

	return out
}

// TestConcurrentCommitsShareOneTransaction holds the index lock while eight commits run, so
// they gather in one group: each blob must be in blobs/ and absent from the index while it
// waits (rename first, index after), and one transaction must record all eight.
func TestConcurrentCommitsShareOneTransaction(t *testing.T) {
	const n = 8
	rng := newRand(t)
	h := &recordHandler{}
	c := openRecorded(t, t.TempDir(), h)
	descs, datas := make([]ocispec.Descriptor, n), make([][]byte, n)
	for i := range n {
		descs[i], datas[i] = randomBlob(t, rng, 1000+i)
	}
	indexedBefore := len(h.groupSizes())

	c.dbLock.lock()
	done := startCommits(t, c, descs, datas)
	waitGathered(t, c, n)
	for _, desc := range descs {
		if size, ok := c.HasBlob(desc.Digest); !ok || size != desc.Size {
			t.Errorf("blob %s waiting for the index: HasBlob = %d, %v; want %d, true",
				desc.Digest, size, ok, desc.Size)
		}
	}
	if got := indexedLocked(t, c); len(got) != 0 {
		t.Errorf("index records %v before the group's transaction", got)
	}
	c.dbLock.unlock()

	for i, err := range <-done {
		if err != nil {
			t.Errorf("commit %s: %v", descs[i].Digest, err)
		}
	}
	if got := h.groupSizes()[indexedBefore:]; !slices.Equal(got, []int64{n}) {
		t.Errorf("group transactions recorded %v blobs; want one of %d", got, n)
	}
	indexed, err := c.indexedBlobs()
	if err != nil {
		t.Fatal(err)
	}
	var want []BlobInfo
	for _, d := range descs {
		want = append(want, BlobInfo{Digest: d.Digest, Size: d.Size})
	}
	slices.SortFunc(want, compareBlobs)
	if !slices.Equal(indexed, want) {
		t.Errorf("index records %v; want %v", indexed, want)
	}
}

// TestFailedGroupLeavesBlobsForReindex makes the group's index write fail (index.db is a
// directory): every member must fail naming its own blob and the cause, keep its verified
// file in blobs/, and the next Open must index it.
func TestFailedGroupLeavesBlobsForReindex(t *testing.T) {
	const n = 4
	rng := newRand(t)
	dir := t.TempDir()
	c := openCache(t, dir)
	descs, datas := make([]ocispec.Descriptor, n), make([][]byte, n)
	for i := range n {
		descs[i], datas[i] = randomBlob(t, rng, 2000+i)
	}

	db, aside := c.path(dbFile), c.path(dbFile+".aside")
	c.dbLock.lock()
	if err := os.Rename(db, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	done := startCommits(t, c, descs, datas)
	waitGathered(t, c, n)
	c.dbLock.unlock()

	for i, err := range <-done {
		want := "index blob " + descs[i].Digest.String() + ": open index " + db
		if !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), want) {
			t.Errorf("commit %s: %v; want EISDIR and %q", descs[i].Digest, err, want)
		}
		mustReadBlob(t, c, descs[i].Digest, datas[i])
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(aside, db); err != nil {
		t.Fatal(err)
	}
	indexed, err := openCache(t, dir).indexedBlobs()
	if err != nil {
		t.Fatal(err)
	}
	if len(indexed) != n {
		t.Fatalf("index after reopening records %v; want the %d blobs", indexed, n)
	}
	for _, desc := range descs {
		if !slices.Contains(indexed, BlobInfo{Digest: desc.Digest, Size: desc.Size}) {
			t.Errorf("reopening did not index %s (%d bytes)", desc.Digest, desc.Size)
		}
	}
}

// TestWriterKeepsIndexClosedBetweenTransactions checks what lets readers in other processes
// wait at most one transaction: between commits, an open writable cache holds no flock on
// index.db (bbolt holds an exclusive one while a writer has the file open).
func TestWriterKeepsIndexClosedBetweenTransactions(t *testing.T) {
	c := openCache(t, t.TempDir())
	descs, _ := putBlobs(t, c, newRand(t), 10, 20, 30)
	if err := c.PutImage(testImage("example.com/a:1", descs...)); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(c.path(dbFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err != nil {
		t.Fatalf("shared flock of %s while the writer is idle: %v; want it free", dbFile, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
}

// TestCommitCreatesAlgorithmDirectory commits a sha512 blob: Open creates only
// blobs/sha256, so the commit creates blobs/sha512 and indexes the blob.
func TestCommitCreatesAlgorithmDirectory(t *testing.T) {
	c := openCache(t, t.TempDir())
	data := randomBytes(newRand(t), 3000)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer,
		Digest: digest.SHA512.FromBytes(data), Size: int64(len(data))}

	if err := c.PutBlob(desc, data); err != nil {
		t.Fatalf("PutBlob(%s): %v", desc.Digest, err)
	}
	mustReadBlob(t, c, desc.Digest, data)
	indexed, err := c.indexedBlobs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []BlobInfo{{Digest: desc.Digest, Size: 3000}}; !slices.Equal(indexed, want) {
		t.Errorf("index records %v; want %v", indexed, want)
	}
}
