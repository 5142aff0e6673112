package wire

import (
	"testing"
	"time"
)

func TestExitRecord(t *testing.T) {
	e := Exit{Code: 137, At: time.Unix(1795000000, 123456789), OOMKilled: true}
	s := string(AppendExit(nil, e))
	if s != "137 1795000000123456789 1" {
		t.Fatalf("AppendExit = %q", s)
	}
	back, err := ParseExit(s + "\n")
	if err != nil || back.Code != e.Code || !back.At.Equal(e.At) || !back.OOMKilled {
		t.Fatalf("ParseExit(%q) = %+v, %v", s, back, err)
	}
	for _, bad := range []string{"", "1 2", "1 2 3", "x 2 0", "1 y 0", "1 2 0 4"} {
		if _, err := ParseExit(bad); err == nil {
			t.Errorf("ParseExit(%q) accepted", bad)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"berth-runtime: exec: not found\n": "berth-runtime: exec: not found",
		"a\n\n  b  \r\nc":                  "a; b; c",
		"":                                 "",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFields(t *testing.T) {
	got := Fields("  attach 1\t0 1\n")
	if len(got) != 4 || got[0] != "attach" || got[3] != "1" {
		t.Errorf("Fields = %q", got)
	}
}
