#!/usr/bin/env python3
"""Build deliberately unsafe berth-runtime variants, one per CVE protection, to check that the
CVE tests fail against them. Run it on a COPY of the repository, never on the work tree:

    cp -a /work/main /tmp/cvecheck
    python3 test/integration/cve/testdata/mutants.py /tmp/cvecheck /tmp/cvevariants [variant...]
    BERTH_RUNTIME=/tmp/cvevariants/noseal/berth-runtime go test -run 5736 ./test/integration/cve/

Each variant is a textual patch; when the runtime's code moves, an assertion names the patch
that no longer applies. The copy's files are restored after each build.
"""
import subprocess, sys, os, shutil
R = sys.argv[1]
OUT = sys.argv[2]
variants = {
 'noseal': [('cmd/berth-runtime/main.go','if needsSeal(os.Args[1:]) {','if false && needsSeal(os.Args[1:]) {')],
 'proc-follow-symlinks': [('internal/runtime/compile.go','noSymlinks := typ == "proc" || typ == "sysfs"','noSymlinks := false')],
 'no-in-root': [('internal/runtime/compile.go','resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS','resolveInRoot = unix.RESOLVE_NO_MAGICLINKS')],
 'exec-cap-inheritable': [('cmd/berth-runtime/exec.go','cp.Permitted = appendUnique(cp.Permitted, name)','cp.Permitted = appendUnique(cp.Permitted, name)\n\t\t\t\t\t\tcp.Inheritable = appendUnique(cp.Inheritable, name)')],
 'no-cwd-check': [('internal/runtime/compile_process.go','	c.b.Special("check that "+cwd+" is inside the container", child.KindCheckCwd)\n','')],
 'container-devnull': [('internal/runtime/compile.go','''		_, null := b.SysFD("open /dev/null", unix.SYS_OPENAT, child.AtFDCWD, b.Str("/dev/null"), unix.O_PATH|unix.O_CLOEXEC, 0)
		b.Special("check /dev/null is the null device", child.KindCheckCharDev, uintptr(null), uintptr(unix.Mkdev(1, 3)))''','''		_, null := c.openInRoot("open /dev/null", c.rootFD, "dev/null", unix.O_PATH, resolveInRoot)''')],
 'console-follow': [('internal/runtime/compile.go','''	_, t := b.SysFD("open /dev/console", unix.SYS_OPENAT, uintptr(dev), b.Str("console"), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	b.Special("refuse a symlink at /dev/console", child.KindFailIfMode, uintptr(t), unix.S_IFLNK)''','''	_, t := c.openInRoot("open /dev/console", c.rootFD, "dev/console", unix.O_PATH, resolveInRoot)''')],
 'sysctl-no-xdev': [('internal/runtime/compile_init.go','unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS|unix.RESOLVE_NO_XDEV','unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS')],
}
for name in sys.argv[3:] or sorted(variants):
    saved = {}
    try:
        for f, old, new in variants[name]:
            p = os.path.join(R, f)
            if p not in saved:
                saved[p] = open(p).read()
            s = open(p).read()
            assert old in s, (name, f, old)
            open(p, 'w').write(s.replace(old, new))
        out = os.path.join(OUT, name)
        os.makedirs(out, exist_ok=True)
        if os.path.exists(out+'/berth-runtime'): os.remove(out+'/berth-runtime')
        subprocess.run(['go','build','-o',out+'/','./cmd/berth-runtime'], cwd=R, check=True)
        print('built', name)
    finally:
        for p, s in saved.items():
            open(p, 'w').write(s)
