package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/dockerfile"
	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/engine/jsonlog"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
	"github.com/cais-platform/cais/image/store"
)

// Options configure a Builder.
type Options struct {
	// Engine runs RUN steps; its image store receives the images.
	Engine *engine.Engine
	// Dir holds the builder's state: contexts being built, mounts of
	// COPY steps and the layer cache.
	Dir string
	Log *slog.Logger
}

// Builder builds images from Dockerfiles as Docker's classic builder
// does. Its methods are safe for concurrent use.
type Builder struct {
	e      *engine.Engine
	images *store.Store
	dir    string
	log    *slog.Logger
	cache  *cache
}

// New returns a Builder keeping its state in opts.Dir.
func New(opts Options) (*Builder, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b := &Builder{e: opts.Engine, images: opts.Engine.Images(), dir: opts.Dir, log: opts.Log, cache: &cache{dir: filepath.Join(opts.Dir, "cache")}}
	for _, d := range []string{b.dir, b.cache.dir, b.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("builder: %w", err)
		}
	}
	// Cache entries whose layers left the store can never hit again.
	if _, err := b.cache.prune(b.images, true); err != nil {
		b.log.Warn("cannot prune the build cache", "err", err)
	}
	// Leftovers of a crash: contexts and scratch mounts.
	ents, _ := os.ReadDir(b.tmpDir())
	for _, ent := range ents {
		p := filepath.Join(b.tmpDir(), ent.Name())
		unmountAll(p)
		os.RemoveAll(p)
	}
	return b, nil
}

func (b *Builder) tmpDir() string { return filepath.Join(b.dir, "tmp") }

// newTemp makes a fresh directory for one build's files.
func (b *Builder) newTemp(prefix string) (string, error) {
	return os.MkdirTemp(b.tmpDir(), prefix+"-")
}

// BuildOptions are docker build's options.
type BuildOptions struct {
	// Dockerfile is the Dockerfile's path in the context (default
	// "Dockerfile").
	Dockerfile string
	// Tags name the final image.
	Tags []reference.Reference
	// BuildArgs are --build-arg values.
	BuildArgs map[string]string
	// Labels are added to the final image (--label).
	Labels map[string]string
	// NoCache builds every step again.
	NoCache bool
	// Remove removes intermediate containers after a successful step
	// (--rm, default); ForceRemove removes them whatever happens.
	Remove, ForceRemove bool
	// Quiet prints only the image ID.
	Quiet bool
	// Target stops after the named stage.
	Target string
	// Host is the host config of RUN containers (memory, CPU, network).
	Host engine.HostConfig
	// MaxContext bounds the unpacked context (0: no bound).
	MaxContext int64
	// Pull fetches a base image into the store, writing progress lines to
	// out; nil when the builder cannot pull. A FROM or COPY --from image
	// missing from the store is pulled, and every one with AlwaysPull
	// (--pull).
	Pull       PullFunc
	AlwaysPull bool
}

// PullFunc fetches an image into the image store (docker pull).
type PullFunc func(ctx context.Context, ref reference.Reference, out io.Writer) error

// Job is a build whose context is received and whose Dockerfile parsed:
// what can fail before any output is streamed has been checked.
type Job struct {
	b       *Builder
	opts    BuildOptions
	tmp     string // the job's directory
	ctxDir  string // the unpacked context
	df      *dockerfile.Dockerfile
	ev      *dockerfile.Evaluator
	last    int      // the last stage to build
	added   []string // intermediate images made dangling for RUN, by ID
	created []string // intermediate containers not removed yet
	// latest is the last image a step made; after a failure it is kept
	// (untagged), as Docker keeps it, so that the steps before the
	// failing one stay in the cache.
	latest image
	failed bool
}

