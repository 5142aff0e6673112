package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what one HTTP load run did.
type loadResult struct {
	Requests int64   `json:"requests"` // completed with status 200
	Errors   int64   `json:"errors"`   // failed connections and requests, other statuses
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
}

// loader is the HTTP load generator in use: "wrk" or "go".
var loader string

// pickLoader resolves -loader.
func pickLoader() (string, error) {
	switch *flagLoader {
	case "go":
		return "go", nil
	case "wrk":
		if _, err := exec.LookPath(*flagWrk); err != nil {
			return "", fmt.Errorf("-loader wrk: %v (apt-get install -y wrk)", err)
		}
		return "wrk", nil
	case "auto", "":
		if _, err := exec.LookPath(*flagWrk); err == nil {
			return "wrk", nil
		}
		return "go", nil
	}
	return "", fmt.Errorf("-loader: %q is none of wrk, go, auto", *flagLoader)
}

// loaderDesc describes the load generator for the report.
func loaderDesc() string {
	if loader == "wrk" {
		return fmt.Sprintf("%s (-t %d -c %d)", wrkVersion(), wrkThreads(), *flagConns)
	}
	return fmt.Sprintf("the Go load loop (`bench-network load`: %d connections, each a loop of GET, a new connection whenever the server closes)", *flagConns)
}

// wrkVersion is the first words of `wrk -v` (which exits 1): "wrk debian/4.1.0-3+b2 [epoll]".
func wrkVersion() string {
	out, _ := exec.Command(*flagWrk, "-v").CombinedOutput()
	l, _, _ := strings.Cut(string(out), "\n")
	v, _, _ := strings.Cut(l, " Copyright")
	if v = strings.TrimSpace(v); v == "" {
		return "wrk"
	}
	return v
}

func lookIperf() (string, error) { return exec.LookPath(*flagIperf) }

func wrkThreads() int { return max(1, min(*flagConns, runtime.NumCPU())) }

// httpLoad runs the load generator for d against url in e's namespace.
func httpLoad(ctx context.Context, e *eng, url string, d time.Duration) (loadResult, error) {
	if loader == "wrk" {
		return wrkLoad(ctx, e, url, d)
	}
	return goLoad(ctx, e, url, d, *flagConns, 0)
}

// goLoad runs `<this program> load` in e's namespace: c connections for d, at most max
// requests (0: no limit).
func goLoad(ctx context.Context, e *eng, url string, d time.Duration, c, max int) (loadResult, error) {
	self, err := os.Executable()
	if err != nil {
		return loadResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := e.hostCmd(ctx, self, "load", "-url", url, "-d", d.String(), "-c", strconv.Itoa(c), "-max", strconv.Itoa(max))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return loadResult{}, fmt.Errorf("load %s: %v", url, err)
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("load %s: output %q: %v", url, out, err)
	}
	return r, nil
}

var (
	wrkRPS    = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkTotal  = regexp.MustCompile(`(?m)^\s*([0-9]+) requests in ([0-9.]+)(us|ms|s|m)`)
	wrkSocket = regexp.MustCompile(`Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: ([0-9]+)`)
)

// wrkLoad runs wrk in e's namespace for d (whole seconds) against url.
func wrkLoad(ctx context.Context, e *eng, url string, d time.Duration) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := e.hostCmd(ctx, *flagWrk, "-t", strconv.Itoa(wrkThreads()), "-c", strconv.Itoa(*flagConns),
		"-d", fmt.Sprintf("%ds", secs), url)
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk %s: %v: %s", url, err, strings.TrimSpace(out))
	}
	var r loadResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk %s: no Requests/sec in %q", url, out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
		v, _ := strconv.ParseFloat(m[2], 64)
		r.Seconds = v * map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m[3]]
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
		r.Requests -= n
	}
	return r, nil
}

// loadMain is `network load`: -c connections, each a loop of GET -url until -d has passed
// (or -max requests in all are done), on keep-alive connections that are dialled again
// whenever the server closes one (busybox httpd closes every one: HTTP/1.0). It prints a
// loadResult as JSON; requests cut by the end of -d are not counted.
func loadMain(args []string) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	target := fs.String("url", "", "http://HOST:PORT/PATH")
	d := fs.Duration("d", 5*time.Second, "duration")
	c := fs.Int("c", 8, "connections")
	maxReq := fs.Int64("max", 0, "stop after this many requests (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		fmt.Fprintf(os.Stderr, "load: -url %q: want http://HOST:PORT/PATH\n", *target)
		return 2
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: berth-bench\r\nAccept: */*\r\n\r\n")

	var ok, failed, started atomic.Int64
	start := time.Now()
	end := start.Add(*d)
	var wg sync.WaitGroup
	for i := 0; i < *c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for time.Now().Before(end) {
				if *maxReq > 0 && started.Add(1) > *maxReq {
					return
				}
				if conn == nil {
					cn, err := net.DialTimeout("tcp", addr, time.Until(end))
					if err != nil {
						if time.Now().Before(end) {
							failed.Add(1)
							time.Sleep(10 * time.Millisecond)
						}
						continue
					}
					cn.SetDeadline(end)
					conn, br = cn, bufio.NewReaderSize(cn, 16<<10)
				}
				status, closing, err := roundTrip(conn, br, req)
				if err != nil {
					if time.Now().Before(end) {
						failed.Add(1)
					}
					conn.Close()
					conn = nil
					continue
				}
				if status == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
				if closing {
					// Wait for the server's FIN so that it, not us, holds TIME_WAIT.
					io.Copy(io.Discard, br)
					conn.Close()
					conn = nil
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := loadResult{Requests: ok.Load(), Errors: failed.Load(), Seconds: secs, RPS: float64(ok.Load()) / secs}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// roundTrip sends one request on conn and reads the whole response; closing says the server
// closes the connection after it.
func roundTrip(conn net.Conn, br *bufio.Reader, req []byte) (status int, closing bool, err error) {
	if _, err := conn.Write(req); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	return resp.StatusCode, resp.Close, nil
}
