// Package integration holds dls's end-to-end tests: the dls binary, built once per test run,
// fetches real images from an in-process distribution registry (registrytest), assembles
// archives, and real consumers (a private containerd, the host's Docker, podman, skopeo)
// import and run them. Faults (cut connections, throttling, stalls, killed processes) come
// from faultproxy, a TCP proxy and HTTP wrapper of the tests' own.
//
// The package has no code of its own; helpers live in testimage (building and pushing
// images), consumers (containerd, Docker, podman, skopeo), faultproxy (faults) and
// registrytest (the registry). demo and bench are programs: the demo of the README and the
// benchmark suite of make bench.
package integration
