package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// Message is one record of a json-file log.
type Message struct {
	Stream string    // "stdout" or "stderr"
	Time   time.Time // when the writer received it
	// Line is the text, with its trailing newline if it had one. Read
	// gives each message a slice of its own.
	Line []byte
	// Partial: the text does not end a line (no trailing newline): a
	// piece of a line longer than the writer's limit (16 KiB), or the last
	// bytes of a stream that did not end with a newline.
	Partial bool
}

// record is a message as stored.
type record struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

var errBadRecord = errors.New("not a json-file log record")

// decode parses one line of a log (without its newline).
func decode(line []byte) (Message, error) {
	var r record
	if err := json.Unmarshal(line, &r); err != nil {
		return Message{}, err
	}
	if r.Stream == "" || r.Time.IsZero() {
		return Message{}, errBadRecord
	}
	return Message{
		Stream:  r.Stream,
		Time:    r.Time,
		Line:    []byte(r.Log),
		Partial: !bytes.HasSuffix([]byte(r.Log), []byte("\n")),
	}, nil
}

// Encode appends m to dst as one line of a json-file log, as the writer
// does (its newline included). Partial is not stored: it is whether Line
// ends with a newline.
func Encode(dst []byte, m Message) []byte {
	b, err := json.Marshal(record{Log: string(m.Line), Stream: m.Stream, Time: m.Time.UTC()})
	if err != nil {
		panic(err) // a string, a string and a time always marshal
	}
	dst = append(dst, b...)
	return append(dst, '\n')
}
