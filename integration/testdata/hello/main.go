// Command hello is the entrypoint of dls's runnable test images. It prints one fixed line
// naming the platform it was built for, so a test that runs an imported image can tell that
// the right platform's layers were unpacked. It reads no arguments, environment or host
// name, so its output is the same wherever it runs.
package main

import (
	"fmt"
	"runtime"
)

// greeting must equal testimage.HelloGreeting.
const greeting = "hello from a dls test image"

func main() {
	fmt.Printf("%s (%s/%s)\n", greeting, runtime.GOOS, runtime.GOARCH)
}
