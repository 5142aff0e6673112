package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"berth/test/bench/harness"
)

// The paths measured in every engine.
const (
	published = "published" // from the engine's namespace to 127.0.0.1:<host port>
	direct    = "direct"    // from the engine's namespace to CONTAINER-IP:<port>
	c2c       = "c2c"       // from a second container on the same bridge to CONTAINER-IP:<port>
)

// sample is one path of one engine and what it measured: requests/s or Gbit/s per round.
type sample struct {
	e    *eng
	path string
	vals []float64
	// round has the measured rounds' values by round, for the ratios of paths measured in
	// the same round (close in time, under the same load from elsewhere).
	round map[int]float64
	errs  int64 // HTTP: failed requests in the measured rounds
	// syn: HTTP: SYNs the clients in the engine's namespace sent again during the measured
	// rounds (TcpExt TCPSynRetrans); each is a connection that waited 1 s or more.
	syn int64
}

// add records v, measured in round i.
func (s *sample) add(i int, v float64) {
	s.vals = append(s.vals, v)
	if s.round == nil {
		s.round = map[int]float64{}
	}
	s.round[i] = v
}

// samples are every path of every engine, by engine name and path.
var httpSamples, tcpSamples = map[string]map[string]*sample{}, map[string]map[string]*sample{}

func sampleOf(m map[string]map[string]*sample, e *eng, path string) *sample {
	if m[e.Name] == nil {
		m[e.Name] = map[string]*sample{}
	}
	if m[e.Name][path] == nil {
		m[e.Name][path] = &sample{e: e, path: path}
	}
	return m[e.Name][path]
}

// rounds runs fn once per sample, -warmup + -n times, in an order that rotates per round;
// round is the round's number (negative in the warm-up), measured whether it counts.
func rounds(what string, samples []*sample, fn func(s *sample, round int, measured bool)) {
	total := *flagWarmup + *flagN
	for i := 0; i < total && !bench.Stopping(); i++ {
		for _, s := range harness.Rotated(samples, i) {
			if !s.e.Dropped && !bench.Stopping() {
				fn(s, i-*flagWarmup, i >= *flagWarmup)
			}
		}
		if bench.Stopping() {
			return
		}
		logf("%s: round %d/%d", what, i+1, total)
	}
}

// measureHTTP measures requests/s through the published port and directly, per engine.
func measureHTTP(ctx context.Context, engines []*eng) {
	var samples []*sample
	for _, e := range engines {
		samples = append(samples, sampleOf(httpSamples, e, published), sampleOf(httpSamples, e, direct))
	}
	rounds("http", samples, func(s *sample, round int, measured bool) {
		d := *flagHTTPD
		if !measured {
			d = min(d, 2*time.Second)
		}
		url := s.e.publishedURL()
		if s.path == direct {
			url = s.e.directURL()
		}
		syn0 := s.e.synRetrans()
		r, err := httpLoad(ctx, s.e, url, d)
		if syn1 := s.e.synRetrans(); measured && syn0 >= 0 && syn1 >= syn0 {
			s.syn += syn1 - syn0
		}
		if err == nil && r.Requests == 0 {
			err = fmt.Errorf("GET %s: no request completed in %v (%d errors)", url, d, r.Errors)
		}
		if !s.e.Check(err, "http "+s.path) || !measured {
			return
		}
		s.add(round, r.RPS)
		s.errs += r.Errors
	})
}

// measureTCP measures iperf3's throughput through the published port, directly, and from
// container to container, per engine.
func measureTCP(ctx context.Context, engines []*eng) {
	var samples []*sample
	for _, e := range engines {
		samples = append(samples, sampleOf(tcpSamples, e, published), sampleOf(tcpSamples, e, direct), sampleOf(tcpSamples, e, c2c))
	}
	rounds("iperf3", samples, func(s *sample, round int, measured bool) {
		secs := tcpSeconds()
		if !measured {
			secs = min(secs, 2)
		}
		bps, err := iperf(ctx, s.e, s.path, secs)
		if s.e.Check(err, "iperf3 "+s.path) && measured {
			s.add(round, bps/1e9)
		}
	})
}

func tcpSeconds() int { return max(1, int(flagTCPD.Round(time.Second)/time.Second)) }

// iperf runs an iperf3 client for secs seconds on path and returns the bits/s the server
// received. A server still busy with a previous test is tried again.
func iperf(ctx context.Context, e *eng, path string, secs int) (float64, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		if try > 0 {
			time.Sleep(time.Second)
		}
		bps, busy, err := iperfOnce(ctx, e, path, secs)
		if err == nil || !busy {
			return bps, err
		}
		lastErr = err
	}
	return 0, lastErr
}

func iperfOnce(ctx context.Context, e *eng, path string, secs int) (bps float64, busy bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	args := []string{"-t", strconv.Itoa(secs), "-J"}
	var cmd *exec.Cmd
	switch path {
	case published:
		cmd = e.hostCmd(ctx, *flagIperf, append([]string{"-c", "127.0.0.1", "-p", strconv.Itoa(iperfHostPort)}, args...)...)
	case direct:
		cmd = e.hostCmd(ctx, *flagIperf, append([]string{"-c", e.iperfIP, "-p", strconv.Itoa(iperfPort)}, args...)...)
	case c2c:
		cmd = e.Command(ctx, append([]string{"exec", e.client, "iperf3", "-c", e.iperfIP, "-p", strconv.Itoa(iperfPort)}, args...)...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	jerr := json.Unmarshal(out.Bytes(), &r)
	switch {
	case jerr == nil && r.Error != "":
		return 0, strings.Contains(r.Error, "busy"), fmt.Errorf("iperf3 %s: %s", path, r.Error)
	case runErr != nil:
		return 0, false, fmt.Errorf("iperf3 %s: %v: %s", path, runErr, strings.TrimSpace(errb.String()+" "+out.String()))
	case jerr != nil:
		return 0, false, fmt.Errorf("iperf3 %s: output: %v", path, jerr)
	case r.End.SumReceived.BitsPerSecond <= 0:
		return 0, false, fmt.Errorf("iperf3 %s: no throughput in its report", path)
	}
	return r.End.SumReceived.BitsPerSecond, false, nil
}
