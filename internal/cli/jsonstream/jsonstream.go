// Package jsonstream renders the JSON message streams the Engine API answers pull, push,
// load, import and build with, the way docker's CLI shows them: on a terminal, one line
// per layer ID updated in place with a progress bar; elsewhere, status lines without
// progress bars. An error message in the stream ends the rendering with that error.
//
// It only renders: it neither opens the streams nor decides what a command prints besides.
package jsonstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/go-units"
)

// Message is one message of a stream.
type Message struct {
	Stream          string           `json:"stream,omitempty"`
	Status          string           `json:"status,omitempty"`
	Progress        *Progress        `json:"progressDetail,omitempty"`
	ProgressMessage string           `json:"progress,omitempty"`
	ID              string           `json:"id,omitempty"`
	From            string           `json:"from,omitempty"`
	Time            int64            `json:"time,omitempty"`
	TimeNano        int64            `json:"timeNano,omitempty"`
	Error           *Error           `json:"errorDetail,omitempty"`
	ErrorMessage    string           `json:"error,omitempty"`
	Aux             *json.RawMessage `json:"aux,omitempty"`
}

// Progress is the progress of one operation of a message.
type Progress struct {
	Current    int64  `json:"current,omitempty"`
	Total      int64  `json:"total,omitempty"`
	Start      int64  `json:"start,omitempty"`
	HideCounts bool   `json:"hidecounts,omitempty"`
	Units      string `json:"units,omitempty"`
}

// Error is an error a stream reports; the command that rendered it fails.
type Error struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Bar renders the progress as docker does: "[====>    ] 1.2MB/3.4MB 2s" (the bar only
// when the terminal is wider than 110 columns, the time left when wider than 50).
func (p *Progress) Bar(width int, now time.Time) string {
	if p.Current <= 0 && p.Total <= 0 {
		return ""
	}
	if p.Total <= 0 {
		if p.Units == "" {
			return fmt.Sprintf("%8v", units.HumanSize(float64(p.Current)))
		}
		return fmt.Sprintf("%d %s", p.Current, p.Units)
	}
	pct := int(float64(p.Current)/float64(p.Total)*100) / 2
	if pct > 50 {
		pct = 50
	}
	var bar, numbers, left string
	if width > 110 {
		bar = fmt.Sprintf("[%s>%s] ", strings.Repeat("=", pct), strings.Repeat(" ", 50-pct))
	}
	switch {
	case p.HideCounts:
	case p.Units == "":
		cur, total := units.HumanSize(float64(p.Current)), units.HumanSize(float64(p.Total))
		numbers = fmt.Sprintf("%8v/%v", cur, total)
		if p.Current > p.Total {
			numbers = fmt.Sprintf("%8v", cur)
		}
	default:
		numbers = fmt.Sprintf("%d/%d %s", p.Current, p.Total, p.Units)
		if p.Current > p.Total {
			numbers = fmt.Sprintf("%d %s", p.Current, p.Units)
		}
	}
	if p.Current > 0 && p.Start > 0 && pct < 50 {
		perEntry := now.Sub(time.Unix(p.Start, 0)) / time.Duration(p.Current)
		l := time.Duration(p.Total-p.Current) * perEntry
		l = l / time.Second * time.Second
		if width > 50 {
			left = " " + l.String()
		}
	}
	return bar + numbers + left
}

// Terminal describes the output when it is a terminal.
type Terminal struct {
	// Width is the terminal's width in columns (200 when unknown).
	Width func() int
}

// Display renders the stream in to out until its end. term is nil when out is not a
// terminal. aux, when set, gets the out-of-band messages (build's image ID, push's
// digest). The first error message in the stream is returned as an *Error.
func Display(in io.Reader, out io.Writer, term *Terminal, aux func(json.RawMessage)) error {
	dec := json.NewDecoder(in)
	ids := map[string]int{}
	for {
		var m Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read the daemon's message stream: %w", err)
		}
		if m.Aux != nil {
			if aux != nil {
				aux(*m.Aux)
			}
			continue
		}
		diff := 0
		if m.ID != "" && (m.Progress != nil || m.ProgressMessage != "") {
			line, ok := ids[m.ID]
			if !ok {
				// One line per ID, in order of appearance; the cursor moves up to it.
				line = len(ids)
				ids[m.ID] = line
				if term != nil {
					fmt.Fprint(out, "\n")
				}
			}
			diff = len(ids) - line
			if term != nil && diff > 0 {
				fmt.Fprintf(out, "\x1b[%dA", diff)
			}
		} else {
			// Anything else ends the block of lines updated in place.
			ids = map[string]int{}
		}
		err := display(&m, out, term)
		if m.ID != "" && term != nil && diff > 0 {
			fmt.Fprintf(out, "\x1b[%dB", diff)
		}
		if err != nil {
			return err
		}
	}
}

// display prints one message.
func display(m *Message, out io.Writer, term *Terminal) error {
	if m.Error != nil {
		return m.Error
	}
	if m.ErrorMessage != "" {
		return &Error{Message: m.ErrorMessage}
	}
	width := 200
	if term != nil && term.Width != nil {
		if w := term.Width(); w > 0 {
			width = w
		}
	}
	now := time.Now()
	bar := ""
	if m.Progress != nil {
		bar = m.Progress.Bar(width, now)
	}
	endl := ""
	if term != nil && m.Stream == "" && m.Progress != nil {
		fmt.Fprint(out, "\x1b[2K\r") // clear the line
		endl = "\r"
	} else if m.Progress != nil && bar != "" {
		return nil // no progress bars when not on a terminal
	}
	if m.TimeNano != 0 {
		fmt.Fprintf(out, "%s ", time.Unix(0, m.TimeNano).Format(time.RFC3339Nano))
	} else if m.Time != 0 {
		fmt.Fprintf(out, "%s ", time.Unix(m.Time, 0).Format(time.RFC3339Nano))
	}
	if m.ID != "" {
		fmt.Fprintf(out, "%s: ", m.ID)
	}
	if m.From != "" {
		fmt.Fprintf(out, "(from %s) ", m.From)
	}
	switch {
	case m.Progress != nil && term != nil:
		fmt.Fprintf(out, "%s %s%s", m.Status, bar, endl)
	case m.ProgressMessage != "":
		fmt.Fprintf(out, "%s %s%s", m.Status, m.ProgressMessage, endl)
	case m.Stream != "":
		fmt.Fprintf(out, "%s%s", m.Stream, endl)
	default:
		fmt.Fprintf(out, "%s%s\n", m.Status, endl)
	}
	return nil
}
