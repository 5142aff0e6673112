package cgroups

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseBlkioV1(t *testing.T) {
	got, err := parseBlkioV1("8:0 Read 100\n8:0 Write 200\n8:0 Sync 0\n8:0 Total 300\nTotal 300\n", "f")
	if err != nil {
		t.Fatal(err)
	}
	want := []BlkioEntry{{8, 0, "Read", 100}, {8, 0, "Write", 200}, {8, 0, "Sync", 0}, {8, 0, "Total", 300}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	got, err = parseBlkioV1("254:0 42\n", "f")
	if err != nil || !reflect.DeepEqual(got, []BlkioEntry{{254, 0, "", 42}}) {
		t.Errorf("single value: %v %v", got, err)
	}
	if _, err := parseBlkioV1("8-0 Read 1\n", "f"); err == nil {
		t.Error("want error")
	}
}

func TestParseIoStatV2(t *testing.T) {
	b, err := parseIoStatV2("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n7:0 rbytes=1 wbytes=0 rios=1 wios=0\n", "io.stat")
	if err != nil {
		t.Fatal(err)
	}
	want := []BlkioEntry{{254, 0, "Read", 4096}, {254, 0, "Write", 8192}, {7, 0, "Read", 1}, {7, 0, "Write", 0}}
	if !reflect.DeepEqual(b.IoServiceBytesRecursive, want) {
		t.Errorf("bytes: %v", b.IoServiceBytesRecursive)
	}
	if len(b.IoServicedRecursive) != 4 || b.IoServicedRecursive[1].Value != 2 {
		t.Errorf("ios: %v", b.IoServicedRecursive)
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0-2,5,7-8\n")
	if err != nil || !reflect.DeepEqual(got, []uint16{0, 1, 2, 5, 7, 8}) {
		t.Errorf("got %v %v", got, err)
	}
	if got, err := parseCPUList("\n"); err != nil || got != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	if _, err := parseCPUList("3-1"); err == nil {
		t.Error("want error for a reversed range")
	}
}

func TestHugePageSizes(t *testing.T) {
	got := hugePageSizesFromNames([]string{"hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "other"})
	if !reflect.DeepEqual(got, []string{"1GB", "2MB", "64KB"}) {
		t.Errorf("got %v", got)
	}
	if err := checkHugePageSize("2MB", got); err != nil {
		t.Error(err)
	}
	if err := checkHugePageSize("2M", got); err == nil {
		t.Error("want error")
	}
}

func TestParseCpuacctUsageAll(t *testing.T) {
	k, u, err := parseCpuacctUsageAll("cpu user system\n0 100 10\n1 200 20\n", "f")
	if err != nil || !reflect.DeepEqual(k, []uint64{10, 20}) || !reflect.DeepEqual(u, []uint64{100, 200}) {
		t.Errorf("got %v %v %v", k, u, err)
	}
}

func TestParseKeyValues(t *testing.T) {
	kv, err := parseKeyValues("cache 10\nrss 20\nhierarchical_memory_limit max\n", "memory.stat")
	if err != nil || kv["cache"] != 10 || kv["hierarchical_memory_limit"] != ^uint64(0) {
		t.Errorf("got %v %v", kv, err)
	}
	if _, err := parseKeyValues("a b c\n", "x"); err == nil {
		t.Error("want error")
	}
}

// The JSON must use runc's `events --stats` field names.
func TestStatsJSON(t *testing.T) {
	st := newStats()
	st.CPU.Usage.Total = 5
	st.CPU.Throttling.ThrottledPeriods = 2
	st.Pids = Pids{Current: 1, Limit: 10}
	st.Memory.Usage = MemoryEntry{Limit: 100, Usage: 50}
	st.Blkio.IoServiceBytesRecursive = []BlkioEntry{{8, 0, "Read", 1}}
	st.Hugetlb["2MB"] = Hugetlb{Usage: 1}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"cpu":{"usage":{"total":5,"kernel":0,"user":0},"throttling":{"throttledPeriods":2}}`,
		`"pids":{"current":1,"limit":10}`, `"usage":{"limit":100,"usage":50,"failcnt":0}`,
		`"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":1}]`, `"hugetlb":{"2MB":{"usage":1,"failcnt":0}}`,
		`"cpuset":{"cpu_exclusive":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s\nmissing %s", b, want)
		}
	}
}
