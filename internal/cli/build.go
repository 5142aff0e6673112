package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"berth/internal/cli/buildctx"
	"berth/internal/cli/opts"
)

type buildOptions struct {
	tags, buildArgs, labels, extraHosts *opts.List
	ulimits                             *opts.Ulimits
	dockerfile, target, network         string
	iidfile, platform, cgroupParent     string
	isolation, cpusetCpus, cpusetMems   string
	securityOpt, cacheFrom              []string
	noCache, pull, quiet, rm, forceRm   bool
	squash, compress                    bool
	cpuShares, cpuPeriod, cpuQuota      int64
	memory, shmSize                     opts.MemBytes
	memorySwap                          opts.MemSwapBytes
}

func validateTag(v string) (string, error) {
	if _, err := reference.ParseNormalizedNamed(v); err != nil {
		return "", err
	}
	return v, nil
}

func (c *CLI) newBuildCommand() *cobra.Command {
	o := buildOptions{
		tags: opts.NewList(validateTag), buildArgs: opts.NewList(opts.ValidateEnv),
		labels: opts.NewList(opts.ValidateLabel), extraHosts: opts.NewList(opts.ValidateExtraHost),
		ulimits: opts.NewUlimits(),
	}
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | URL | -",
		Short: "Build an image from a Dockerfile",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runBuild(cmd, args[0], &o)
		},
	}
	fs := cmd.Flags()
	fs.VarP(o.tags, "tag", "t", `Name and optionally a tag in the "name:tag" format`)
	fs.Var(o.buildArgs, "build-arg", "Set build-time variables")
	fs.Var(o.ulimits, "ulimit", "Ulimit options")
	fs.StringVarP(&o.dockerfile, "file", "f", "", `Name of the Dockerfile (Default is "PATH/Dockerfile")`)
	fs.VarP(&o.memory, "memory", "m", "Memory limit")
	fs.Var(&o.memorySwap, "memory-swap", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	fs.Var(&o.shmSize, "shm-size", `Size of "/dev/shm"`)
	fs.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit the CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit the CPU CFS (Completely Fair Scheduler) quota")
	fs.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&o.cgroupParent, "cgroup-parent", "", `Set the parent cgroup for the "RUN" instructions during build`)
	fs.StringVar(&o.isolation, "isolation", "", "Container isolation technology")
	fs.Var(o.labels, "label", "Set metadata for an image")
	fs.BoolVar(&o.noCache, "no-cache", false, "Do not use cache when building the image")
	fs.BoolVar(&o.rm, "rm", true, "Remove intermediate containers after a successful build")
	fs.BoolVar(&o.forceRm, "force-rm", false, "Always remove intermediate containers")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	fs.BoolVar(&o.pull, "pull", false, "Always attempt to pull a newer version of the image")
	fs.StringSliceVar(&o.cacheFrom, "cache-from", nil, "Images to consider as cache sources")
	fs.BoolVar(&o.compress, "compress", false, "Compress the build context using gzip")
	fs.StringSliceVar(&o.securityOpt, "security-opt", nil, "Security options")
	fs.StringVar(&o.network, "network", "default", "Set the networking mode for the RUN instructions during build")
	fs.Var(o.extraHosts, "add-host", `Add a custom host-to-IP mapping ("host:ip")`)
	fs.StringVar(&o.target, "target", "", "Set the target build stage to build.")
	fs.StringVar(&o.iidfile, "iidfile", "", "Write the image ID to the file")
	fs.StringVar(&o.platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), "Set platform if server is multi-platform capable")
	fs.BoolVar(&o.squash, "squash", false, "Squash newly built layers into a single new layer")
	fs.Bool("disable-content-trust", true, "Skip image verification")
	return cmd
}

var gitURL = regexp.MustCompile(`^(git://|git@|github\.com/|.*\.git(#.*)?$)`)

