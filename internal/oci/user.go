package oci

import (
	"bufio"
	"bytes"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
)

// maxID is the highest uid or gid a user spec may name (runc's libcontainer/user).
const maxID = 1<<31 - 1

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name string
	uid  int
	gid  int
	home string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     int
	members []string
}

// parsePasswd parses /etc/passwd as runc's libcontainer/user does: name:pw:uid:gid:gecos:home:shell,
// blank lines and lines with a non-numeric uid or gid skipped.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxEtcFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		for len(f) < 7 {
			f = append(f, "")
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
	}
	return out
}

// parseGroup parses /etc/group: name:pw:gid:member,member...
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxEtcFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		for len(f) < 4 {
			f = append(f, "")
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.members = append(g.members, m)
			}
		}
		out = append(out, g)
	}
	return out
}

// UserDB holds an image's /etc/passwd and /etc/group; a nil slice stands for a missing file.
type UserDB struct {
	Passwd, Group []byte
}

// ReadUserDB reads /etc/passwd and /etc/group of a rootfs, resolving both inside it.
func ReadUserDB(rootfs string) (*UserDB, error) {
	rootFD, err := openRoot(rootfs)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootFD)
	db := &UserDB{}
	if db.Passwd, err = readRootFile(rootFD, rootfs, "/etc/passwd"); err != nil {
		return nil, err
	}
	if db.Group, err = readRootFile(rootFD, rootfs, "/etc/group"); err != nil {
		return nil, err
	}
	return db, nil
}

// ResolvedUser is a container's user: what process.user says, plus the home directory.
type ResolvedUser struct {
	User specs.User
	// Home is the user's home directory from /etc/passwd ("/" when the user has no entry).
	Home string
}

// ResolveUser resolves Config.User ("", "uid", "name", "uid:gid", "name:group", ...) and
// HostConfig.GroupAdd against the rootfs's /etc/passwd and /etc/group, as dockerd does with
// runc's libcontainer/user: a numeric user or group needs no entry; a name must have one
// ("unable to find user X: no matching entries in passwd file"). The supplementary groups are
// the primary gid, the groups that list the user as a member (only when the group is not given
// explicitly), then GroupAdd. Errors are of kind errdefs.ErrInvalid.
func ResolveUser(rootfs, user string, groupAdd []string) (*ResolvedUser, error) {
	db, err := ReadUserDB(rootfs)
	if err != nil {
		return nil, err
	}
	return db.Resolve(user, groupAdd)
}

// Resolve is ResolveUser on an already read user database.
func (db *UserDB) Resolve(user string, groupAdd []string) (*ResolvedUser, error) {
	userArg, groupArg, _ := strings.Cut(user, ":")
	uidArg, uidErr := strconv.Atoi(userArg)
	gidArg, gidErr := strconv.Atoi(groupArg)

	var matched *passwdEntry
	for _, u := range parsePasswd(db.Passwd) {
		var hit bool
		switch {
		case userArg == "":
			hit = u.uid == 0
		case uidErr == nil:
			hit = u.uid == uidArg
		default:
			hit = u.name == userArg
		}
		if hit {
			matched = &u
			break
		}
	}
	res := &ResolvedUser{Home: "/"}
	uid, gid := 0, 0
	switch {
	case matched != nil:
		uid, gid = matched.uid, matched.gid
		if matched.home != "" {
			res.Home = matched.home
		}
	case userArg == "":
	case uidErr != nil:
		return nil, errdefs.Invalid("unable to find user %s: no matching entries in passwd file", userArg)
	default:
		if uidArg < 0 || uidArg > maxID {
			return nil, errdefs.Invalid("unable to find user %s: uids and gids must be in range 0-%d", userArg, maxID)
		}
		uid = uidArg
	}

	groups := parseGroup(db.Group)
	var sgids []int
	if groupArg != "" {
		found := false
		for _, g := range groups {
			if (gidErr == nil && g.gid == gidArg) || (gidErr != nil && g.name == groupArg) {
				gid, found = g.gid, true
				break
			}
		}
		if !found {
			if gidErr != nil {
				return nil, errdefs.Invalid("unable to find group %s: no matching entries in group file", groupArg)
			}
			if gidArg < 0 || gidArg > maxID {
				return nil, errdefs.Invalid("unable to find group %s: uids and gids must be in range 0-%d", groupArg, maxID)
			}
			gid = gidArg
		}
	} else if matched != nil {
		for _, g := range groups {
			if slices.Contains(g.members, matched.name) {
				sgids = append(sgids, g.gid)
			}
		}
	}

	for _, ag := range groupAdd {
		found := false
		for _, g := range groups {
			if g.name == ag || strconv.Itoa(g.gid) == ag {
				sgids = append(sgids, g.gid)
				found = true
				break
			}
		}
		if found {
			continue
		}
		n, err := strconv.ParseInt(ag, 10, 64)
		if err != nil {
			return nil, errdefs.Invalid("Unable to find group %s: no matching entries in group file", ag)
		}
		if n < 0 || n > maxID {
			return nil, errdefs.Invalid("Unable to find group %s: uids and gids must be in range 0-%d", ag, maxID)
		}
		sgids = append(sgids, int(n))
	}

	res.User = specs.User{UID: uint32(uid), GID: uint32(gid), AdditionalGids: []uint32{uint32(gid)}}
	for _, g := range sgids {
		if !slices.Contains(res.User.AdditionalGids, uint32(g)) {
			res.User.AdditionalGids = append(res.User.AdditionalGids, uint32(g))
		}
	}
	return res, nil
}
