package volume

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// BrickRef is a brick as the administrator wrote it: HOST:/PATH.
type BrickRef struct {
	Host string `json:"host"`
	Path string `json:"path"`
}

// Name renders HOST:PATH.
func (b BrickRef) Name() string { return b.Host + ":" + b.Path }

// CreateRequest is a parsed `volume create` command line.
type CreateRequest struct {
	Name      string     `json:"name"`
	Layout    Layout     `json:"layout"`
	Transport string     `json:"transport"`
	Bricks    []BrickRef `json:"bricks"`
	Force     bool       `json:"force"`
	// Warnings are printed by the CLI; the request still goes ahead.
	Warnings []string `json:"warnings,omitempty"`
}

// ParseCreateArgs parses the words after `volume create`, in gluster's
// grammar:
//
//	NAME [stripe N] [replica N [arbiter 1]] [disperse [N]] [disperse-data N]
//	     [redundancy N] [transport tcp] HOST:/PATH... [force]
func ParseCreateArgs(args []string) (CreateRequest, error) {
	var r CreateRequest
	if len(args) == 0 {
		return r, fmt.Errorf("%w: usage: volume create <NEW-VOLNAME> [stripe <COUNT>] [replica <COUNT> [arbiter <COUNT>]] [disperse [<COUNT>]] [disperse-data <COUNT>] [redundancy <COUNT>] [transport <tcp>] <NEW-BRICK>... [force]", ErrInvalid)
	}
	r.Name = args[0]
	if err := CheckName(r.Name); err != nil {
		return r, err
	}
	r.Transport = "tcp"
	seen := map[string]bool{}
	disperseData := 0
	i := 1
	count := func(word string) (int, error) {
		if seen[word] {
			return 0, fmt.Errorf("%w: %s option given twice", ErrInvalid, word)
		}
		seen[word] = true
		if i+1 >= len(args) {
			return 0, fmt.Errorf("%w: %s needs a count", ErrInvalid, word)
		}
		n, err := strconv.Atoi(args[i+1])
		if err != nil || n <= 0 || n > MaxCount {
			return 0, fmt.Errorf("%w: %s count %q is not a positive number", ErrInvalid, word, args[i+1])
		}
		i += 2
		return n, nil
	}
	var err error
	for i < len(args) {
		switch word := args[i]; word {
		case "stripe":
			r.Layout.Stripe, err = count(word)
		case "replica":
			r.Layout.Replica, err = count(word)
		case "arbiter":
			if !seen["replica"] {
				return r, fmt.Errorf("%w: arbiter option must be preceded by replica option.", ErrInvalid)
			}
			r.Layout.Arbiter, err = count(word)
			// "replica 2 arbiter 1" is gluster's spelling of "replica 3 arbiter 1".
			if err == nil && r.Layout.Replica == 2 && r.Layout.Arbiter == 1 {
				r.Layout.Replica = 3
			}
		case "disperse":
			// The count is optional: "disperse" alone uses all bricks.
			if i+1 < len(args) {
				if _, aerr := strconv.Atoi(args[i+1]); aerr == nil {
					r.Layout.Disperse, err = count(word)
					break
				}
			}
			if seen[word] {
				return r, fmt.Errorf("%w: disperse option given twice", ErrInvalid)
			}
			seen[word] = true
			r.Layout.Disperse = -1
			i++
		case "disperse-data":
			disperseData, err = count(word)
		case "redundancy":
			r.Layout.Redundancy, err = count(word)
		case "transport":
			if i+1 >= len(args) {
				return r, fmt.Errorf("%w: transport needs a type", ErrInvalid)
			}
			switch t := strings.ToLower(args[i+1]); t {
			case "tcp":
				r.Transport = t
			case "rdma", "tcp,rdma":
				return r, fmt.Errorf("%w: transport %s is not supported by cais; use tcp", ErrInvalid, t)
			default:
				return r, fmt.Errorf("%w: unknown transport %q; use tcp", ErrInvalid, args[i+1])
			}
			i += 2
		default:
			if word == "force" && i == len(args)-1 {
				r.Force = true
				i++
				continue
			}
			b, perr := ParseBrick(word)
			if perr != nil {
				return r, perr
			}
			r.Bricks = append(r.Bricks, b)
			i++
			// Keywords may not follow bricks.
			for i < len(args) && args[i] != "force" {
				b, perr := ParseBrick(args[i])
				if perr != nil {
					return r, perr
				}
				r.Bricks = append(r.Bricks, b)
				i++
			}
			if i < len(args) && i != len(args)-1 {
				return r, fmt.Errorf("%w: force must be the last word", ErrInvalid)
			}
		}
		if err != nil {
			return r, err
		}
	}
	if err := r.resolveDisperse(disperseData); err != nil {
		return r, err
	}
	if err := r.Layout.Check(len(r.Bricks)); err != nil {
		return r, err
	}
	seenBrick := map[string]bool{}
	for _, b := range r.Bricks {
		if seenBrick[b.Name()] {
			return r, fmt.Errorf("%w: Found duplicate exports %s", ErrInvalid, b.Name())
		}
		seenBrick[b.Name()] = true
	}
	if r.Layout.Replica == 2 && r.Layout.Arbiter == 0 {
		r.Warnings = append(r.Warnings, "Replica 2 volumes are prone to split-brain. Use Arbiter or Replica 3 to avoid this.")
	}
	return r, nil
}