// Prepare receives the build context from r, reads the Dockerfile and
// checks it. Close the job when done.
func (b *Builder) Prepare(ctx context.Context, r io.Reader, opts BuildOptions) (*Job, error) {
	if opts.Dockerfile == "" {
		opts.Dockerfile = "Dockerfile"
	}
	tmp, err := b.newTemp("build")
	if err != nil {
		return nil, err
	}
	j := &Job{b: b, opts: opts, tmp: tmp, ctxDir: filepath.Join(tmp, "context")}
	if err := j.prepare(ctx, r); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

func (j *Job) prepare(ctx context.Context, r io.Reader) error {
	if err := os.Mkdir(j.ctxDir, 0o755); err != nil {
		return err
	}
	if err := ReceiveContext(ctx, r, j.ctxDir, j.opts.MaxContext); err != nil {
		return err
	}
	name := strings.TrimPrefix(filepath.ToSlash(filepath.Clean("/"+j.opts.Dockerfile)), "/")
	if climbs(j.opts.Dockerfile) && !filepath.IsAbs(j.opts.Dockerfile) {
		return fmt.Errorf("the Dockerfile (%s) must be within the build context: %w", j.opts.Dockerfile, errdefs.ErrInvalid)
	}
	if err := applyIgnore(j.ctxDir, name); err != nil {
		return err
	}
	f, err := openInRoot(j.ctxDir, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("Cannot locate specified Dockerfile: %s: %w", j.opts.Dockerfile, errdefs.ErrInvalid)
		}
		return err
	}
	defer f.Close()
	res, err := dockerfile.Parse(io.LimitReader(f, 4<<20))
	if err != nil {
		return err
	}
	df, err := dockerfile.ParseStages(res)
	if err != nil {
		return err
	}
	ev, err := dockerfile.NewEvaluator(df, j.opts.BuildArgs)
	if err != nil {
		return err
	}
	j.df, j.ev, j.last = df, ev, len(df.Stages)-1
	if j.opts.Target != "" {
		j.last = -1
		for i, st := range df.Stages {
			if strings.EqualFold(st.Name, j.opts.Target) {
				j.last = i
				break
			}
		}
		if j.last < 0 {
			return fmt.Errorf("failed to reach build target %s in Dockerfile: %w", j.opts.Target, errdefs.ErrInvalid)
		}
	}
	return nil
}

