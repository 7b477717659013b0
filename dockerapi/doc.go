// Package dockerapi serves the Docker Engine API over an engine.Engine,
// so the stock docker CLI works against caisd (DOCKER_HOST=unix://…).
//
// Requests may carry a /vX.Y prefix between the minimum (1.24) and
// APIVersion; every response carries Docker's Api-Version, Ostype and
// Docker-Experimental headers, and /_ping adds Builder-Version, which the
// CLI reads to negotiate. Errors are {"message": …} with the status of
// the error's kind (errdefs: 404 not found, 409 conflict, 400 bad
// parameter, 304 for a start or stop that changes nothing).
//
// Attach and exec take over the connection (HTTP 101 UPGRADED when the
// client asks for the upgrade, as the CLI does): without a terminal the
// output is multiplexed with package mux's 8-byte headers, with one it is
// raw; a client's half-close is the end of the container's stdin. The
// wait endpoint sends its headers as soon as the wait is set up, as
// docker run needs before it starts the container.
package dockerapi
