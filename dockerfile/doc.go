// Package dockerfile parses Dockerfiles and evaluates them into build
// plans, without doing any I/O: the builder that runs containers and
// commits layers (package builder) performs the steps this package returns.
//
// Three layers, each usable alone:
//
//  1. [Parse] reads the text: parser directives at the top ("# escape=`",
//     "# syntax=…"), comments, line continuations with the escape token
//     (comments and empty lines inside a continuation are dropped, the
//     latter with Docker's warning), instruction keywords in any case, the
//     leading --flags, and each instruction's argument shape: the exec
//     (JSON array) or shell form of RUN, CMD, ENTRYPOINT and HEALTHCHECK
//     CMD (a malformed JSON array is the shell form, as in Docker); JSON
//     or words for COPY, ADD and VOLUME; "k=v" pairs or the legacy "k v"
//     for ENV and LABEL; ONBUILD's nested instruction. An unknown keyword
//     fails as the classic builder fails: "dockerfile parse error line 3:
//     unknown instruction: FOO", the line being where the instruction
//     starts.
//  2. [ParseStages] types the instructions ([RunCmd], [CopyCmd], …), checks
//     their arguments and flags with Docker's messages ("COPY requires at
//     least two arguments", "Unknown flag: foo", "FROM requires either one
//     or three arguments") and groups them into stages, each opened by a
//     FROM [--platform=…] image [AS name]. ARGs before the first FROM are
//     meta arguments, visible to FROM lines only.
//  3. An [Evaluator] expands variables ([Expand]: $V, ${V}, ${V:-default},
//     ${V:+alt}, ${V-d}, ${V+a}, ${V:?msg}, quotes and escapes) in the
//     instructions Docker expands (ADD, COPY, ENV, EXPOSE, FROM, LABEL,
//     STOPSIGNAL, USER, VOLUME, WORKDIR, ARG; not RUN, CMD, ENTRYPOINT,
//     whose shell does it), applies --build-arg values to ARGs (and the
//     automatic TARGETARCH, BUILDPLATFORM, … for this machine), tracks the
//     image config (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts,
//     Volumes, Labels, StopSignal, Healthcheck, Shell, OnBuild) and returns
//     a [StagePlan]: the steps to run (RUN with its argv and environment,
//     COPY/ADD with sources, absolute destination and --from resolved to a
//     stage or an image, WORKDIR to make) and the config after each.
//
// A build then goes: Parse, ParseStages, NewEvaluator; for each stage the
// builder resolves [Evaluator.Base], fetches that image's config, calls
// [Evaluator.Eval] with it, and performs the steps, using each step's
// CreatedBy and Config for history and the layer cache.
package dockerfile
