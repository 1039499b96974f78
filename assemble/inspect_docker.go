package assemble

import (
	"encoding/json"
	"fmt"
	"path"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// maxLinkHops bounds the symbolic links followed from a manifest.json path.
const maxLinkHops = 8

// dockerItem is one manifest.json item as Inspect read it.
type dockerItem struct {
	where    string
	repoTags []string
	// config is the digest of the Config file's content; empty when it is absent.
	config   digest.Digest
	platform PlatformReport
	// layers are the Layers paths, as manifest.json gives them.
	layers []string
	// topLayer is the last Layers path, as manifest.json gives it; empty without layers.
	topLayer string
	// topDiffID is the config's last diff_id; empty when the config is unreadable.
	topDiffID digest.Digest
}

// checkManifestJSON checks manifest.json and every item in it.
func (in *inspection) checkManifestJSON() {
	f := in.files["manifest.json"]
	if f == nil {
		in.defect("manifest.json", "absent; docker load and RKE2's runtime image lookup "+
			"read only manifest.json")
		return
	}

	if f.size > maxManifestJSON {
		in.defect("manifest.json", "is %d bytes, over the %d podman reads", f.size,
			maxManifestJSON)
	}

	var items []manifestItem
	err := json.Unmarshal(f.data, &items)
	if err != nil || f.data == nil {
		in.defect("manifest.json", "is not a JSON array of at most %d bytes; even "+
			"containerd's OCI import fails on it", maxMetadataBytes)
		return
	}

	in.manifestRead = true
	if items == nil {
		in.defect("manifest.json", "is null; docker load refuses it")
	}

	for i, item := range items {
		in.items = append(in.items, in.checkItem(fmt.Sprintf("manifest.json[%d]", i), item))
	}
}

// checkItem checks one manifest.json item: its tags, its Config and Layers paths, and its
// layer count against the config's diff_ids.
func (in *inspection) checkItem(where string, item manifestItem) dockerItem {
	it := dockerItem{where: where, repoTags: item.RepoTags, layers: item.Layers}
	for _, tag := range item.RepoTags {
		in.checkRepoTag(where, tag)
	}

	cfgFile := in.resolve(where, item.Config)
	p := PlatformReport{Layers: len(item.Layers), Complete: cfgFile != nil}
	if cfgFile == nil {
		in.defect(where, "Config %q is not in the archive; docker load and podman fail",
			item.Config)
	} else {
		it.config, p.Config, p.Size = cfgFile.digest, cfgFile.digest, cfgFile.size
	}

	cfg, ok := in.readConfig(where, cfgFile, len(item.Layers))
	if ok {
		p.Platform = platformString(&cfg.Platform)
	}

	if n := len(item.Layers); n > 0 {
		it.topLayer = item.Layers[n-1]
	}

	if n := len(cfg.RootFS.DiffIDs); ok && n > 0 {
		it.topDiffID = cfg.RootFS.DiffIDs[n-1]
	}

	diffIDOf := map[string]digest.Digest{}
	for i, layer := range item.Layers {
		f := in.resolve(where, layer)
		if f == nil {
			in.defect(where, "layer %q is not in the archive; docker load and podman fail",
				layer)
			p.Complete = false
			continue
		}

		p.Size += f.size
		if !ok || i >= len(cfg.RootFS.DiffIDs) {
			continue
		}

		diffID := cfg.RootFS.DiffIDs[i]
		if seen, dup := diffIDOf[layer]; dup && seen != diffID {
			in.defect(where, "layer %q stands for two diff_ids; podman refuses that", layer)
		}
		diffIDOf[layer] = diffID
	}

	it.platform = p
	return it
}

// checkRepoTag reports a RepoTags entry that is not a plain name:tag.
func (in *inspection) checkRepoTag(where, tag string) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		in.defect(where, "RepoTags entry %q does not parse (%v); docker load, podman and "+
			"RKE2 reject the archive", tag, err)
		return
	}

	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	if !tagged || digested {
		in.defect(where, "RepoTags entry %q is not name:tag; docker load, podman and RKE2 "+
			"reject the archive", tag)
	}
}

// resolve finds the regular file a manifest.json path names, following links as docker
// load does. A path that is not clean is reported: containerd's Docker-mode import looks
// such paths up without cleaning them.
func (in *inspection) resolve(where, name string) *archiveFile {
	clean := path.Clean(name)
	if clean != name {
		in.defect(where, "path %q is not clean; containerd's manifest.json import does not "+
			"find it", name)
	}

	return in.fileAt(clean)
}

// fileAt is the regular file at name, a cleaned name, following links; nil when there is
// none.
func (in *inspection) fileAt(name string) *archiveFile {
	chain := in.linkChain(name)
	return in.files[chain[len(chain)-1]]
}

// linkChain is name followed by the names its links lead to, in order, ending at a regular
// file, at a name that is neither file nor link, or after maxLinkHops links.
func (in *inspection) linkChain(name string) []string {
	chain := []string{name}
	for range maxLinkHops {
		if in.files[name] != nil {
			break
		}

		target, ok := in.links[name]
		if !ok {
			break
		}

		name = target
		chain = append(chain, name)
	}

	return chain
}

// normaliseName is the fully normalised form of a reference, as containerd names images.
func normaliseName(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", err
	}

	return named.String(), nil
}
