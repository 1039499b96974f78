package main

import "github.com/alecthomas/kong"

// helpTexts holds the longer help strings, referenced from struct tags as ${name}, so that
// the command structs stay within the line width.
var helpTexts = kong.Vars{
	"log_level_help": "Log level: debug, info, warn, error.",
	"ls_help": "List cached images; with LISTs, fail unless every listed image is ready " +
		"to assemble.",
	"verify_help": "Re-hash every cached blob; report defects and the images they affect.",
	"prune_help": "Remove images not listed, blobs no image needs and stale partial " +
		"downloads.",
	"inspect_help": "List the images, platforms and sizes in an archive (dls or docker " +
		"save) and verify it: every blob hashed, every reference present, names consistent.",
	"assemble_output_help": "Archive to write: .tar, .tar.gz/.tgz or .tar.zst/.tzst " +
		"(compression follows the name); - writes a plain tar to standard output.",
	"assemble_lists_help": "Image lists naming the images to write; none means every " +
		"cached image.",
	"fetch_lists_help": "Image lists: one reference per line, # comments; - reads " +
		"standard input.",
	"platform_help": "Platform to fetch, os/arch[/variant] or windows(os.version)/amd64 " +
		"(repeatable); never the host's by default.",
	"registries_help": "A k3s/RKE2 registries.yaml with mirrors, rewrites, credentials " +
		"and TLS settings.",
	"per_registry_help": "Most requests at once to one registry host; 0 means no limit.",
	"max_wait_help":     "Longest wait before a retry; a longer Retry-After fails at once.",
	"idle_timeout_help": "Cut and resume a download that receives nothing for this long.",
	"keep_attestations_help": "Also fetch the contents (SBOMs, provenance) of attestation " +
		"manifests; the manifests themselves are always kept.",
	"assemble_platform_help": "Write only these platforms of each image (repeatable); " +
		"none means every platform it was fetched for.",
	"rehash_help": "Hash every blob while writing it; by default a blob file untouched " +
		"since fetch verified it is copied as it is (a copied cache is always hashed).",
	"inspect_file_help": "Archive to inspect: .tar, .tar.gz or .tar.zst.",
	"max_size_help": "Split the output into archives of at most this size, e.g. 4GiB " +
		"(each complete and loadable on its own; an image never spans two).",
}
