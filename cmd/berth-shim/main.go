// Command berth-shim stays beside one container for its whole life: berthd starts it (never a
// person), and it starts the container through the OCI runtime, keeps its stdio, writes its
// json-file or CRI log, reaps it and records its exit (docs/daemon-design.md, "The shim contract").
// It is a thin shell over internal/shim/server and, like it, imports only light packages: no
// fmt, flag, net or reflect-heavy code, so that an idle shim stays around 2 MB of RSS.
//
//	berth-shim --id ID --bundle DIR --dir DIR --runtime PATH --runtime-root DIR
//	           [--log-path FILE [--log-format json-file|cri] --log-max-size BYTES --log-max-file N]
//	           [--tty] [--stdin [--stdin-once]] [--oom-file FILE]
package main

import (
	"errors"
	"os"
	"strconv"

	"berth/internal/shim/server"
)

func main() {
	cfg, err := parseArgs(os.Args[1:])
	if err != nil {
		os.Stderr.Write([]byte("berth-shim: " + err.Error() + "\n"))
		os.Exit(2)
	}
	os.Exit(server.Run(cfg))
}

// parseArgs reads "--name value", "--name=value" and boolean "--name" / "--name=true|false"
// (the flag package would pull in fmt and reflect).
func parseArgs(args []string) (server.Config, error) {
	cfg := server.Config{LogMaxFile: 1}
	strs := map[string]*string{
		"--id": &cfg.ID, "--bundle": &cfg.Bundle, "--dir": &cfg.Dir, "--runtime": &cfg.Runtime,
		"--runtime-root": &cfg.RuntimeRoot, "--log-path": &cfg.LogPath, "--oom-file": &cfg.OOMFile,
		"--log-format": &cfg.LogFormat,
	}
	bools := map[string]*bool{"--tty": &cfg.TTY, "--stdin": &cfg.Stdin, "--stdin-once": &cfg.StdinOnce}
	var maxSize, maxFile string
	strs["--log-max-size"], strs["--log-max-file"] = &maxSize, &maxFile
	for i := 0; i < len(args); i++ {
		name, val, hasVal := cut(args[i], '=')
		if p, ok := bools[name]; ok {
			switch {
			case !hasVal || val == "true" || val == "1":
				*p = true
			case val == "false" || val == "0":
				*p = false
			default:
				return cfg, errors.New("invalid value for " + name + ": " + strconv.Quote(val))
			}
			continue
		}
		p, ok := strs[name]
		if !ok {
			return cfg, errors.New("unknown flag " + strconv.Quote(args[i]))
		}
		if !hasVal {
			if i+1 >= len(args) {
				return cfg, errors.New(name + " needs a value")
			}
			i++
			val = args[i]
		}
		*p = val
	}
	var err error
	if maxSize != "" {
		if cfg.LogMaxSize, err = strconv.ParseInt(maxSize, 10, 64); err != nil {
			return cfg, errors.New("invalid --log-max-size " + strconv.Quote(maxSize))
		}
	}
	if maxFile != "" {
		if cfg.LogMaxFile, err = strconv.Atoi(maxFile); err != nil {
			return cfg, errors.New("invalid --log-max-file " + strconv.Quote(maxFile))
		}
	}
	return cfg, nil
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
