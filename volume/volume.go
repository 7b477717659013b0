// Package volume defines a cais volume and the rules for making one, with no
// I/O: the `volume create` grammar, the layout arithmetic (distribute over
// replica or disperse sets, striping inside them), the refusals GlusterFS
// administrators know, the type names and the option table.
//
// The daemon resolves hosts, asks the owning nodes about their directories
// and stores the result; everything it decides with comes from here.
package volume

import (
	"fmt"
	"time"

	"github.com/cais-platform/cais/errdefs"
)

// Error kinds used here, from errdefs.
var (
	ErrInvalid    = errdefs.ErrInvalid
	ErrNotFound   = errdefs.ErrNotFound
	ErrExists     = errdefs.ErrExists
	ErrState      = errdefs.ErrState
	ErrNeedsForce = errdefs.ErrNeedsForce
)

// Status is a volume's lifecycle state.
type Status string

// Volume states, as `volume info` prints them.
const (
	Created Status = "Created"
	Started Status = "Started"
	Stopped Status = "Stopped"
)

// Brick is one export of a volume: a directory on a pool member.
type Brick struct {
	// ID is stable for the life of the brick; process and status records use it.
	ID string `json:"id"`
	// Host is the name the administrator gave, printed back as given.
	Host string `json:"host"`
	Path string `json:"path"`
	// Node is the UUID of the pool member that owns the brick.
	Node    string `json:"node"`
	Arbiter bool   `json:"arbiter,omitempty"`
}

// Name renders the brick as HOST:PATH.
func (b Brick) Name() string { return b.Host + ":" + b.Path }

// Option is one reconfigured option, kept in the order it was set.
type Option struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Volume is the whole definition of a volume as stored in the cluster state.
type Volume struct {
	Name      string   `json:"name"`
	ID        string   `json:"id"`
	Status    Status   `json:"status"`
	Layout    Layout   `json:"layout"`
	Transport string   `json:"transport"`
	Bricks    []Brick  `json:"bricks"`
	Options   []Option `json:"options"`
	// SnapshotCount is kept for `volume info`; snapshots arrive later.
	SnapshotCount int       `json:"snapshotCount"`
	Created       time.Time `json:"created"`
}

// Option returns a reconfigured option's value.
func (v *Volume) Option(key string) (string, bool) {
	for _, o := range v.Options {
		if o.Key == key {
			return o.Value, true
		}
	}
	return "", false
}

// BoolOption is a boolean option's value (ParseBool's spellings), def
// when it is not set or not a boolean.
func (v *Volume) BoolOption(key string, def bool) bool {
	o, ok := v.Option(key)
	if !ok {
		return def
	}
	b, err := ParseBool(o)
	if err != nil {
		return def
	}
	return b
}

// SetOption sets or replaces a reconfigured option.
func (v *Volume) SetOption(key, value string) {
	for i, o := range v.Options {
		if o.Key == key {
			v.Options[i].Value = value
			return
		}
	}
	v.Options = append(v.Options, Option{Key: key, Value: value})
}

// ResetOption removes a reconfigured option; it reports whether it was set.
func (v *Volume) ResetOption(key string) bool {
	for i, o := range v.Options {
		if o.Key == key {
			v.Options = append(v.Options[:i], v.Options[i+1:]...)
			return true
		}
	}
	return false
}

// BricksOn returns the bricks owned by a node.
func (v *Volume) BricksOn(node string) []Brick {
	var out []Brick
	for _, b := range v.Bricks {
		if b.Node == node {
			out = append(out, b)
		}
	}
	return out
}

// Layout is how a volume's bricks are arranged. Consecutive bricks form a
// set of GroupSize bricks (a replica set, a stripe set or both, or a
// disperse set); files are distributed over the sets.
type Layout struct {
	Stripe     int `json:"stripe,omitempty"`
	Replica    int `json:"replica,omitempty"`
	Arbiter    int `json:"arbiter,omitempty"`
	Disperse   int `json:"disperse,omitempty"`
	Redundancy int `json:"redundancy,omitempty"`
}

// MaxCount bounds every count of a layout.
const MaxCount = 4096

// GroupSize is the number of bricks in one distribute subvolume.
func (l Layout) GroupSize() int {
	if l.Disperse > 0 {
		return l.Disperse
	}
	return max(l.Stripe, 1) * max(l.Replica, 1)
}

// Type is the volume type name as `volume info` prints it.
func (l Layout) Type(bricks int) string {
	distributed := bricks > l.GroupSize()
	name := ""
	switch {
	case l.Disperse > 0:
		name = "Disperse"
	case l.Stripe > 1 && l.Replica > 1:
		name = "Striped-Replicate"
	case l.Stripe > 1:
		name = "Stripe"
	case l.Replica > 1:
		name = "Replicate"
	default:
		return "Distribute"
	}
	if distributed {
		return "Distributed-" + name
	}
	return name
}

