// Package events is the engine's event bus: what `docker events` streams.
//
// Any part of caisd that changes something a docker user sees publishes
// one [Message] with [Bus.Publish] (type, action, the object's ID and a
// few attributes): the engine for containers, execs, images and volumes,
// the network code for networks, the builder and registry pulls for
// images. The bus stamps the time, keeps the last [Keep] messages for
// clients that ask for past events (docker events --since) and hands each
// message to every subscriber; a subscriber that does not keep up loses
// messages rather than slowing the publisher.
//
// [Filter] is the pure part of GET /events: whether a message matches
// docker events --filter type=…, event=…, container=…, image=…,
// volume=…, network=…, label=….
package events
