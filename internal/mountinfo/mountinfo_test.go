package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/t\011x\134`: "/t\tx\\", `/end\04`: `/end\04`, `a\011b\134c\12`: "a\tb\\c\\12", `/x\999`: `/x\999`} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContaining(t *testing.T) {
	es := []Entry{{Point: "/"}, {Point: "/var"}, {Point: "/var/lib", Optional: "first"}, {Point: "/var/lib", Optional: "shared:4"}, {Point: "/var/library"}}
	for path, want := range map[string]string{"/var/lib/x": "/var/lib", "/var/lib": "/var/lib", "/var/li": "/var", "/etc": "/", "/var/library/a": "/var/library"} {
		if e, ok := Containing(es, path); !ok || e.Point != want {
			t.Errorf("Containing(%q) = %q %v, want %q", path, e.Point, ok, want)
		}
	}
	if e, _ := Containing(es, "/var/lib/x"); e.Optional != "shared:4" {
		t.Errorf("the last mount at a point wins: %q", e.Optional)
	}
	if _, ok := Containing(nil, "/x"); ok {
		t.Error("Containing(nil) found a mount")
	}
	es, err := Read()
	if err != nil || len(es) == 0 {
		t.Fatalf("Read: %d entries, %v", len(es), err)
	}
	if e, ok := Containing(es, "/proc/self"); !ok || e.FSType != "proc" {
		t.Errorf("/proc/self is on %+v", e)
	}
}