func (r *CreateRequest) resolveDisperse(disperseData int) error {
	l := &r.Layout
	if l.Disperse == 0 && disperseData == 0 && l.Redundancy == 0 {
		return nil
	}
	if l.Disperse == 0 && disperseData == 0 {
		return fmt.Errorf("%w: redundancy needs disperse or disperse-data", ErrInvalid)
	}
	if l.Disperse == -1 {
		l.Disperse = 0
	}
	switch {
	case disperseData > 0 && l.Disperse > 0:
		if l.Redundancy == 0 {
			l.Redundancy = l.Disperse - disperseData
		}
		if l.Disperse != disperseData+l.Redundancy {
			return fmt.Errorf("%w: disperse count (%d) must equal disperse-data count (%d) plus redundancy (%d)", ErrInvalid, l.Disperse, disperseData, l.Redundancy)
		}
	case disperseData > 0:
		if l.Redundancy == 0 {
			l.Redundancy = 1
		}
		l.Disperse = disperseData + l.Redundancy
	case l.Disperse == 0:
		// "disperse" with no count: one set of all bricks.
		l.Disperse = len(r.Bricks)
	}
	if l.Redundancy == 0 && l.Disperse >= 3 {
		red, optimal := DefaultRedundancy(l.Disperse)
		l.Redundancy = red
		if !optimal {
			r.Warnings = append(r.Warnings, fmt.Sprintf("There isn't an optimal redundancy value for this configuration; the volume is created with redundancy %d.", red))
		} else if red > 1 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("The optimal redundancy for this configuration is %d; the volume is created with it.", red))
		}
	}
	return nil
}

// ParseBrick parses HOST:/ABSOLUTE/PATH.
func ParseBrick(s string) (BrickRef, error) {
	host, p, ok := strings.Cut(s, ":")
	bad := fmt.Errorf("%w: Wrong brick type: %s, use <HOSTNAME>:<export-dir-abs-path>", ErrInvalid, s)
	if !ok || host == "" || !strings.HasPrefix(p, "/") || strings.ContainsAny(host, "/ \t\n") {
		return BrickRef{}, bad
	}
	if strings.ContainsRune(p, 0) || strings.ContainsAny(p, "\n") {
		return BrickRef{}, bad
	}
	clean := path.Clean(p)
	if clean == "/" {
		return BrickRef{}, fmt.Errorf("%w: brick %s: the root directory cannot be a brick", ErrInvalid, s)
	}
	if len(clean) > 4000 {
		return BrickRef{}, fmt.Errorf("%w: brick path of %s is too long", ErrInvalid, s)
	}
	return BrickRef{Host: host, Path: clean}, nil
}

// PathsOverlap reports whether one path equals or contains the other.
func PathsOverlap(a, b string) bool {
	a, b = path.Clean(a), path.Clean(b)
	if a == b || a == "/" || b == "/" {
		return true
	}
	return strings.HasPrefix(b, a+"/") || strings.HasPrefix(a, b+"/")
}

