// Command nnp is the stand-in of registry.k8s.io/e2e-test-images/nonewprivs:1.3
// for `make critest` (hack/critest-images), as kubernetes test/images/nonewprivs:
// installed set-user-ID root, it prints its effective user ID, which is 0 unless
// the container runs with no_new_privs. Static, cgo-free.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
