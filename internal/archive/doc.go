// Package archive owns the tar streams of image layers: detecting and
// removing their compression, extracting them safely into a layer directory
// in overlayfs form, and writing tars back (a diff of an overlay upper
// directory, or a whole tree).
//
// It knows nothing of images, manifests or content stores: callers hand it
// streams and directories, and get back bytes, errors and the layer's
// DiffID.
//
// Extraction never writes outside the target directory, whatever the
// archive contains: every parent directory is resolved with openat2
// (RESOLVE_IN_ROOT) from a descriptor of the target, and the last path
// component is created with *at system calls that never follow a symbolic
// link. Unpack needs Linux 5.8 or later (openat2, utimensat on
// AT_EMPTY_PATH) and a mounted /proc (extended attributes of files other
// than regular ones are set through /proc/self/fd, and so are modes before
// Linux 6.6 brought fchmodat2).
package archive
