package volume

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kind is the type of an option's value.
type Kind int

// Option value kinds.
const (
	KindBool Kind = iota
	KindInt
	KindSize
	KindPercentOrSize
	KindEnum
	KindString
	KindAddrList
	KindLogLevel
)

// OptionSpec describes one volume option.
type OptionSpec struct {
	Key     string
	Default string
	Kind    Kind
	Min     int64
	Max     int64
	Enum    []string
	Doc     string
}

// optionTable lists the options `volume set` accepts. Keys and defaults
// follow GlusterFS, so existing tuning habits carry over.
func optionTable() []OptionSpec {
	return []OptionSpec{
		{Key: "auth.allow", Default: "*", Kind: KindAddrList, Doc: "addresses allowed to mount the volume"},
		{Key: "auth.reject", Default: "(null)", Kind: KindAddrList, Doc: "addresses refused"},
		{Key: "cluster.lookup-unhashed", Default: "on", Kind: KindEnum, Enum: []string{"on", "off", "auto"}, Doc: "look a missing name up on every brick"},
		{Key: "cluster.lookup-optimize", Default: "on", Kind: KindBool, Doc: "trust the layout for names that are not on their hashed brick"},
		{Key: "cluster.min-free-disk", Default: "10%", Kind: KindPercentOrSize, Min: 0, Max: 100, Doc: "free space below which new files go elsewhere"},
		{Key: "cluster.min-free-inodes", Default: "5%", Kind: KindPercentOrSize, Min: 0, Max: 100, Doc: "free inodes below which new files go elsewhere"},
		{Key: "cluster.rebal-throttle", Default: "normal", Kind: KindEnum, Enum: []string{"lazy", "normal", "aggressive"}, Doc: "rebalance speed"},
		{Key: "cluster.quorum-type", Default: "none", Kind: KindEnum, Enum: []string{"none", "auto", "fixed"}, Doc: "client-side write quorum for replica sets"},
		{Key: "cluster.quorum-count", Default: "(null)", Kind: KindInt, Min: 1, Max: 128, Doc: "bricks needed for writes when quorum-type is fixed"},
		{Key: "cluster.server-quorum-type", Default: "off", Kind: KindEnum, Enum: []string{"none", "server", "off"}, Doc: "stop bricks when the pool loses quorum"},
		{Key: "cluster.self-heal-daemon", Default: "on", Kind: KindBool, Doc: "run the self-heal daemon for this volume"},
		{Key: "cluster.heal-timeout", Default: "600", Kind: KindInt, Min: 5, Max: 2147483647, Doc: "seconds between index crawls of the self-heal daemon"},
		{Key: "cluster.data-self-heal", Default: "off", Kind: KindBool, Doc: "heal file contents on access"},
		{Key: "cluster.metadata-self-heal", Default: "off", Kind: KindBool, Doc: "heal metadata on access"},
		{Key: "cluster.entry-self-heal", Default: "off", Kind: KindBool, Doc: "heal directory entries on access"},
		{Key: "cluster.favorite-child-policy", Default: "none", Kind: KindEnum, Enum: []string{"none", "size", "ctime", "mtime", "majority"}, Doc: "resolve split-brain automatically"},
		{Key: "cluster.read-hash-mode", Default: "1", Kind: KindInt, Min: 0, Max: 5, Doc: "how reads are spread over a replica set"},
		{Key: "cluster.choose-local", Default: "true", Kind: KindBool, Doc: "prefer a local brick for reads"},
		{Key: "cluster.granular-entry-heal", Default: "no", Kind: KindBool, Doc: "record entry heals per name"},
		{Key: "cluster.stripe-block-size", Default: "128KB", Kind: KindSize, Min: 16 << 10, Max: 1 << 40, Doc: "stripe unit of striped volumes"},
		{Key: "cluster.eager-lock", Default: "on", Kind: KindBool, Doc: "hold a replica transaction lock across writes"},
		{Key: "disperse.eager-lock", Default: "on", Kind: KindBool, Doc: "hold a disperse transaction lock across writes"},
		{Key: "disperse.background-heals", Default: "8", Kind: KindInt, Min: 0, Max: 256, Doc: "parallel heals of disperse sets"},
		{Key: "diagnostics.brick-log-level", Default: "INFO", Kind: KindLogLevel, Doc: "brick log level"},
		{Key: "diagnostics.client-log-level", Default: "INFO", Kind: KindLogLevel, Doc: "client log level"},
		{Key: "diagnostics.latency-measurement", Default: "off", Kind: KindBool, Doc: "measure per-operation latency"},
		{Key: "diagnostics.count-fop-hits", Default: "off", Kind: KindBool, Doc: "count operations"},
		{Key: "features.quota", Default: "off", Kind: KindBool, Doc: "directory quotas (use 'volume quota')"},
		{Key: "features.read-only", Default: "off", Kind: KindBool, Doc: "refuse writes on every brick"},
		{Key: "features.worm", Default: "off", Kind: KindBool, Doc: "write once, read many"},
		{Key: "features.shard", Default: "off", Kind: KindBool, Doc: "split large files into shards"},
		{Key: "features.shard-block-size", Default: "64MB", Kind: KindSize, Min: 4 << 20, Max: 4 << 40, Doc: "shard size"},
		{Key: "features.cache-invalidation", Default: "on", Kind: KindBool, Doc: "bricks notify mounts of other clients' changes, so mounts cache for performance.md-cache-timeout"},
		{Key: "features.cache-invalidation-timeout", Default: "60", Kind: KindInt, Min: 0, Max: 3600, Doc: "seconds clients may cache without a notification"},
		{Key: "network.ping-timeout", Default: "42", Kind: KindInt, Min: 0, Max: 1013, Doc: "seconds a client waits for an unresponsive brick"},
		{Key: "network.frame-timeout", Default: "1800", Kind: KindInt, Min: 0, Max: 86400, Doc: "seconds before an unanswered call fails"},
		{Key: "network.inode-lru-limit", Default: "16384", Kind: KindInt, Min: 0, Max: 1048576, Doc: "inodes a brick keeps cached"},
		{Key: "nfs.disable", Default: "on", Kind: KindBool, Doc: "cais exports through its native protocol only"},
		{Key: "performance.cache-size", Default: "32MB", Kind: KindSize, Min: 0, Max: 32 << 30, Doc: "client read cache size"},
		{Key: "performance.cache-refresh-timeout", Default: "1", Kind: KindInt, Min: 0, Max: 61, Doc: "seconds cached data is trusted"},
		{Key: "performance.io-thread-count", Default: "16", Kind: KindInt, Min: 1, Max: 64, Doc: "brick worker threads"},
		{Key: "performance.client-io-threads", Default: "on", Kind: KindBool, Doc: "client worker threads"},
		{Key: "performance.write-behind", Default: "on", Kind: KindBool, Doc: "acknowledge writes before they reach the brick"},
		{Key: "performance.write-behind-window-size", Default: "4MB", Kind: KindSize, Min: 512 << 10, Max: 1 << 30, Doc: "write-behind buffer per file"},
		{Key: "performance.flush-behind", Default: "off", Kind: KindBool, Doc: "return from close before the data is on the bricks (GlusterFS's default is on; off, close reports write errors and a client that opens the file after the close sees the data)"},
		{Key: "performance.read-ahead", Default: "off", Kind: KindBool, Doc: "read ahead of sequential readers"},
		{Key: "performance.readdir-ahead", Default: "off", Kind: KindBool, Doc: "prefetch directory entries"},
		{Key: "performance.io-cache", Default: "off", Kind: KindBool, Doc: "client page cache"},
		{Key: "performance.quick-read", Default: "on", Kind: KindBool, Doc: "read small files with the lookup"},
		{Key: "performance.stat-prefetch", Default: "on", Kind: KindBool, Doc: "cache attributes on the client"},
		{Key: "performance.md-cache-timeout", Default: "600", Kind: KindInt, Min: 0, Max: 600, Doc: "seconds a mount's kernel keeps attributes and entries (1 when unset and features.cache-invalidation is off)"},
		{Key: "performance.parallel-readdir", Default: "off", Kind: KindBool, Doc: "read directories from all bricks at once"},
		{Key: "performance.nl-cache", Default: "off", Kind: KindBool, Doc: "cache negative lookups"},
		{Key: "server.allow-insecure", Default: "on", Kind: KindBool, Doc: "accepted for compatibility; cais always requires TLS"},
		{Key: "server.event-threads", Default: "2", Kind: KindInt, Min: 1, Max: 1024, Doc: "brick network threads"},
		{Key: "client.event-threads", Default: "2", Kind: KindInt, Min: 1, Max: 32, Doc: "client network threads"},
		{Key: "storage.owner-uid", Default: "-1", Kind: KindInt, Min: -1, Max: 2147483647, Doc: "owner of the brick roots"},
		{Key: "storage.owner-gid", Default: "-1", Kind: KindInt, Min: -1, Max: 2147483647, Doc: "group of the brick roots"},
		{Key: "storage.health-check-interval", Default: "30", Kind: KindInt, Min: 0, Max: 2147483647, Doc: "seconds between brick health checks (0 disables)"},
		{Key: "storage.reserve", Default: "1", Kind: KindPercentOrSize, Min: 0, Max: 100, Doc: "space kept free on each brick"},
		{Key: "storage.fips-mode-rchecksum", Default: "off", Kind: KindBool, Doc: "use SHA-256 for rchecksum"},
		{Key: "transport.address-family", Default: "inet", Kind: KindEnum, Enum: []string{"inet", "inet6"}, Doc: "address family of brick listeners"},
		{Key: "transport.listen-backlog", Default: "1024", Kind: KindInt, Min: 0, Max: 65535, Doc: "brick listen backlog"},
	}
}

