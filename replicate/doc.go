// Package replicate is the client layer that mirrors every change over
// the bricks of a replica set, as GlusterFS's AFR does, and heals a brick
// that missed changes.
//
// # Changelogs
//
// Each file on each brick carries a changelog (fop.ChangelogXattr):
// counters in triples for data, metadata and entry (names in a directory)
// changes. Triple 0 is "dirty": a change is in flight. Triple 1+j is
// "pending for j": this brick knows brick j missed changes. A writer marks
// the file dirty on every brick before its first write and clears it when
// it closes the file; when a brick fails an operation that others did,
// the others add to their pending counters for it. From the changelogs of
// all bricks, Decide (pure) tells which bricks are sources, which are
// sinks to heal, and whether the set is in split-brain: every brick
// blamed by another.
//
// # Quorum
//
// A change is done only while a quorum of the set is up (GlusterFS's
// "auto" rule: more than half of the bricks, or exactly half including
// the first), so two halves of a partitioned set never both accept
// writes. Arbiter bricks hold names, metadata and changelogs but no data:
// they count for quorum and as witnesses, never as a data source.
//
// # Locks
//
// Writers hold a shared lock on the file on every brick while they have it
// open for writing (taken with the first write's changelog update). The
// self-heal takes an exclusive lock, which it only gets when no writer has
// the file open, so a heal never copies data under a write in flight.
//
// # Heal
//
// Heal looks the file up on every brick, decides, and copies from a
// source to the sinks: missing names (entry heal), ownership, mode, times
// and extended attributes (metadata heal), and contents (data heal), then
// subtracts what it healed from the changelogs. The self-heal daemon runs
// Heal on the files the bricks' indexes name.
package replicate
