package assemble

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// matchNames pairs index.json's images with manifest.json's items: every tagged name
// index.json gives must be a RepoTag of an item describing the same content, and every
// RepoTag must be named in index.json. Items no index.json image claims (all of them in an
// archive without index.json) are added to the report as images of their own.
func (in *inspection) matchNames() {
	if in.files["manifest.json"] == nil {
		return
	}

	itemOfTag := map[string]int{}
	for k, it := range in.items {
		for _, tag := range it.repoTags {
			if name, err := normaliseName(tag); err == nil {
				itemOfTag[name] = k
			}
		}
	}

	claimed := make([]bool, len(in.items))
	named := map[string]bool{}
	for i := range in.report.Images {
		name, err := normaliseName(in.report.Images[i].Name)
		if err != nil {
			continue
		}

		named[name] = true
		k, ok := itemOfTag[name]
		if ok {
			claimed[k] = true
			in.matchItem(i, name, k)
			continue
		}

		if isTagOnly(name) {
			in.defect("index.json", "names %s but no manifest.json item tags it; docker "+
				"load leaves it untagged", name)
		}
	}

	in.checkTagsNamed(named)
	in.addUnclaimedItems(claimed)
}

// matchItem records item k as image i's, and reports when it describes other content.
func (in *inspection) matchItem(i int, name string, k int) {
	it := in.items[k]
	in.report.Images[i].RepoTags = it.repoTags
	if it.config != "" && !in.configsOf[i][it.config] {
		in.defect(it.where, "tags %s with config %s, which index.json's %s does not reach; "+
			"docker load and containerd would load different images", name, it.config, name)
	}
}

// checkTagsNamed reports RepoTags index.json does not name, when the archive has an OCI
// layout (without one, containerd reads manifest.json and names images from it).
func (in *inspection) checkTagsNamed(named map[string]bool) {
	if in.files["oci-layout"] == nil || in.files["index.json"] == nil {
		return
	}

	for _, it := range in.items {
		for _, tag := range it.repoTags {
			name, err := normaliseName(tag)
			if err == nil && !named[name] {
				in.defect(it.where, "tags %s but index.json does not name it; containerd "+
					"and k3s import it under no such name", tag)
			}
		}
	}
}

// addUnclaimedItems adds an image for each item no index.json image claimed by tag or by
// config (an untagged item of a digest-only image is claimed by its config).
func (in *inspection) addUnclaimedItems(claimed []bool) {
	for k, it := range in.items {
		if claimed[k] || in.configReached(it.config) {
			continue
		}

		img := ImageReport{RepoTags: it.repoTags, Platforms: []PlatformReport{it.platform}}
		if len(it.repoTags) > 0 {
			img.Name = it.repoTags[0]
		}
		in.report.Images = append(in.report.Images, img)
	}
}

// configReached reports whether an index.json image reaches config.
func (in *inspection) configReached(config digest.Digest) bool {
	for _, configs := range in.configsOf {
		if config != "" && configs[config] {
			return true
		}
	}

	return false
}

// isTagOnly reports whether name is a name:tag reference without a digest.
func isTagOnly(name string) bool {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return false
	}

	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	return tagged && !digested
}

// legacyLayerFile is the file name of a layer in docker save's layout before version 25,
// under a directory named by the layer's v1 ID.
const legacyLayerFile = "layer.tar"

// checkRepositories checks the legacy repositories file, {"repo": {"tag": "<top layer ID>"}},
// against manifest.json: every entry must be a tag of a manifest.json item and give that
// item's top layer, and every tag of an item with layers must have an entry, as docker save
// and dls write it. Only docker load of an archive without manifest.json (the format of
// Docker before 1.10) reads the file, so a disagreement misleads that loader and tools that
// parse the file, not the loaders dls targets; it is still a defect because it shows the
// archive's names were not written together. The file is not checked when manifest.json
// is absent or unreadable, which is reported already.
func (in *inspection) checkRepositories() {
	f := in.files["repositories"]
	if f == nil || !in.manifestRead {
		return
	}

	var repos map[string]map[string]string
	err := json.Unmarshal(f.data, &repos)
	if err != nil || f.data == nil || repos == nil {
		in.defect("repositories", "is not a JSON object of repository → tag → top layer "+
			"ID of at most %d bytes; docker load without manifest.json fails on it",
			maxDocBytes)
		return
	}

	listed := in.checkRepositoriesEntries(repos)
	for _, it := range in.items {
		if it.topLayer == "" {
			continue // an image without layers has no entry: there is no top layer to give
		}

		for _, tag := range it.repoTags {
			name, err := normaliseName(tag)
			if err == nil && isTagOnly(name) && !listed[name] {
				in.defect(it.where, "tags %s but repositories has no entry for it; docker "+
					"load without manifest.json leaves it untagged", tag)
			}
		}
	}
}

