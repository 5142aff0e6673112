package format

import (
	"sort"
	"strconv"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
)

// The default formats of `images`.
const (
	DefaultImageTable           = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
	DefaultImageTableWithDigest = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)

// ImageFormat is the format `images` uses for its --format value, -q and --digests.
func ImageFormat(source string, quiet, digest bool) Format {
	if source == TableKey || source == "" {
		switch {
		case quiet:
			return QuietFormat
		case digest:
			return DefaultImageTableWithDigest
		default:
			return DefaultImageTable
		}
	}
	f := Format(source)
	if f.IsTable() && digest && !f.Contains("{{.Digest}}") {
		f += "\t{{.Digest}}"
	}
	return f
}

// ImageHeader names the columns of image rows.
var ImageHeader = Header{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
	"VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}

// Image is one row of `images`: one repository and tag (or digest) of an image.
type Image struct {
	I             image.Summary
	Repo, Tg, Dig string
	Trunc         bool
}

// ImageRows expands images into rows, one per repository:tag (and per digest when
// digests are shown); dangling images get one "<none>" row.
func ImageRows(images []image.Summary, trunc, showDigests bool) []any {
	var rows []any
	for _, img := range images {
		if dangling(img) {
			rows = append(rows, &Image{I: img, Repo: "<none>", Tg: "<none>", Dig: "<none>", Trunc: trunc})
			continue
		}
		tags := map[string][]string{}
		digests := map[string][]string{}
		var repos []string
		for _, s := range img.RepoTags {
			ref, err := reference.ParseNormalizedNamed(s)
			if err != nil {
				continue
			}
			if nt, ok := ref.(reference.NamedTagged); ok {
				name := reference.FamiliarName(ref)
				if _, seen := tags[name]; !seen {
					repos = append(repos, name)
				}
				tags[name] = append(tags[name], nt.Tag())
			}
		}
		for _, s := range img.RepoDigests {
			ref, err := reference.ParseNormalizedNamed(s)
			if err != nil {
				continue
			}
			if c, ok := ref.(reference.Canonical); ok {
				name := reference.FamiliarName(ref)
				digests[name] = append(digests[name], c.Digest().String())
			}
		}
		sort.Strings(repos)
		for _, repo := range repos {
			ds := digests[repo]
			delete(digests, repo)
			if !showDigests {
				ds = nil
			}
			for _, tag := range tags[repo] {
				if len(ds) == 0 {
					rows = append(rows, &Image{I: img, Repo: repo, Tg: tag, Dig: "<none>", Trunc: trunc})
					continue
				}
				for _, d := range ds {
					rows = append(rows, &Image{I: img, Repo: repo, Tg: tag, Dig: d, Trunc: trunc})
				}
			}
		}
		var rest []string
		for repo := range digests {
			rest = append(rest, repo)
		}
		sort.Strings(rest)
		for _, repo := range rest {
			if showDigests {
				for _, d := range digests[repo] {
					rows = append(rows, &Image{I: img, Repo: repo, Tg: "<none>", Dig: d, Trunc: trunc})
				}
			} else {
				rows = append(rows, &Image{I: img, Repo: repo, Tg: "<none>", Trunc: trunc})
			}
		}
	}
	return rows
}

func dangling(img image.Summary) bool {
	if len(img.RepoTags) == 0 && len(img.RepoDigests) == 0 {
		return true
	}
	return len(img.RepoTags) == 1 && img.RepoTags[0] == "<none>:<none>" &&
		len(img.RepoDigests) == 1 && img.RepoDigests[0] == "<none>@<none>"
}

// MarshalJSON makes {{json .}} print the row's fields.
func (c *Image) MarshalJSON() ([]byte, error) { return MarshalMethods(c) }

// ID is the image ID, short unless --no-trunc.
func (c *Image) ID() string {
	if c.Trunc {
		return TruncateID(c.I.ID)
	}
	return c.I.ID
}

// Repository is the row's repository.
func (c *Image) Repository() string { return c.Repo }

// Tag is the row's tag.
func (c *Image) Tag() string { return c.Tg }

// Digest is the row's repository digest.
func (c *Image) Digest() string { return c.Dig }

// CreatedSince is how long ago the image was created.
func (c *Image) CreatedSince() string {
	if c.I.Created == 0 {
		return ""
	}
	return Ago(time.Unix(c.I.Created, 0))
}

// CreatedAt is the creation time.
func (c *Image) CreatedAt() string { return time.Unix(c.I.Created, 0).String() }

// Size is the image's size.
func (c *Image) Size() string { return Size(c.I.Size) }

// Containers is the number of containers using the image ("N/A" when not computed).
func (c *Image) Containers() string {
	if c.I.Containers == -1 {
		return "N/A"
	}
	return strconv.FormatInt(c.I.Containers, 10)
}

// VirtualSize is the image's size (docker's deprecated name).
func (c *Image) VirtualSize() string { return units.HumanSize(float64(c.I.Size)) }

// SharedSize is the size shared with other images.
func (c *Image) SharedSize() string {
	if c.I.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(c.I.SharedSize))
}

// UniqueSize is the size not shared with other images.
func (c *Image) UniqueSize() string {
	if c.I.Size == -1 || c.I.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(c.I.Size - c.I.SharedSize))
}
