package opts

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidateEnv checks an -e value; "KEY" alone takes KEY's value from the environment of
// berth when it is set there (and stays "KEY", unset, otherwise).
func ValidateEnv(v string) (string, error) {
	k, _, has := strings.Cut(v, "=")
	if k == "" {
		return "", fmt.Errorf("invalid environment variable: %s", v)
	}
	if has {
		return v, nil
	}
	if ev, ok := os.LookupEnv(k); ok {
		return k + "=" + ev, nil
	}
	return v, nil
}

// ValidateLabel checks a -l value: a name without whitespace, "=" and a value optional.
func ValidateLabel(v string) (string, error) {
	key, _, _ := strings.Cut(v, "=")
	key = strings.TrimLeft(key, whiteSpaces)
	if key == "" {
		return "", fmt.Errorf("invalid label '%s': empty name", v)
	}
	if strings.ContainsAny(key, whiteSpaces) {
		return "", fmt.Errorf("label '%s' contains whitespaces", key)
	}
	return v, nil
}

// ValidateIPAddress checks an IP address and returns it in canonical form.
func ValidateIPAddress(v string) (string, error) {
	if ip := net.ParseIP(strings.TrimSpace(v)); ip != nil {
		return ip.String(), nil
	}
	return "", fmt.Errorf("IP address is not correctly formatted: %s", v)
}

var (
	alphaRegexp  = regexp.MustCompile(`[a-zA-Z]`)
	domainRegexp = regexp.MustCompile(`^(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$`)
)

// ValidateDNSSearch checks a --dns-search domain ("." is the empty domain).
func ValidateDNSSearch(v string) (string, error) {
	if v = strings.Trim(v, " "); v == "." {
		return v, nil
	}
	if alphaRegexp.FindString(v) == "" {
		return "", fmt.Errorf("%s is not a valid domain", v)
	}
	if ns := domainRegexp.FindSubmatch([]byte(v)); len(ns) > 0 && len(ns[1]) < 255 {
		return string(ns[1]), nil
	}
	return "", fmt.Errorf("%s is not a valid domain", v)
}

// ValidateExtraHost checks an --add-host value ("host:ip", "host=ip", ip may be
// "host-gateway" or a bracketed IPv6 address) and returns it as "host:ip".
func ValidateExtraHost(v string) (string, error) {
	k, ip, ok := strings.Cut(v, "=")
	if !ok {
		k, ip, ok = strings.Cut(v, ":")
	}
	if !ok || k == "" || strings.Contains(k, ":") {
		return "", fmt.Errorf("bad format for add-host: %q", v)
	}
	if ip != "host-gateway" {
		if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") {
			ip = ip[1 : len(ip)-1]
		}
		if _, err := ValidateIPAddress(ip); err != nil {
			return "", fmt.Errorf("invalid IP address in add-host: %q", ip)
		}
	}
	return k + ":" + ip, nil
}

// ValidateSysctl checks that a --sysctl is namespaced (docker's allow list).
func ValidateSysctl(v string) (string, error) {
	allowed := map[string]bool{
		"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
		"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
	}
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return "", fmt.Errorf("sysctl '%s' is not allowed", v)
	}
	if allowed[k] || strings.HasPrefix(k, "net.") || strings.HasPrefix(k, "fs.mqueue.") {
		return v, nil
	}
	return "", fmt.Errorf("sysctl '%s' is not allowed", v)
}

// ValidateLink checks a --link value ("name" or "name:alias").
func ValidateLink(v string) (string, error) {
	if v == "" {
		return "", errors.New("empty string specified for links")
	}
	if len(strings.SplitN(v, ":", 3)) > 2 {
		return "", errors.New("bad format for links: " + v)
	}
	return v, nil
}

// ValidateAttach checks an -a value: stdin, stdout or stderr (any case).
func ValidateAttach(v string) (string, error) {
	s := strings.ToLower(v)
	switch s {
	case "stdin", "stdout", "stderr":
		return s, nil
	}
	return v, errors.New("valid streams are STDIN, STDOUT and STDERR")
}

var deviceCgroupRuleRegexp = regexp.MustCompile(`^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$`)

// ValidateDeviceCgroupRule checks a --device-cgroup-rule ("c 1:3 rwm").
func ValidateDeviceCgroupRule(v string) (string, error) {
	if deviceCgroupRuleRegexp.MatchString(v) {
		return v, nil
	}
	return v, fmt.Errorf("invalid device cgroup format '%s'", v)
}

