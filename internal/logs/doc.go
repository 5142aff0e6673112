// Package logs owns reading a container's json-file logs, the files
// berth-shim writes in Docker's json-file format: one JSON object per line,
//
//	{"log":"<text>","stream":"stdout"|"stderr","time":"<RFC3339Nano UTC>"}\n
//
// each written with one write(2), rotated by the writer (path.N-2 to
// path.N-1, ..., path to path.1, then a new path; or path removed and
// created anew when one file is kept).
//
// Read gives the messages of a log in order: all of them or the last N
// (read backwards from the end, across rotated files, without reading whole
// files), between two times, of the chosen streams, and, when following,
// those written afterwards, across rotations, until the writer is done.
//
// The package only reads: it never writes, rotates or removes a log (the
// shim does), and it knows nothing of containers, the API's framing or
// timestamps in the output (the daemon does). Encode writes the format for
// tests and tools.
package logs