// Close removes the job's files and what the build left: intermediate
// images no name or container holds and, with ForceRemove, containers.
func (j *Job) Close() {
	ctx := context.Background()
	if j.opts.ForceRemove {
		for _, id := range j.created {
			j.b.e.Remove(ctx, id, engine.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if j.failed && j.latest.id != "" {
		if err := j.b.images.AddDangling(ctx, j.latest.target); err == nil {
			j.added = slices.DeleteFunc(j.added, func(id string) bool { return id == string(j.latest.id) })
		}
	}
	for _, id := range j.added {
		img, err := j.b.images.Find(id)
		if err != nil || len(img.Names) > 0 || len(j.b.e.ImageInUse(id)) > 0 {
			continue
		}
		j.b.images.DeleteImage(ctx, img.Target.Digest)
	}
	unmountAll(j.tmp)
	os.RemoveAll(j.tmp)
}

// image is an image being built: its config and layers, and once
// committed its manifest and ID. The zero image is scratch.
type image struct {
	config store.ImageConfig
	layers []ocispec.Descriptor
	target ocispec.Descriptor
	id     digest.Digest
	// raw is the config as committed: the image ID is its digest.
	raw []byte
}

// Result is a finished build.
type Result struct {
	// ID is the image ID, sha256:….
	ID digest.Digest
	// Tagged are the names given, familiar.
	Tagged []string
}

// StepError is a RUN step that failed; the message is Docker's and Code
// the command's exit code, which docker build exits with.
type StepError struct {
	Msg  string
	Code int
}

func (e *StepError) Error() string { return e.Msg }

// Run builds, writing the classic builder's progress ("Step 1/3 : …",
// " ---> 1a2b3c4d5e6f", the output of RUN steps) to out.
func (j *Job) Run(ctx context.Context, out io.Writer) (Result, error) {
	res, err := j.run(ctx, out)
	j.failed = err != nil
	return res, err
}

func (j *Job) run(ctx context.Context, out io.Writer) (Result, error) {
	progress := out
	if j.opts.Quiet {
		progress = io.Discard
	}
	total := len(j.df.MetaArgs)
	for i := 0; i <= j.last; i++ {
		total += 1 + len(j.df.Stages[i].Instructions)
	}
	if len(j.opts.Labels) > 0 {
		total++
	}
	n := 0
	for _, a := range j.df.MetaArgs {
		n++
		fmt.Fprintf(progress, "Step %d/%d : %s\n", n, total, a.Source().Original)
	}
	stages := make([]image, j.last+1)
	for i := 0; i <= j.last; i++ {
		st := j.df.Stages[i]
		n++
		fmt.Fprintf(progress, "Step %d/%d : %s\n", n, total, st.Node.Original)
		base, err := j.base(ctx, progress, i, stages)
		if err != nil {
			return Result{}, err
		}
		plan, err := j.ev.Eval(i, base.config.Config)
		if err != nil {
			return Result{}, err
		}
		// The base image's ONBUILD triggers come first, as part of FROM;
		// the ID FROM shows is the image after them.
		triggers := len(plan.Steps) - len(st.Instructions)
		switch {
		case triggers == 0 && base.id != "":
			fmt.Fprintf(progress, " ---> %s\n", engine.ShortID(string(base.id)))
		case triggers == 1:
			fmt.Fprintf(progress, "# Executing 1 build trigger\n")
		case triggers > 1:
			fmt.Fprintf(progress, "# Executing %d build triggers\n", triggers)
		}
		cur := base
		steps := plan.Steps
		if i == j.last && len(j.opts.Labels) > 0 {
			steps = append(steps, labelStep(steps, plan, j.opts.Labels))
		}
		for k := range steps {
			step := &steps[k]
			if k >= triggers {
				n++
				fmt.Fprintf(progress, "Step %d/%d : %s\n", n, total, step.Node.Original)
			}
			next, err := j.step(ctx, progress, cur, plan, step, stages)
			if err != nil {
				return Result{}, err
			}
			cur, j.latest = next, next
			fmt.Fprintf(progress, " ---> %s\n", engine.ShortID(string(cur.id)))
		}
		if cur.id == "" {
			// FROM scratch and nothing else: an image with no layers.
			next, err := j.commit(ctx, cur, plan, nil, nil, "")
			if err != nil {
				return Result{}, err
			}
			cur = next
		}
		stages[i] = cur
		if i != j.last {
			// Docker's classic builder keeps each stage's image.
			if err := j.b.images.AddDangling(ctx, cur.target); err != nil {
				return Result{}, err
			}
		}
	}
	final := stages[j.last]
	res := Result{ID: final.id}
	if len(j.opts.Tags) == 0 {
		if err := j.b.images.AddDangling(ctx, final.target); err != nil {
			return res, err
		}
	}
	for _, t := range j.opts.Tags {
		if err := j.b.images.Tag(ctx, t, final.target); err != nil {
			return res, err
		}
	}
	if unused := j.ev.UnusedArgs(); len(unused) > 0 {
		fmt.Fprintf(progress, "[Warning] One or more build-args %v were not consumed\n", unused)
	}
	if j.opts.Quiet {
		fmt.Fprintf(out, "%s\n", final.id)
		return res, nil
	}
	fmt.Fprintf(out, "Successfully built %s\n", engine.ShortID(string(final.id)))
	for _, t := range j.opts.Tags {
		res.Tagged = append(res.Tagged, t.Familiar())
		fmt.Fprintf(out, "Successfully tagged %s\n", t.Familiar())
	}
	return res, nil
}

// labelStep is the LABEL step --label adds at the end of the build.
func labelStep(steps []dockerfile.Step, plan *dockerfile.StagePlan, labels map[string]string) dockerfile.Step {
	cfg := plan.Config.Clone()
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	var parts []string
	for _, k := range sortedKeys(labels) {
		cfg.Labels[k] = labels[k]
		parts = append(parts, fmt.Sprintf("%q=%q", k, labels[k]))
	}
	plan.Config = cfg
	text := "LABEL " + strings.Join(parts, " ")
	return dockerfile.Step{Kind: dockerfile.StepConfig, Node: &dockerfile.Node{Cmd: "label", Original: text}, CreatedBy: "/bin/sh -c #(nop) " + text, Config: cfg}
}

// base resolves stage i's FROM: an earlier stage, scratch or a stored
// image.
func (j *Job) base(ctx context.Context, out io.Writer, i int, stages []image) (image, error) {
	name, _, stage, err := j.ev.Base(i)
	if err != nil {
		return image{}, err
	}
	if stage >= 0 {
		return stages[stage], nil
	}
	if strings.EqualFold(name, "scratch") {
		return image{config: store.ImageConfig{Architecture: runtime.GOARCH, OS: "linux", RootFS: ocispec.RootFS{Type: "layers"}}}, nil
	}
	return j.load(ctx, out, name)
}

// load finds an image for FROM or COPY --from: in the store, or pulled
// when it is not there (always with --pull).
func (j *Job) load(ctx context.Context, out io.Writer, name string) (image, error) {
	if j.opts.Pull != nil && (j.opts.AlwaysPull || !j.b.has(name)) {
		if ref, err := reference.ParseNormalized(name); err == nil {
			if err := j.opts.Pull(ctx, ref.WithDefaultTag(), out); err != nil {
				return image{}, err
			}
			return j.b.load(ref.WithDefaultTag().String())
		}
	}
	return j.b.load(name)
}

// has reports whether the store holds the image name names.
func (b *Builder) has(name string) bool {
	_, err := b.images.Find(name)
	return err == nil
}

// load reads a stored image.
func (b *Builder) load(name string) (image, error) {
	img, err := b.images.Find(name)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			ref := name
			if r, perr := reference.ParseNormalized(name); perr == nil {
				ref = r.Familiar()
			}
			return image{}, fmt.Errorf("No such image: %s: %w", ref, errdefs.ErrNotFound)
		}
		return image{}, err
	}
	return b.loadTarget(img.Target)
}

func (b *Builder) loadTarget(target ocispec.Descriptor) (image, error) {
	_, m, err := b.images.Manifest(target)
	if err != nil {
		return image{}, err
	}
	cfg, err := b.images.Config(m)
	if err != nil {
		return image{}, err
	}
	raw, err := readBlob(b.images, m.Config.Digest)
	if err != nil {
		return image{}, err
	}
	return image{config: cfg, layers: m.Layers, target: target, id: m.Config.Digest, raw: raw}, nil
}

// step performs one step on cur, from the cache when it can.
func (j *Job) step(ctx context.Context, out io.Writer, cur image, plan *dockerfile.StagePlan, step *dockerfile.Step, stages []image) (image, error) {
	var copySum string
	var src *copySource
	if step.Kind == dockerfile.StepCopy {
		var err error
		src, err = j.copySources(ctx, out, step.Copy, stages)
		if err != nil {
			return image{}, err
		}
		defer src.close()
		if copySum, err = src.checksum(ctx); err != nil {
			return image{}, err
		}
	}
	key := cacheKey(cur.id, step, copySum)
	if !j.opts.NoCache {
		if hit, ok := j.b.cache.get(ctx, j.b.images, key); ok {
			fmt.Fprintf(out, " ---> Using cache\n")
			return hit, nil
		}
	}
	var next image
	var err error
	switch step.Kind {
	case dockerfile.StepRun:
		next, err = j.runStep(ctx, out, cur, plan, step)
	case dockerfile.StepCopy:
		next, err = j.snapshot(ctx, cur, plan, step, func(root string) error { return j.copyInto(ctx, root, step.Copy, src) })
	case dockerfile.StepWorkdir:
		// Docker makes the directory through a container of the image.
		j.nopContainer(ctx, out, cur, step)
		next, err = j.snapshot(ctx, cur, plan, step, func(root string) error { return makeDir(ctx, root, step.Config.WorkingDir) })
	default:
		next, err = j.metadata(ctx, out, cur, plan, step)
	}
	if err != nil {
		return image{}, err
	}
	j.b.cache.put(key, next)
	return next, nil
}

// metadata commits a step that changes only the config.
func (j *Job) metadata(ctx context.Context, out io.Writer, cur image, plan *dockerfile.StagePlan, step *dockerfile.Step) (image, error) {
	j.nopContainer(ctx, out, cur, step)
	return j.commit(ctx, cur, plan, step, nil, "")
}

// nopContainer makes and removes the container Docker's classic builder
// makes for a step that runs nothing ("Running in …"), when there is an
// image to make it from.
func (j *Job) nopContainer(ctx context.Context, out io.Writer, cur image, step *dockerfile.Step) {
	if cur.id == "" || j.registered(ctx, cur) != nil {
		return
	}
	cmd := []string{"/bin/sh", "-c", "#(nop) " + strings.TrimPrefix(step.CreatedBy, "/bin/sh -c #(nop) ")}
	id, _, err := j.b.e.Create(ctx, engine.CreateRequest{Config: engine.Config{Image: string(cur.id), Cmd: cmd, Entrypoint: []string{""}}, HostConfig: j.opts.Host})
	if err != nil {
		return
	}
	fmt.Fprintf(out, " ---> Running in %s\n", engine.ShortID(id))
	j.removeContainer(ctx, out, id, true)
}

// removeContainer removes an intermediate container after its step (with
// --rm, or always with --force-rm).
func (j *Job) removeContainer(ctx context.Context, out io.Writer, id string, ok bool) {
	if !(ok && j.opts.Remove) && !j.opts.ForceRemove {
		j.created = append(j.created, id)
		return
	}
	if err := j.b.e.Remove(context.WithoutCancel(ctx), id, engine.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		fmt.Fprintf(out, "Error removing intermediate container %s: %v\n", engine.ShortID(id), errdefs.Message(err))
		return
	}
	fmt.Fprintf(out, " ---> Removed intermediate container %s\n", engine.ShortID(id))
}

// registered makes sure the engine can find cur to make a container of
// it: an intermediate image is recorded as dangling until the job ends.
func (j *Job) registered(ctx context.Context, cur image) error {
	if _, err := j.b.images.Find(string(cur.id)); err == nil {
		return nil
	}
	if err := j.b.images.AddDangling(ctx, cur.target); err != nil {
		return err
	}
	j.added = append(j.added, string(cur.id))
	return nil
}

// runStep performs a RUN step: a container of cur runs the command with the
// step's environment, its output streamed to out, and what it changed
// becomes a layer.
func (j *Job) runStep(ctx context.Context, out io.Writer, cur image, plan *dockerfile.StagePlan, step *dockerfile.Step) (image, error) {
	if cur.id == "" {
		return image{}, &StepError{Msg: fmt.Sprintf("The command '%s' cannot run: the image is empty (FROM scratch) and has no shell or binaries", strings.Join(step.Args, " ")), Code: 1}
	}
	if err := j.registered(ctx, cur); err != nil {
		return image{}, err
	}
	cfg := engine.Config{
		Image: string(cur.id), Cmd: step.Args, Entrypoint: []string{""}, Env: step.Env,
		WorkingDir: step.Config.WorkingDir, User: step.Config.User, AttachStdout: true, AttachStderr: true,
	}
	id, _, err := j.b.e.Create(ctx, engine.CreateRequest{Config: cfg, HostConfig: j.opts.Host})
	if err != nil {
		return image{}, err
	}
	fmt.Fprintf(out, " ---> Running in %s\n", engine.ShortID(id))
	logsDone := make(chan error, 1)
	go func() {
		logsDone <- j.b.e.Logs(ctx, id, engine.LogsOptions{Stdout: true, Stderr: true, Follow: true, Tail: -1}, func(en jsonlog.Entry) error {
			_, err := io.WriteString(out, en.Log)
			return err
		})
	}()
	st, err := j.runContainer(ctx, id)
	<-logsDone
	if err == nil && st.ExitCode != 0 {
		err = &StepError{Msg: fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(step.Args, " "), st.ExitCode), Code: st.ExitCode}
	}
	if err != nil {
		if ctx.Err() != nil {
			// A cancelled build leaves no container behind.
			j.b.e.Remove(context.WithoutCancel(ctx), id, engine.RemoveOptions{Force: true, RemoveVolumes: true})
			return image{}, err
		}
		j.removeContainer(ctx, out, id, false)
		return image{}, err
	}
	lowers, err := j.b.images.Layers(ctx, cur.target)
	if err != nil {
		j.removeContainer(ctx, out, id, false)
		return image{}, err
	}
	layer, diffID, err := j.b.packDiff(ctx, filepath.Join(j.b.e.Dir(id), "upper"), j.tmp, diffOptions{container: true, lowers: lowers})
	if err != nil {
		j.removeContainer(ctx, out, id, false)
		return image{}, err
	}
	next, err := j.commit(ctx, cur, plan, step, layer, diffID)
	j.removeContainer(ctx, out, id, err == nil)
	return next, err
}