// Options is the table of known volume options.
type Options struct {
	byKey map[string]OptionSpec
	keys  []string
}

// NewOptions returns the option table.
func NewOptions() *Options {
	o := &Options{byKey: map[string]OptionSpec{}}
	for _, s := range optionTable() {
		o.byKey[s.Key] = s
		o.keys = append(o.keys, s.Key)
	}
	sort.Strings(o.keys)
	return o
}

// Keys returns every known key, sorted.
func (o *Options) Keys() []string { return append([]string(nil), o.keys...) }

// Spec returns an option's description.
func (o *Options) Spec(key string) (OptionSpec, bool) {
	s, ok := o.byKey[key]
	return s, ok
}

// DefaultReconfigured are the options a new volume starts with, as
// GlusterFS sets them at creation, oldest first.
func DefaultReconfigured(l Layout) []Option {
	var out []Option
	if l.Replica > 1 {
		out = append(out, Option{Key: "performance.client-io-threads", Value: "off"})
	}
	out = append(out,
		Option{Key: "nfs.disable", Value: "on"},
		Option{Key: "transport.address-family", Value: "inet"},
		Option{Key: "storage.fips-mode-rchecksum", Value: "on"},
	)
	if l.Replica > 1 {
		out = append(out, Option{Key: "cluster.granular-entry-heal", Value: "on"})
	}
	return out
}

