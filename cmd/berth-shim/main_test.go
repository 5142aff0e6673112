package main

import (
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	id := strings.Repeat("a", 64)
	cfg, err := parseArgs([]string{"--id", id, "--bundle=/b", "--dir", "/d", "--runtime", "/r", "--runtime-root", "/rr",
		"--log-path", "/l", "--log-max-size", "100", "--log-max-file=3", "--tty", "--stdin=true", "--stdin-once", "--oom-file", "/o"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != id || cfg.Bundle != "/b" || cfg.Dir != "/d" || cfg.Runtime != "/r" || cfg.RuntimeRoot != "/rr" ||
		cfg.LogPath != "/l" || cfg.LogMaxSize != 100 || cfg.LogMaxFile != 3 || !cfg.TTY || !cfg.Stdin || !cfg.StdinOnce || cfg.OOMFile != "/o" {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg, _ := parseArgs(nil); cfg.LogMaxFile != 1 {
		t.Errorf("--log-max-file defaults to %d", cfg.LogMaxFile)
	}
	for _, bad := range [][]string{{"--nope"}, {"--id"}, {"--tty=maybe"}, {"--log-max-size", "x"}, {"--log-max-file", "y"}} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}
