package integration

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/integration/testimage"
)

// mergeResult is one element of what dls merge --json prints.
type mergeResult struct {
	Source string `json:"source"`
	cache.MergeReport
	Error string `json:"error"`
}

// mergeCaches runs dls merge --json of srcs into dst and returns its results and exit
// status.
func mergeCaches(t testing.TB, work, dst string, srcs ...string) ([]mergeResult, dlsResult) {
	t.Helper()

	res := runDLS(t, work, append([]string{"merge", "--cache", dst, "--json"}, srcs...)...)
	var results []mergeResult
	if err := json.Unmarshal([]byte(res.Stdout), &results); err != nil {
		t.Fatalf("decode dls merge --json: %v\n%s", err, res.Stdout)
	}

	return results, res
}

// TestMergeShardsAssembleLikeOneCache fetches each image of a list into its own cache, as
// the shards of a split fetch, merges them, and compares the archive with one from a cache
// that fetched the whole list.
func TestMergeShardsAssembleLikeOneCache(t *testing.T) {
	fx := newFixture(t, smallList, "")
	whole := newFetchedCache(t, fx, "", smallList)
	work := t.TempDir()
	var shards []string
	for i, ref := range smallList {
		name := string(rune('a' + i))
		fc := fetchedCache{fx: fx, Registries: fx.Registries,
			List: writeFile(t, work, "shard-"+name+".txt", ref+"\n")}
		shards = append(shards, filepath.Join(work, "shard-"+name))
		mustDLS(t, work, fc.fetchArgs(shards[i])...)
	}
	merged := filepath.Join(work, "merged")

	t.Run("merge copies each blob once", func(t *testing.T) {
		got, res := mergeCaches(t, work, merged, shards...)
		if res.Code != 0 {
			t.Fatalf("dls merge: exit %d, want 0", res.Code)
		}
		checkReport(t, "dls merge of two shards", got, wantShardMerge(fx, shards))
		if a := assembleDigest(t, work, merged, whole.List); a != whole.Archive {
			t.Errorf("archive from the merged cache is %s, from one fetch %s", a, whole.Archive)
		}
	})

	t.Run("merging again changes nothing", func(t *testing.T) {
		got, res := mergeCaches(t, work, merged, shards...)
		if res.Code != 0 {
			t.Fatalf("dls merge again: exit %d, want 0", res.Code)
		}
		for i, r := range got {
			if len(r.Images) != 0 || len(r.Copied) != 0 || r.Present != len(blobsOf(fx, i)) {
				t.Errorf("merge again of %s: %+v, want only %d present blobs", r.Source, r,
					len(blobsOf(fx, i)))
			}
		}
	})

	t.Run("a cache of another platform widens the image", func(t *testing.T) {
		other := filepath.Join(work, "arm64")
		mustDLS(t, work, "fetch", "--cache", other, "--registries", fx.Registries,
			"--platform", "linux/arm64", "--image", smallList[0])
		got, res := mergeCaches(t, work, merged, other)
		if res.Code != 0 || len(got) != 1 || !slices.Equal(got[0].Widened, smallList[:1]) ||
			len(got[0].Conflicts) != 0 {
			t.Fatalf("dls merge of an arm64 cache: exit %d, %+v; want 0, %s widened",
				res.Code, got, smallList[0])
		}

		ls := decodeLs(t, runDLS(t, work, "ls", "--cache", merged, "--json"))
		i := slices.IndexFunc(ls.Images, func(img lsImage) bool {
			return img.Name == smallList[0]
		})
		want := []string{"linux/amd64", "linux/arm64"} // the index's order
		if i < 0 || !slices.Equal(ls.Images[i].Platforms, want) || !ls.Images[i].Complete {
			t.Errorf("dls ls after the merge: %+v, want %s complete with %v", ls.Images,
				smallList[0], want)
		}
		mustVerify(t, work, merged)
	})

	t.Run("a corrupt blob of a source is named and not copied", func(t *testing.T) {
		bad := filepath.Join(work, "bad")
		run(t, "cp", "-r", shards[0], bad)
		layer := fx.hostImage(t, fx.Images[0]).Layers[1]
		flipByte(t, bad, layer.Digest())
		dst := filepath.Join(work, "from-bad")
		got, res := mergeCaches(t, work, dst, bad)
		if res.Code != 1 || !strings.Contains(res.Stderr, layer.Digest().String()) {
			t.Errorf("dls merge of a corrupt cache: exit %d, want 1 naming %s", res.Code,
				layer.Digest())
		}
		if len(got) != 1 || !slices.Equal(got[0].Corrupt, []digest.Digest{layer.Digest()}) ||
			len(got[0].Copied) != len(blobsOf(fx, 0))-1 {
			t.Errorf("dls merge of a corrupt cache: %+v, want %s corrupt and the other %d "+
				"blobs copied", got, layer.Digest(), len(blobsOf(fx, 0))-1)
		}
		if cachedBlobs(t, dst)[layer.Digest()] {
			t.Errorf("merge copied the corrupt blob %s", layer.Digest())
		}
	})

	t.Run("a cache is not merged into itself", func(t *testing.T) {
		res := runDLS(t, work, "merge", "--cache", merged, merged)
		if res.Code != 1 || !strings.Contains(res.Stderr, "is the cache being merged into") {
			t.Errorf("dls merge of a cache into itself: exit %d, want 1 and why", res.Code)
		}
	})
}

// blobsOf returns the blobs a cache of image i of the fixture holds for the host.
func blobsOf(fx *fixture, i int) []testimage.Blob {
	return fx.Images[i].Index.BlobsFor(testimage.FormatPlatform(fx.Host))
}

// wantShardMerge is the report of merging the shards, one image each, into an empty cache:
// the first shard's blobs are all copied, the next ones' only those not shared.
func wantShardMerge(fx *fixture, shards []string) []mergeResult {
	var out []mergeResult
	seen := map[digest.Digest]bool{}
	for i, shard := range shards {
		r := mergeResult{Source: shard}
		r.Images = []string{fx.Images[i].Name}
		for _, b := range blobsOf(fx, i) {
			if seen[b.Digest()] {
				r.Present++
				continue
			}
			seen[b.Digest()] = true
			r.Copied = append(r.Copied, cache.BlobInfo{Digest: b.Digest(),
				Size: b.Descriptor.Size})
			r.Bytes += b.Descriptor.Size
		}
		slices.SortFunc(r.Copied, func(a, b cache.BlobInfo) int {
			return strings.Compare(a.Digest.String(), b.Digest.String())
		})
		out = append(out, r)
	}

	return out
}