// runContainer starts a container and waits for it to end; cancelling ctx
// kills it.
func (j *Job) runContainer(ctx context.Context, id string) (engine.State, error) {
	if err := j.b.e.Start(ctx, id); err != nil {
		return engine.State{}, err
	}
	st, err := j.b.e.Wait(ctx, id, "", nil)
	if err != nil {
		kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		j.b.e.Stop(kctx, id, new(int), "")
		return st, fmt.Errorf("build cancelled: %w", err)
	}
	if st.Error != "" && st.ExitCode == 128 {
		return st, errors.New(st.Error)
	}
	return st, nil
}

// commit writes the image of cur after step: the step's config, a
// history entry and, when the step changed files, its layer.
func (j *Job) commit(ctx context.Context, cur image, plan *dockerfile.StagePlan, step *dockerfile.Step, layer *ocispec.Descriptor, diffID digest.Digest) (image, error) {
	now := time.Now().UTC().Truncate(time.Second)
	next := image{config: cur.config, layers: append([]ocispec.Descriptor(nil), cur.layers...)}
	next.config.Created = &now
	next.config.RootFS.Type = "layers"
	next.config.RootFS.DiffIDs = append([]digest.Digest(nil), cur.config.RootFS.DiffIDs...)
	next.config.History = append([]ocispec.History(nil), cur.config.History...)
	if next.config.OS == "" {
		next.config.OS, next.config.Architecture = "linux", runtime.GOARCH
	}
	if plan.Author != "" {
		next.config.Author = plan.Author
	}
	if step != nil {
		next.config.Config = step.Config.Clone()
		h := ocispec.History{Created: &now, CreatedBy: step.CreatedBy, Author: plan.Author, EmptyLayer: layer == nil}
		next.config.History = append(next.config.History, h)
	}
	if layer != nil {
		next.layers = append(next.layers, *layer)
		next.config.RootFS.DiffIDs = append(next.config.RootFS.DiffIDs, diffID)
	}
	raw, err := json.Marshal(next.config)
	if err != nil {
		return image{}, err
	}
	return commitRaw(ctx, j.b.images, raw, next.layers)
}

// commitRaw writes an image config as given and its manifest.
func commitRaw(ctx context.Context, s *store.Store, raw []byte, layers []ocispec.Descriptor) (image, error) {
	target, err := s.Commit(ctx, raw, layers, true)
	if err != nil {
		return image{}, err
	}
	var cfg store.ImageConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return image{}, err
	}
	return image{config: cfg, layers: layers, target: target, id: digest.FromBytes(raw), raw: raw}, nil
}

// readBlob reads a small blob (a config) whole.
func readBlob(s *store.Store, d digest.Digest) ([]byte, error) {
	f, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 8<<20))
}