var (
	sizeRe    = regexp.MustCompile(`^(?i)([0-9]+)\s*(b|kb|k|mb|m|gb|g|tb|t|pb|p)?$`)
	userKeyRe = regexp.MustCompile(`^user\.[A-Za-z0-9_.\-]{1,200}$`)
)

// ParseSize parses sizes like 128KB, 32MB, 1G (binary multiples).
func ParseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%w: %q is not a size (examples: 4096, 128KB, 32MB, 1GB)", ErrInvalid, s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
	}
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "m": 20, "mb": 20, "g": 30, "gb": 30, "t": 40, "tb": 40, "p": 50, "pb": 50}[strings.ToLower(m[2])]
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
	}
	return n << shift, nil
}

// ParseBool accepts gluster's spellings of a boolean.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "on", "yes", "true", "enable", "1":
		return true, nil
	case "off", "no", "false", "disable", "0":
		return false, nil
	}
	return false, fmt.Errorf("%w: %q is not a boolean (use on or off)", ErrInvalid, s)
}

// Validate checks a key and value for `volume set` and returns the value in
// its canonical form. Keys under user.* are free-form, as in gluster.
func (o *Options) Validate(key, value string) (string, error) {
	if userKeyRe.MatchString(key) {
		if len(value) > 4096 || strings.ContainsAny(value, "\x00\n") {
			return "", fmt.Errorf("%w: value for %s is too long or has control characters", ErrInvalid, key)
		}
		return value, nil
	}
	s, ok := o.byKey[key]
	if !ok {
		return "", fmt.Errorf("%w: option : %s does not exist%s", ErrInvalid, key, o.suggest(key))
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: option %s %s: %q is not valid: %s", ErrInvalid, key, value, value, why)
	}
	switch s.Kind {
	case KindBool:
		b, err := ParseBool(value)
		if err != nil {
			return "", bad("use on or off")
		}
		if s.Default == "true" || s.Default == "false" {
			return strconv.FormatBool(b), nil
		}
		if b {
			return "on", nil
		}
		return "off", nil
	case KindInt:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return "", bad("not an integer")
		}
		if n < s.Min || n > s.Max {
			return "", bad(fmt.Sprintf("out of range %d to %d", s.Min, s.Max))
		}
		return strconv.FormatInt(n, 10), nil
	case KindSize:
		n, err := ParseSize(value)
		if err != nil {
			return "", bad("not a size (examples: 128KB, 32MB, 1GB)")
		}
		if n < s.Min || n > s.Max {
			return "", bad(fmt.Sprintf("out of range %d to %d bytes", s.Min, s.Max))
		}
		return value, nil
	case KindPercentOrSize:
		if p, ok := strings.CutSuffix(value, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || !(f >= float64(s.Min) && f <= float64(s.Max)) {
				return "", bad("percentage must be between 0% and 100%")
			}
			return value, nil
		}
		if _, err := ParseSize(value); err != nil {
			return "", bad("give a percentage like 10% or a size like 5GB")
		}
		return value, nil
	case KindEnum:
		for _, e := range s.Enum {
			if strings.EqualFold(e, value) {
				return e, nil
			}
		}
		return "", bad("use one of " + strings.Join(s.Enum, ", "))
	case KindLogLevel:
		switch v := strings.ToUpper(value); v {
		case "DEBUG", "WARNING", "ERROR", "INFO", "CRITICAL", "NONE", "TRACE":
			return v, nil
		}
		return "", bad("use DEBUG, INFO, WARNING, ERROR, CRITICAL, NONE or TRACE")
	case KindAddrList:
		for _, a := range strings.Split(value, ",") {
			a = strings.TrimSpace(a)
			if !validAddrPattern(a) {
				return "", bad(fmt.Sprintf("%q is not an address, a CIDR, a host name or a wildcard pattern", a))
			}
		}
		return value, nil
	default:
		if len(value) > 4096 || strings.ContainsAny(value, "\x00\n") {
			return "", bad("too long or has control characters")
		}
		return value, nil
	}
}