// PlacedBrick is a requested brick after its host has been resolved to a
// pool member.
type PlacedBrick struct {
	BrickRef
	Node string
}

// CheckPlacement applies the refusals that need to know which node owns
// each brick: two bricks of one replica or disperse set on the same node,
// and bricks that equal, contain or sit inside another brick of this request
// or of an existing volume. force overrides the first only, as in gluster.
func CheckPlacement(l Layout, bricks []PlacedBrick, existing []Volume, force bool) error {
	// Fault domains are the replica sets (runs of Replica bricks, also
	// inside stripe groups) and the disperse sets.
	g := l.Disperse
	if l.Replica > 1 {
		g = l.Replica
	}
	if g > 1 && !force {
		for s := 0; s+g <= len(bricks); s += g {
			nodes := map[string]bool{}
			for _, b := range bricks[s : s+g] {
				if nodes[b.Node] {
					kind := "replicate"
					if l.Disperse > 0 {
						kind = "disperse"
					}
					return fmt.Errorf("%w: Multiple bricks of a %s volume are present on the same server. This setup is not optimal. Bricks should be on different nodes to have best fault tolerant configuration. Use 'force' at the end of the command if you want to override this behavior", ErrNeedsForce, kind)
				}
				nodes[b.Node] = true
			}
		}
	}
	for i, b := range bricks {
		for _, o := range bricks[:i] {
			if o.Node == b.Node && PathsOverlap(o.Path, b.Path) {
				if o.Path == b.Path {
					return fmt.Errorf("%w: Found duplicate exports %s", ErrInvalid, b.Name())
				}
				return fmt.Errorf("%w: Brick: %s not available. Brick may be containing or be contained by brick %s of this command.", ErrInvalid, b.Name(), o.Name())
			}
		}
		for _, v := range existing {
			for _, o := range v.Bricks {
				if o.Node != b.Node || !PathsOverlap(o.Path, b.Path) {
					continue
				}
				if o.Path == b.Path {
					return fmt.Errorf("%w: %s is already part of a volume (%s)", ErrExists, b.Name(), v.Name)
				}
				return fmt.Errorf("%w: Brick: %s not available. Brick may be containing or be contained by an existing brick (%s of volume %s).", ErrExists, b.Name(), o.Name(), v.Name)
			}
		}
	}
	return nil
}

// New builds the volume a checked request describes. ids supplies the
// volume ID and one ID per brick.
func New(r CreateRequest, bricks []PlacedBrick, ids func() string) Volume {
	v := Volume{
		Name:      r.Name,
		ID:        ids(),
		Status:    Created,
		Layout:    r.Layout,
		Transport: r.Transport,
		Options:   DefaultReconfigured(r.Layout),
	}
	g := r.Layout.GroupSize()
	for i, b := range bricks {
		v.Bricks = append(v.Bricks, Brick{
			ID:      ids(),
			Host:    b.Host,
			Path:    b.Path,
			Node:    b.Node,
			Arbiter: r.Layout.Arbiter > 0 && i%g == g-1,
		})
	}
	return v
}

// Args renders the request back into `volume create` words, so a server
// can run a client's request through the same grammar.
func (r CreateRequest) Args() []string {
	args := []string{r.Name}
	l := r.Layout
	if l.Stripe > 0 {
		args = append(args, "stripe", strconv.Itoa(l.Stripe))
	}
	if l.Replica > 0 {
		args = append(args, "replica", strconv.Itoa(l.Replica))
	}
	if l.Arbiter > 0 {
		args = append(args, "arbiter", strconv.Itoa(l.Arbiter))
	}
	if l.Disperse > 0 {
		args = append(args, "disperse", strconv.Itoa(l.Disperse))
	}
	if l.Redundancy > 0 {
		args = append(args, "redundancy", strconv.Itoa(l.Redundancy))
	}
	if r.Transport != "" {
		args = append(args, "transport", r.Transport)
	}
	for _, b := range r.Bricks {
		args = append(args, b.Name())
	}
	if r.Force {
		args = append(args, "force")
	}
	return args
}
