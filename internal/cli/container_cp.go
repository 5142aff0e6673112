package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/cpath"
)

type cpOptions struct {
	followLink, copyUIDGID, quiet bool
}

func (c *CLI) newCpCommand() *cobra.Command {
	var o cpOptions
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: "Copy files/folders between a container and the local filesystem\n\n" +
			"Use '-' as the source to read a tar archive from stdin\n" +
			"and extract it to a directory destination in a container.\n" +
			"Use '-' as the destination to stream a tar archive of a\n" +
			"container source to stdout.",
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := args[0], args[1]
			if src == "" {
				return errors.New("source can not be empty")
			}
			if dst == "" {
				return errors.New("destination can not be empty")
			}
			srcCtr, srcPath := cpath.SplitArg(src)
			dstCtr, dstPath := cpath.SplitArg(dst)
			// Progress only on a terminal, as docker does.
			o.quiet = o.quiet || !isTerminal(c.err)
			switch {
			case srcCtr != "" && dstCtr != "":
				return errors.New("copying between containers is not supported")
			case srcCtr != "":
				return c.copyFromContainer(cmd.Context(), srcCtr, srcPath, dstPath, o)
			case dstCtr != "":
				return c.copyToContainer(cmd.Context(), srcPath, dstCtr, dstPath, o)
			}
			return errors.New("must specify at least one container source")
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&o.followLink, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	fs.BoolVarP(&o.copyUIDGID, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached")
	return cmd
}

func isTerminal(w io.Writer) bool {
	if s, ok := w.(*OutStream); ok {
		return s.IsTerminal()
	}
	if f, ok := w.(*os.File); ok {
		return NewOutStream(f).IsTerminal()
	}
	return false
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.n += int64(n)
	return n, err
}

func (c *CLI) copyFromContainer(ctx context.Context, ctr, srcPath, dstPath string, o cpOptions) error {
	if dstPath != "-" {
		var err error
		if dstPath, err = cpath.ResolveLocalPath(dstPath); err != nil {
			return err
		}
		if err := cpath.ValidateOutputPath(dstPath); err != nil {
			return err
		}
	}
	api, err := c.Client(ctx)
	if err != nil {
		return err
	}
	var rebase string
	if o.followLink {
		st, err := api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: srcPath})
		if err == nil && st.Stat.Mode&os.ModeSymlink != 0 {
			target := linkTarget(srcPath, st.Stat.LinkTarget)
			target, rebase = cpath.RebaseName(srcPath, target)
			srcPath = target
		}
	}
	res, err := api.CopyFromContainer(ctx, ctr, client.CopyFromContainerOptions{SourcePath: srcPath})
	if err != nil {
		return err
	}
	defer res.Content.Close()
	if dstPath == "-" {
		_, err := io.Copy(c.out, res.Content)
		return err
	}
	src := cpath.CopyInfo{Path: srcPath, Exists: true, IsDir: res.Stat.Mode.IsDir(), RebaseName: rebase}
	counted := &countingReader{r: res.Content}
	var content io.Reader = counted
	if rebase != "" {
		_, base := cpath.SplitPathDirEntry(src.Path)
		content = cpath.RebaseArchiveEntries(counted, base, rebase)
	}
	if !o.quiet {
		fmt.Fprint(c.err, "Preparing to copy...\r")
	}
	if err := cpath.CopyTo(content, src, dstPath); err != nil {
		return err
	}
	if !o.quiet {
		fmt.Fprintf(c.err, "Successfully copied %s to %s\n", units.HumanSize(float64(counted.n)), dstPath)
	}
	return nil
}

// linkTarget is the path in the container that the symbolic link at link points to.
func linkTarget(link, target string) string {
	if filepath.IsAbs(target) {
		return target
	}
	parent, _ := cpath.SplitPathDirEntry(link)
	return filepath.Join(parent, target)
}

func (c *CLI) copyToContainer(ctx context.Context, srcPath, ctr, dstPath string, o cpOptions) error {
	if srcPath != "-" {
		var err error
		if srcPath, err = cpath.ResolveLocalPath(srcPath); err != nil {
			return err
		}
	}
	api, err := c.Client(ctx)
	if err != nil {
		return err
	}
	dst := cpath.CopyInfo{Path: dstPath}
	st, err := api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: dstPath})
	// A destination that is a symbolic link is the link's target.
	if err == nil && st.Stat.Mode&os.ModeSymlink != 0 {
		target := linkTarget(dstPath, st.Stat.LinkTarget)
		dst.Path = target
		st, err = api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: target})
	}
	if err := cpath.ValidateFileMode(st.Stat.Mode); err != nil {
		return fmt.Errorf(`destination "%s:%s" must be a directory or a regular file: %w`, ctr, dstPath, err)
	}
	// Without a stat the destination is assumed missing with an existing parent: the
	// extraction tells otherwise.
	if err == nil {
		dst.Exists, dst.IsDir = true, st.Stat.Mode.IsDir()
	}

	var content io.Reader
	var resolvedDst string
	var counted *countingReader
	if srcPath == "-" {
		content, resolvedDst = c.in, dst.Path
		if !dst.IsDir {
			return fmt.Errorf(`destination "%s:%s" must be a directory`, ctr, dstPath)
		}
	} else {
		src, err := cpath.SourceInfo(srcPath, o.followLink)
		if err != nil {
			return err
		}
		archive, err := cpath.TarSource(src)
		if err != nil {
			return err
		}
		defer archive.Close()
		dir, prepared, err := cpath.PrepareArchiveCopy(archive, src, dst)
		if err != nil {
			return err
		}
		defer prepared.Close()
		resolvedDst = dir
		counted = &countingReader{r: prepared}
		content = counted
	}
	if !o.quiet && counted != nil {
		fmt.Fprint(c.err, "Preparing to copy...\r")
	}
	if _, err := api.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{
		DestinationPath: resolvedDst, Content: content, CopyUIDGID: o.copyUIDGID,
	}); err != nil {
		return err
	}
	if !o.quiet && counted != nil {
		fmt.Fprintf(c.err, "Successfully copied %s to %s:%s\n", units.HumanSize(float64(counted.n)), ctr, dstPath)
	}
	return nil
}
