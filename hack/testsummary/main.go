// Command testsummary reads `go test -json` on stdin, prints the tests'
// output as `go test -v` would, then the failed tests and a final line
//
//	N passed, N failed, N skipped
//
// counting every test function including subtests (a parent whose subtest
// failed counts as failed too). A package that fails without a failing test
// (build error, panic in TestMain, timeout) counts as one failed test named
// after the package. Exit status 1 if anything failed, or if no test ran.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	var passed, failed, skipped int
	var failures []string
	pkgTestFailed := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not JSON: go's own messages (e.g. build errors before -json starts).
			fmt.Println(string(line))
			continue
		}
		switch e.Action {
		case "output":
			fmt.Print(e.Output)
		case "build-output":
			fmt.Print(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" && !pkgTestFailed[e.Package] {
					failed++
					failures = append(failures, e.Package+" (package failed: build error, panic or timeout)")
				}
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "fail":
				failed++
				pkgTestFailed[e.Package] = true
				failures = append(failures, fmt.Sprintf("%s %s (%.2fs)", e.Package, e.Test, e.Elapsed))
			case "skip":
				skipped++
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Println("testsummary:", err)
		failed++
	}
	fmt.Println()
	if len(failures) > 0 {
		fmt.Println("FAILED:")
		for _, f := range failures {
			fmt.Println("  " + f)
		}
	}
	if passed+failed+skipped == 0 {
		fmt.Println("testsummary: no tests ran")
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || passed+failed+skipped == 0 {
		os.Exit(1)
	}
}
