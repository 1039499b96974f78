// Package integration holds dls's end-to-end tests: the dls binary, built once per test run,
// fetches real images from an in-process distribution registry (registrytest), assembles
// archives, and real consumers (a private containerd, the host's Docker) import and run them.
//
// The package has no code of its own; helpers live in testimage (building and pushing
// images), consumers (containerd and Docker) and registrytest (the registry).
package integration