// checkRepositoriesEntries checks each entry of repos against the manifest.json item that
// tags it and returns the normalised names of the entries. Repositories and tags are
// visited sorted so defects come in a stable order.
func (in *inspection) checkRepositoriesEntries(repos map[string]map[string]string,
) map[string]bool {
	itemOfTag := map[string]int{}
	for k, it := range in.items {
		for _, tag := range it.repoTags {
			if name, err := normaliseName(tag); err == nil {
				itemOfTag[name] = k
			}
		}
	}

	listed := map[string]bool{}
	for _, repo := range slices.Sorted(maps.Keys(repos)) {
		for _, tag := range slices.Sorted(maps.Keys(repos[repo])) {
			where := fmt.Sprintf("repositories[%q][%q]", repo, tag)
			name, ok := in.repositoriesName(where, repo, tag)
			if !ok {
				continue
			}

			listed[name] = true
			k, ok := itemOfTag[name]
			if !ok {
				in.defect(where, "tags %s, which no manifest.json item tags; docker load "+
					"without manifest.json would tag content the archive does not name", name)
				continue
			}

			in.checkTopLayerID(where, name, in.items[k], repos[repo][tag])
		}
	}

	return listed
}

// repositoriesName is the normalised name:tag of a repositories entry, reporting a key that
// is not a repository name without tag or digest, or a tag that is not one.
func (in *inspection) repositoriesName(where, repo, tag string) (string, bool) {
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil || !reference.IsNameOnly(named) {
		in.defect(where, "%q is not a repository name without tag or digest; docker load "+
			"without manifest.json rejects the archive", repo)
		return "", false
	}

	withTag, err := reference.WithTag(named, tag)
	if err != nil {
		in.defect(where, "%q is not a tag (%v); docker load without manifest.json rejects "+
			"the archive", tag, err)
		return "", false
	}

	return withTag.String(), true
}

// checkTopLayerID reports an entry whose ID is not the top layer of it, the item tagging
// name. Two spellings name that layer: the hex of its diff_id, which docker save since 25
// and dls write, and a v1 ID, the directory holding its layer.tar, which docker save wrote
// before 25 and containers/image (podman save, skopeo copy to docker-archive:) writes.
func (in *inspection) checkTopLayerID(where, name string, it dockerItem, id string) {
	if it.topLayer == "" {
		in.defect(where, "gives top layer %q for %s, but %s lists no layers", id, name,
			it.where)
		return
	}

	if it.topDiffID != "" && id == it.topDiffID.Encoded() {
		return
	}

	if in.isV1Top(id, it.layers) {
		return
	}

	in.defect(where, "gives top layer %q for %s, but the top layer of %s is %q, diff_id "+
		"%s; docker load without manifest.json would tag other content", id, name, it.where,
		it.topLayer, it.topDiffID)
}

// legacyConfigFile is the file name of a v1 image's JSON, beside its layer.tar.
const legacyConfigFile = "json"

// isV1Top reports whether id is the v1 ID of the top of layers, manifest.json's Layers
// paths. Its <id>/layer.tar must be the top path or a symbolic link to it: docker before 25
// writes the layer there, containers/image writes it as <diff_id>.tar and links
// <id>/layer.tar to it. A repeated layer is one file but a v1 ID per position, so when
// <id>/json is in the archive its parent chain must go down the layers one v1 ID each,
// ending at the base: a lower ID, whose layer.tar may link to the same file, would name a
// shorter image. Without <id>/json only the top can be matched.
func (in *inspection) isV1Top(id string, layers []string) bool {
	_, described := in.v1Parent(id)
	for i := len(layers) - 1; i >= 0; i-- {
		if id == "" || path.Clean(id) != id {
			return false
		}

		chain := in.linkChain(path.Join(id, legacyLayerFile))
		if !slices.Contains(chain, path.Clean(layers[i])) {
			return false
		}

		if !described {
			return true
		}

		parent, ok := in.v1Parent(id)
		if !ok || (parent == "") != (i == 0) {
			return false
		}
		id = parent
	}

	return true
}

// v1Parent returns the parent v1 ID that <id>/json gives, "" for a base layer, and whether
// that file is in the archive as a JSON object.
func (in *inspection) v1Parent(id string) (string, bool) {
	f := in.fileAt(path.Join(id, legacyConfigFile))
	if f == nil || f.data == nil {
		return "", false
	}

	var v1 struct {
		Parent string `json:"parent"`
	}
	err := json.Unmarshal(f.data, &v1)
	if err != nil {
		return "", false
	}

	return v1.Parent, true
}
