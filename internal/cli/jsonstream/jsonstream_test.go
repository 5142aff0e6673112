package jsonstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const pullStream = `{"status":"Pulling from library/busybox","id":"latest"}
{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}
{"status":"Downloading","progressDetail":{"current":1024,"total":2048},"progress":"[=====>     ] 1kB/2kB","id":"aaa"}
{"status":"Download complete","progressDetail":{},"id":"aaa"}
{"status":"Pull complete","progressDetail":{},"id":"aaa"}
{"status":"Digest: sha256:abc"}
{"status":"Status: Downloaded newer image for busybox:latest"}
`

// TestDisplayNoTerminal: without a terminal, status lines and no progress bars.
func TestDisplayNoTerminal(t *testing.T) {
	var out bytes.Buffer
	if err := Display(strings.NewReader(pullStream), &out, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := "latest: Pulling from library/busybox\naaa: Pulling fs layer\naaa: Download complete\naaa: Pull complete\n" +
		"Digest: sha256:abc\nStatus: Downloaded newer image for busybox:latest\n"
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}
}

// TestDisplayTerminal: on a terminal each layer keeps its line, updated in place.
func TestDisplayTerminal(t *testing.T) {
	var out bytes.Buffer
	if err := Display(strings.NewReader(pullStream), &out, &Terminal{Width: func() int { return 80 }}, nil); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"latest: Pulling from library/busybox\n\n",
		"\n\x1b[1A\x1b[2K\raaa: Pulling fs layer \r\x1b[1B",
		"\x1b[1A\x1b[2K\raaa: Downloading  1.024kB/2.048kB\r\x1b[1B",
		"Status: Downloaded newer image for busybox:latest\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%q", want, got)
		}
	}
}

func TestDisplayError(t *testing.T) {
	in := `{"stream":"Step 1/2 : FROM x\n"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"}
{"stream":"never shown\n"}
`
	var out bytes.Buffer
	err := Display(strings.NewReader(in), &out, nil, nil)
	var jerr *Error
	if !errors.As(err, &jerr) || jerr.Code != 3 || !strings.Contains(jerr.Message, "returned a non-zero code: 3") {
		t.Errorf("error %v", err)
	}
	if out.String() != "Step 1/2 : FROM x\n" {
		t.Errorf("output %q", out.String())
	}
	err = Display(strings.NewReader(`{"error":"only the old field"}`), &out, nil, nil)
	if !errors.As(err, &jerr) || jerr.Message != "only the old field" {
		t.Errorf("an error without errorDetail: %v", err)
	}
}

func TestDisplayAux(t *testing.T) {
	var got []string
	in := `{"aux":{"ID":"sha256:123"}}` + "\n" + `{"stream":"Successfully built 123\n"}`
	var out bytes.Buffer
	err := Display(strings.NewReader(in), &out, nil, func(m json.RawMessage) { got = append(got, string(m)) })
	if err != nil || len(got) != 1 || got[0] != `{"ID":"sha256:123"}` || out.String() != "Successfully built 123\n" {
		t.Errorf("aux %q, output %q, err %v", got, out.String(), err)
	}
}

func TestProgressBar(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		p     Progress
		width int
		want  string
	}{
		{Progress{Current: 1, Total: 2}, 200, "[=========================>                         ]       1B/2B"},
		{Progress{Current: 1, Total: 2}, 80, "      1B/2B"},
		{Progress{Current: 3, Total: 2}, 80, "      3B"},
		{Progress{Current: 5}, 80, "      5B"},
		{Progress{Current: 5, Units: "items"}, 80, "5 items"},
		{Progress{Current: 1, Total: 4, Units: "layers"}, 80, "1/4 layers"},
		{Progress{Current: 50, Total: 100, Start: 990}, 80, "     50B/100B 10s"},
		{Progress{}, 80, ""},
	} {
		if got := c.p.Bar(c.width, now); got != c.want {
			t.Errorf("%+v width %d: %q, want %q", c.p, c.width, got, c.want)
		}
	}
}