// BrickCount renders "Number of Bricks" as gluster does: "2" for a plain
// distribute volume, "2 x 3 = 6" for replica sets, "1 x (2 + 1) = 3" for
// arbiter and disperse sets, "2 x 2 x 3 = 12" for striped replicas.
func (l Layout) BrickCount(bricks int) string {
	g := l.GroupSize()
	if g <= 1 {
		return fmt.Sprint(bricks)
	}
	sets := bricks / g
	switch {
	case l.Disperse > 0:
		return fmt.Sprintf("%d x (%d + %d) = %d", sets, l.Disperse-l.Redundancy, l.Redundancy, bricks)
	case l.Arbiter > 0:
		return fmt.Sprintf("%d x (%d + %d) = %d", sets, l.Replica-l.Arbiter, l.Arbiter, bricks)
	case l.Stripe > 1 && l.Replica > 1:
		return fmt.Sprintf("%d x %d x %d = %d", sets, l.Stripe, l.Replica, bricks)
	default:
		return fmt.Sprintf("%d x %d = %d", sets, g, bricks)
	}
}

// Sets splits bricks into their distribute subvolumes.
func (l Layout) Sets(bricks []Brick) [][]Brick {
	g := l.GroupSize()
	var out [][]Brick
	for i := 0; i+g <= len(bricks); i += g {
		out = append(out, bricks[i:i+g])
	}
	return out
}

// Check validates a layout for a number of bricks.
func (l Layout) Check(bricks int) error {
	if bricks == 0 {
		return fmt.Errorf("%w: No bricks specified", ErrInvalid)
	}
	if l.Disperse > 0 && l.Replica > 0 {
		return fmt.Errorf("%w: replicated-dispersed volume is not supported", ErrInvalid)
	}
	if l.Disperse > 0 && l.Stripe > 0 {
		return fmt.Errorf("%w: striped-dispersed volume is not supported", ErrInvalid)
	}
	for _, n := range []int{l.Stripe, l.Replica, l.Arbiter, l.Disperse, l.Redundancy} {
		if n < 0 || n > MaxCount {
			return fmt.Errorf("%w: counts must be between 1 and %d", ErrInvalid, MaxCount)
		}
	}
	if l.Replica == 1 {
		return fmt.Errorf("%w: replica count should be greater than 1", ErrInvalid)
	}
	if l.Arbiter > 0 && l.Stripe > 0 {
		return fmt.Errorf("%w: arbiter is not supported on striped volumes", ErrInvalid)
	}
	if l.Stripe == 1 {
		return fmt.Errorf("%w: stripe count should be greater than 1", ErrInvalid)
	}
	if l.Arbiter > 0 && (l.Arbiter != 1 || l.Replica != 3) {
		return fmt.Errorf("%w: For arbiter configuration, replica count must be 2 and arbiter count must be 1. The 3rd brick of the replica will be the arbiter", ErrInvalid)
	}
	if l.Disperse > 0 {
		if l.Disperse < 3 {
			return fmt.Errorf("%w: disperse count must be greater than 2", ErrInvalid)
		}
		if l.Redundancy < 1 || 2*l.Redundancy >= l.Disperse {
			return fmt.Errorf("%w: redundancy must be greater than or equal to 1 and less than %d for a disperse %d volume", ErrInvalid, (l.Disperse+1)/2, l.Disperse)
		}
	}
	g := l.GroupSize()
	if bricks%g != 0 {
		what := "replica count"
		switch {
		case l.Disperse > 0:
			what = "disperse count"
		case l.Stripe > 1 && l.Replica > 1:
			what = fmt.Sprintf("stripe count x replica count (%d x %d)", l.Stripe, l.Replica)
		case l.Stripe > 1:
			what = "stripe count"
		}
		return fmt.Errorf("%w: number of bricks is not a multiple of %s (%d bricks given, a multiple of %d is needed)", ErrInvalid, what, bricks, g)
	}
	return nil
}

// DefaultRedundancy picks the redundancy of a disperse set when none is
// given, as gluster does: the smallest redundancy whose data count is a
// power of two and below the set size, if one exists with 2*r < disperse;
// otherwise 1, reported as not optimal.
func DefaultRedundancy(disperse int) (int, bool) {
	tmp := disperse - 1
	for i := tmp / 2; i > 0; i-- {
		if tmp&(tmp-1) == 0 {
			return disperse - tmp, true
		}
		tmp--
	}
	return 1, false
}

// reservedNames cannot name a volume.
var reservedNames = []string{"volume", "type", "help", "subvolumes", "option", "end-volume", "all",
	"volume_not_in_ring", "description", "force", "snap-max-hard-limit", "snap-max-soft-limit",
	"auto-delete", "activate-on-create"}

// CheckName validates a volume name.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: volume name is empty", ErrInvalid)
	}
	if len(name) > 256 {
		return fmt.Errorf("%w: Volume name exceeds 256 characters.", ErrInvalid)
	}
	if name[0] == '-' {
		return fmt.Errorf("%w: volume name %q begins with a hyphen", ErrInvalid, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%w: Volume name should not contain %q character. Volume names can only contain alphanumeric, '-' and '_' characters.", ErrInvalid, r)
		}
	}
	for _, n := range reservedNames {
		if name == n {
			return fmt.Errorf("%w: %q cannot be the name of a volume.", ErrInvalid, name)
		}
	}
	return nil
}