var hostPatternRe = regexp.MustCompile(`^[A-Za-z0-9*?.\-:\[\]]+$`)

func validAddrPattern(a string) bool {
	if a == "" {
		return false
	}
	if _, _, err := net.ParseCIDR(a); err == nil {
		return true
	}
	return hostPatternRe.MatchString(a)
}

// Resolve completes a key given without its section ("ping-timeout" for
// "network.ping-timeout") when exactly one key ends that way.
func (o *Options) Resolve(key string) string {
	if strings.Contains(key, ".") {
		return key
	}
	match := ""
	for _, k := range o.keys {
		if strings.HasSuffix(k, "."+key) {
			if match != "" {
				return key
			}
			match = k
		}
	}
	if match == "" {
		return key
	}
	return match
}

// suggest names the known key closest to an unknown one.
func (o *Options) suggest(key string) string {
	best, bestD := "", 4
	for _, k := range o.keys {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return "\nDid you mean " + best + "?"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Get returns an option's effective value for a volume and whether it was
// reconfigured.
func (o *Options) Get(v *Volume, key string) (string, bool, error) {
	if val, ok := v.Option(key); ok {
		return val, true, nil
	}
	if s, ok := o.byKey[key]; ok {
		// Replica sets change two defaults. Client quorum is "auto" for
		// every replica count (gluster leaves replica 2 at "none", which
		// lets both halves of a partitioned pair write: split-brain).
		switch {
		case key == "cluster.quorum-type" && v.Layout.Replica > 1:
			return "auto", false, nil
		case key == "cluster.quorum-type":
			return "none", false, nil
		case key == "performance.client-io-threads" && v.Layout.Replica > 1:
			return "off", false, nil
		}
		return s.Default, false, nil
	}
	return "", false, fmt.Errorf("%w: Option with name: %s does not exist", ErrNotFound, key)
}

// CheckOptionFor applies the rules that depend on the volume's layout and
// sets the option on v.
func CheckOptionFor(v *Volume, key, value string) error {
	replicate := v.Layout.Replica > 1
	switch key {
	case "cluster.quorum-count":
		n, _ := strconv.Atoi(value)
		if v.Layout.Replica > 1 && n > v.Layout.Replica {
			return fmt.Errorf("%w: %d in %s %d is out of range [1 - %d]", ErrInvalid, n, key, n, v.Layout.Replica)
		}
		fallthrough
	case "cluster.quorum-type", "cluster.self-heal-daemon", "cluster.heal-timeout", "cluster.data-self-heal",
		"cluster.metadata-self-heal", "cluster.entry-self-heal", "cluster.favorite-child-policy", "cluster.eager-lock":
		if !replicate {
			return fmt.Errorf("%w: Cannot set %s for a non-replicate volume.", ErrInvalid, key)
		}
	case "disperse.eager-lock", "disperse.background-heals":
		if v.Layout.Disperse == 0 {
			return fmt.Errorf("%w: Cannot set %s for a non-disperse volume.", ErrInvalid, key)
		}
	case "cluster.stripe-block-size":
		if v.Layout.Stripe < 2 {
			return fmt.Errorf("%w: Cannot set %s for a non-stripe volume.", ErrInvalid, key)
		}
	case "features.quota":
		return fmt.Errorf("%w: quota is turned on and off with 'volume quota VOLNAME enable|disable'", ErrInvalid)
	}
	v.SetOption(key, value)
	return nil
}