// validDeviceMode reports whether mode is made of r, w and m, each at most once.
func validDeviceMode(mode string) bool {
	if mode == "" {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range mode {
		if c != 'r' && c != 'w' && c != 'm' || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// validateDevicePath checks a --device value ("[host-path:]container-path[:mode]").
func validateDevicePath(v string) (string, error) {
	if strings.Count(v, ":") > 2 {
		return v, fmt.Errorf("bad format for path: %s", v)
	}
	split := strings.SplitN(v, ":", 3)
	if split[0] == "" {
		return v, fmt.Errorf("bad format for path: %s", v)
	}
	var ctr string
	switch len(split) {
	case 1:
		ctr = split[0]
		v = path.Clean(ctr)
	case 2:
		if validDeviceMode(split[1]) {
			ctr = split[0]
			v = path.Clean(ctr) + ":" + split[1]
		} else {
			ctr = split[1]
			v = split[0] + ":" + path.Clean(ctr)
		}
	case 3:
		ctr = split[1]
		if !validDeviceMode(split[2]) {
			return v, fmt.Errorf("bad mode specified: %s", split[2])
		}
	}
	if !path.IsAbs(ctr) {
		return v, fmt.Errorf("%s is not an absolute path", ctr)
	}
	return v, nil
}

// isCDIName reports whether a --device value is a CDI device name
// ("vendor.com/class=name").
func isCDIName(s string) bool {
	kind, name, ok := strings.Cut(s, "=")
	if !ok || name == "" || strings.HasPrefix(s, "/") {
		return false
	}
	vendor, class, ok := strings.Cut(kind, "/")
	return ok && vendor != "" && class != "" && !strings.Contains(class, "/")
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// BadKeyError is a line of an env or label file without a usable key.
type BadKeyError struct{ msg string }

func (e BadKeyError) Error() string { return "poorly formatted environment: " + e.msg }

// parseKVFile reads "KEY=VALUE" lines of a file, skipping blank lines and comments; a line
// with a key alone is passed to lookup, when set, for its value.
func parseKVFile(name string, lookup func(string) (string, bool)) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []string
	for n := 1; sc.Scan(); n++ {
		b := sc.Bytes()
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("env file %s contains invalid utf8 bytes at line %d: %v", name, n, b)
		}
		if n == 1 {
			b = bytes.TrimPrefix(b, utf8BOM)
		}
		line := strings.TrimLeftFunc(string(b), unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, has := strings.Cut(line, "=")
		key = strings.TrimLeft(key, whiteSpaces)
		if strings.ContainsAny(key, whiteSpaces) {
			return nil, BadKeyError{fmt.Sprintf("variable '%s' contains whitespaces", key)}
		}
		if key == "" {
			return nil, BadKeyError{fmt.Sprintf("no variable name on line '%s'", line)}
		}
		if has {
			lines = append(lines, key+"="+val)
			continue
		}
		if lookup != nil {
			if v, ok := lookup(line); ok {
				lines = append(lines, strings.TrimSpace(key)+"="+v)
				continue
			}
		}
		lines = append(lines, line)
	}
	return lines, sc.Err()
}

// ReadEnv is the environment of --env-file files followed by the -e values.
func ReadEnv(files, overrides []string) ([]string, error) {
	var out []string
	for _, f := range files {
		lines, err := parseKVFile(f, os.LookupEnv)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	return append(out, overrides...), nil
}

// ReadLabels are the labels of --label-file files followed by the -l values.
func ReadLabels(files, overrides []string) ([]string, error) {
	var out []string
	for _, f := range files {
		lines, err := parseKVFile(f, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	return append(out, overrides...), nil
}

// NetworkAttachment is one --network value in its long form
// ("name=n,alias=a,ip=1.2.3.4,driver-opt=k=v,mac-address=...").
type NetworkAttachment struct {
	Target       string
	Aliases      []string
	DriverOpts   map[string]string
	Links        []string
	IPv4Address  string
	IPv6Address  string
	LinkLocalIPs []string
	MacAddress   string
	GwPriority   int
}

// Networks is the repeatable --network flag.
type Networks struct{ values []NetworkAttachment }

var longNetworkSyntax = regexp.MustCompile(`\w+=\w+(,\w+=\w+)*`)

// Set parses one --network value.
func (n *Networks) Set(value string) error {
	var na NetworkAttachment
	if !longNetworkSyntax.MatchString(value) {
		na.Target = value
		n.values = append(n.values, na)
		return nil
	}
	fields, err := csv.NewReader(strings.NewReader(value)).Read()
	if err != nil {
		return err
	}
	na.Aliases = []string{}
	for _, field := range fields {
		key, val, ok := strings.Cut(field, "=")
		if !ok || key == "" {
			return fmt.Errorf("invalid field %s", field)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "name":
			na.Target = val
		case "alias":
			na.Aliases = append(na.Aliases, val)
		case "ip":
			na.IPv4Address = val
		case "ip6":
			na.IPv6Address = val
		case "mac-address":
			na.MacAddress = val
		case "link-local-ip":
			na.LinkLocalIPs = append(na.LinkLocalIPs, val)
		case "driver-opt":
			k, v, ok := strings.Cut(val, "=")
			if !ok || k == "" {
				return errors.New("invalid key value pair format in driver options")
			}
			if na.DriverOpts == nil {
				na.DriverOpts = map[string]string{}
			}
			na.DriverOpts[strings.TrimSpace(k)] = strings.TrimSpace(v)
		case "gw-priority":
			var p int
			if _, err := fmt.Sscanf(val, "%d", &p); err != nil {
				return fmt.Errorf("invalid gw-priority: %s", val)
			}
			na.GwPriority = p
		default:
			return fmt.Errorf("invalid field key %s", key)
		}
	}
	if na.Target == "" {
		return errors.New("network name/id is not specified")
	}
	n.values = append(n.values, na)
	return nil
}

// String is empty (no default shown).
func (n *Networks) String() string { return "" }

// Type is "network".
func (n *Networks) Type() string { return "network" }

// Values are the attachments.
func (n *Networks) Values() []NetworkAttachment { return n.values }

// NetworkMode is the first network named, "default" when none.
func (n *Networks) NetworkMode() string {
	if len(n.values) > 0 {
		return n.values[0].Target
	}
	return "default"
}
