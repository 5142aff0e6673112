package runtime

import (
	"fmt"
	"os"
	"time"
)

// Phase timing for profiling the start path: BERTH_RUNTIME_TRACE=1 prints the time since process
// start at each mark to stderr.
var (
	traceOn    = os.Getenv("BERTH_RUNTIME_TRACE") != ""
	traceStart = time.Now()
)

func mark(what string) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "trace %7.2fms %s\n", float64(time.Since(traceStart).Microseconds())/1000, what)
	}
}

// Mark records a phase for BERTH_RUNTIME_TRACE.
func Mark(what string) { mark(what) }