// runBuild is `build`: the context (a directory, a tar or Dockerfile on stdin, or a URL for
// the daemon to fetch), POST /build, the rendered stream.
func (c *CLI) runBuild(cmd *cobra.Command, specified string, o *buildOptions) error {
	ctx := cmd.Context()
	if o.iidfile != "" {
		if err := os.Remove(o.iidfile); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing image ID file: %w", err)
		}
	}
	var (
		body          io.ReadCloser
		relDockerfile string
		remote        string
		err           error
	)
	fromStdin := o.dockerfile == "-"
	switch {
	case specified == "-":
		if fromStdin {
			return errors.New("invalid argument: can't use stdin for both build context and dockerfile")
		}
		body, relDockerfile, err = buildctx.FromReader(c.in, o.dockerfile)
	case isDir(specified):
		var contextDir string
		contextDir, relDockerfile, err = buildctx.LocalDir(specified, o.dockerfile)
		if err != nil {
			return fmt.Errorf("unable to prepare context: %w", err)
		}
		var extra []byte
		if fromStdin {
			if extra, err = io.ReadAll(c.in); err != nil {
				return fmt.Errorf("read the Dockerfile from stdin: %w", err)
			}
		} else if strings.HasPrefix(relDockerfile, ".."+string(filepath.Separator)) {
			// A Dockerfile outside the context travels inside it, under another name.
			if extra, err = os.ReadFile(filepath.Join(contextDir, relDockerfile)); err != nil {
				return fmt.Errorf("unable to read the Dockerfile: %w", err)
			}
		}
		excludes, err := buildctx.ReadDockerignore(contextDir)
		if err != nil {
			return err
		}
		if excludes, err = buildctx.KeepBuildFiles(excludes, relDockerfile, extra != nil); err != nil {
			return err
		}
		tarred, err := buildctx.Tar(contextDir, buildctx.Options{Excludes: excludes, Dockerfile: extra})
		if err != nil {
			return fmt.Errorf("error checking context: %w", err)
		}
		if tarred.DockerfileName != "" {
			relDockerfile = tarred.DockerfileName
		}
		body = tarred
	case strings.HasPrefix(specified, "http://"), strings.HasPrefix(specified, "https://"), gitURL.MatchString(specified):
		remote = specified
		relDockerfile = o.dockerfile
	default:
		return fmt.Errorf("unable to prepare context: path %q not found", specified)
	}
	if err != nil {
		return fmt.Errorf("unable to prepare context: %w", err)
	}
	if body != nil {
		defer body.Close()
		if o.compress {
			pr, pw := io.Pipe()
			go func() {
				zw := gzip.NewWriter(pw)
				_, err := io.Copy(zw, body)
				if cerr := zw.Close(); err == nil {
					err = cerr
				}
				pw.CloseWithError(err)
			}()
			body = pr
		}
	}

	api, err := c.Client(ctx)
	if err != nil {
		return err
	}
	bo := client.ImageBuildOptions{
		Tags: o.tags.Values(), SuppressOutput: o.quiet, RemoteContext: remote, NoCache: o.noCache,
		Remove: o.rm, ForceRemove: o.forceRm, PullParent: o.pull, Isolation: container.Isolation(o.isolation),
		CPUSetCPUs: o.cpusetCpus, CPUSetMems: o.cpusetMems, CPUShares: o.cpuShares, CPUQuota: o.cpuQuota,
		CPUPeriod: o.cpuPeriod, Memory: o.memory.Value(), MemorySwap: o.memorySwap.Value(),
		CgroupParent: o.cgroupParent, NetworkMode: o.network, ShmSize: o.shmSize.Value(),
		Dockerfile: relDockerfile, Ulimits: o.ulimits.List(), BuildArgs: buildArgsMap(o.buildArgs.Values()),
		Labels: opts.KVStringsToMap(o.labels.Values()), Squash: o.squash, CacheFrom: o.cacheFrom,
		SecurityOpt: o.securityOpt, ExtraHosts: o.extraHosts.Values(), Target: o.target,
		Version: build.BuilderV1,
	}
	if p, err := parsePlatform(o.platform); err != nil {
		return err
	} else if p != nil {
		bo.Platforms = []ocispec.Platform{*p}
	}
	var in io.Reader = body
	var sent *countingReader
	if body != nil {
		sent = &countingReader{r: body}
		in = &eofNotifier{r: sent, onEOF: func() {
			if !o.quiet {
				fmt.Fprintf(c.out, "Sending build context to Docker daemon  %s\n", units.HumanSize(float64(sent.n)))
			}
		}}
	}
	if in == nil {
		in = bytes.NewReader(nil)
	}
	resp, err := api.ImageBuild(ctx, in, bo)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	var imageID string
	out := io.Writer(c.out)
	var quietBuf bytes.Buffer
	if o.quiet {
		out = &quietBuf
	}
	err = c.displayStream(resp.Body, out, func(aux json.RawMessage) {
		var r build.Result
		if err := json.Unmarshal(aux, &r); err == nil && r.ID != "" {
			imageID = r.ID
		}
	})
	if err != nil {
		if o.quiet {
			fmt.Fprint(c.err, quietBuf.String())
		}
		return err
	}
	if o.quiet {
		imageID = strings.TrimSpace(quietBuf.String())
		fmt.Fprintln(c.out, imageID)
	}
	if o.iidfile != "" {
		if imageID == "" {
			return fmt.Errorf("server did not provide an image ID. Cannot write %s", o.iidfile)
		}
		if err := os.WriteFile(o.iidfile, []byte(imageID), 0o666); err != nil {
			return fmt.Errorf("write the image ID file: %w", err)
		}
	}
	return nil
}

// buildArgsMap turns --build-arg values into the API's map: "KEY" alone (not in berth's
// environment either) is a nil value, which the builder takes from the Dockerfile.
func buildArgsMap(args []string) map[string]*string {
	m := map[string]*string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			m[k] = nil
			continue
		}
		m[k] = &v
	}
	return m
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// eofNotifier calls onEOF once when the reader ends.
type eofNotifier struct {
	r     io.Reader
	onEOF func()
	done  bool
}

func (e *eofNotifier) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err == io.EOF && !e.done {
		e.done = true
		e.onEOF()
	}
	return n, err
}
