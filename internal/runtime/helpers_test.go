package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/runtime/child"
)

func childBuilderForTest() *child.Builder { return child.NewBuilder(100, 5) }

func specMount(dest, typ string) specs.Mount {
	return specs.Mount{Destination: dest, Type: typ, Source: "/"}
}
