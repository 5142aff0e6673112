// Package runtime is berth's OCI runtime library: it takes an OCI bundle (config.json and a
// rootfs) and runs it as runc does. It owns the container lifecycle (create, start, run, exec,
// kill, delete, pause, resume, update, events), the state files under the runtime root, hooks and
// console sockets. It knows nothing of images, daemons or networks.
//
// The container's setup is compiled into a child.Exec program (see docs/runtime-design.md) by
// the functions in compile*.go; the lifecycle in container.go spawns it and talks to it over a
// sync socket.
package runtime
