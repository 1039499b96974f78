package cache

import (
	"context"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestVerifyFindsDefects(t *testing.T) {
	tests := []struct {
		name        string
		damage      func(t *testing.T, f *fixture)
		wantCorrupt func(f *fixture) []Defect
		wantMissing func(f *fixture) []Defect
	}{
		{
			name:        "intact cache",
			damage:      func(t *testing.T, f *fixture) {},
			wantCorrupt: func(f *fixture) []Defect { return nil },
			wantMissing: func(f *fixture) []Defect { return nil },
		},
		{
			name: "one byte flipped in a shared blob",
			damage: func(t *testing.T, f *fixture) {
				flipByte(t, f.c.blobPath(f.sh.Digest), 123)
			},
			wantCorrupt: func(f *fixture) []Defect {
				actual := flippedDigest(f.data[f.sh.Digest], 123)
				return []Defect{{Digest: f.sh.Digest, Expected: 400, Actual: 400,
					Problem: "content hashes to " + actual.String(), Images: []string{nameA, nameB}}}
			},
			wantMissing: func(f *fixture) []Defect { return nil },
		},
		{
			name: "truncated blob",
			damage: func(t *testing.T, f *fixture) {
				overwrite(t, f.c.blobPath(f.a2.Digest), f.data[f.a2.Digest][:150])
			},
			wantCorrupt: func(f *fixture) []Defect {
				return []Defect{{Digest: f.a2.Digest, Expected: 200, Actual: 150,
					Problem: "size 150, expected 200", Images: []string{nameA}}}
			},
			wantMissing: func(f *fixture) []Defect { return nil },
		},
		{
			name: "deleted blob",
			damage: func(t *testing.T, f *fixture) {
				if err := os.Remove(f.c.blobPath(f.b1.Digest)); err != nil {
					t.Fatal(err)
				}
			},
			wantCorrupt: func(f *fixture) []Defect { return nil },
			wantMissing: func(f *fixture) []Defect {
				return []Defect{{Digest: f.b1.Digest, Expected: 300, Actual: -1,
					Problem: "absent", Images: []string{nameB}}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.damage(t, f)

			report, err := f.c.Verify(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(report.Corrupt, tt.wantCorrupt(f)) {
				t.Errorf("Corrupt = %+v\nwant %+v", report.Corrupt, tt.wantCorrupt(f))
			}
			if !reflect.DeepEqual(report.Missing, tt.wantMissing(f)) {
				t.Errorf("Missing = %+v\nwant %+v", report.Missing, tt.wantMissing(f))
			}
			wantOrphans := []BlobInfo{{Digest: f.orph.Digest, Size: 500}}
			if !reflect.DeepEqual(report.Orphaned, wantOrphans) {
				t.Errorf("Orphaned = %v, want %v", report.Orphaned, wantOrphans)
			}
			if !reflect.DeepEqual(report.StalePartials, []string{f.stale}) {
				t.Errorf("StalePartials = %v, want [%s]", report.StalePartials, f.stale)
			}
			if report.OK() != (len(tt.wantCorrupt(f))+len(tt.wantMissing(f)) == 0) {
				t.Errorf("OK() = %v for %+v", report.OK(), report)
			}
		})
	}
}

func TestVerifyRepair(t *testing.T) {
	f := newFixture(t)
	flipByte(t, f.c.blobPath(f.sh.Digest), 0)
	overwrite(t, f.c.blobPath(f.a2.Digest), f.data[f.a2.Digest][:10])

	report, err := f.c.Verify(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	want := sortedDigests([]digest.Digest{f.sh.Digest, f.a2.Digest})
	if !reflect.DeepEqual(report.Repaired, want) {
		t.Fatalf("Repaired = %v, want %v", report.Repaired, want)
	}
	if report.Blobs != 5 || report.Bytes != 100+10+300+400+500 {
		t.Errorf("hashed %d blobs, %d bytes; want 5, 1310", report.Blobs, report.Bytes)
	}

	// The damaged blobs are gone from disk and index: fetching A again replaces them.
	missing := f.c.Missing(f.imageA())
	if len(missing) != 2 {
		t.Fatalf("Missing(A) after repair = %v, want the 2 repaired blobs", missing)
	}
	indexed, _ := f.c.indexedBlobs()
	if len(indexed) != 3 {
		t.Errorf("index holds %d blobs after repair, want 3: %v", len(indexed), indexed)
	}
	for _, desc := range missing {
		if err := f.c.PutBlob(desc, f.data[desc.Digest]); err != nil {
			t.Fatal(err)
		}
	}

	again, err := f.c.Verify(context.Background(), false)
	if err != nil || !again.OK() {
		t.Fatalf("Verify after refetch = %+v, %v; want OK", again, err)
	}
}

func TestVerifyReadOnly(t *testing.T) {
	f := newFixture(t)
	r := openReadOnly(t, f.dir)

	if _, err := r.Verify(context.Background(), true); !errors.Is(err, ErrReadOnly) {
		t.Errorf("repair on a read-only cache: %v; want ErrReadOnly", err)
	}
	report, err := r.Verify(context.Background(), false)
	if err != nil || !report.OK() || report.Blobs != 5 {
		t.Errorf("read-only Verify = %+v, %v; want OK over 5 blobs", report, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Verify(ctx, false); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v; want context.Canceled", err)
	}
}

// flipByte inverts the byte at offset in the file at path.
func flipByte(t testing.TB, path string, offset int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[offset] ^= 0xff
	overwrite(t, path, data)
}

// overwrite replaces the content of a file dls made read-only.
func overwrite(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// flippedDigest is the digest of data with the byte at offset inverted.
func flippedDigest(data []byte, offset int) digest.Digest {
	c := append([]byte(nil), data...)
	c[offset] ^= 0xff

	return digest.FromBytes(c)
}
