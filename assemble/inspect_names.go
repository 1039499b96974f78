package assemble

import (
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
