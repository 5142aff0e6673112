// Command berth is berth's command line: docker's verbs against the Engine API that berthd
// serves (see internal/cli).
package main

import (
	"os"

	"berth/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
