// Package pool holds the rules of the trusted storage pool that do no I/O:
// the join token, the proofs exchanged while a node joins, how a brick's
// host names a pool member, and the voting-member policy for etcd.
//
// Joining works like this. A pool member prints the pool's token with
// `cais pool token`; the new node is started with `caisd --join-token TOKEN`
// and waits. `cais peer probe NEWNODE` on a member then:
//
//  1. connects to NEWNODE with its node certificate; NEWNODE checks that the
//     certificate chains to a CA whose fingerprint is the one in its token,
//     so it only ever joins the pool the administrator meant;
//  2. NEWNODE answers with a certificate request and Proof(secret, ...), an
//     HMAC that shows it holds the token's secret without sending it;
//  3. the member checks the proof, signs the certificate, adds NEWNODE to
//     etcd as a learner and sends it the certificate and the etcd cluster;
//     NEWNODE's TLS key is the key of its request, so the member pins it.
//
// Without the token the proof fails and the member refuses the node; a node
// started with another pool's token refuses the member.
package pool

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrBadToken is returned for a token that is not well formed.
var ErrBadToken = errors.New("malformed join token")

const tokenPrefix = "CAIS1"

var secretRe = regexp.MustCompile(`^[a-z2-7]{32}$`)

// Token is a pool's join token: the fingerprint of the pool's CA and a
// secret shared by the members.
type Token struct {
	CAFingerprint string // hex SHA-256 of the CA certificate
	Secret        string // 32 base32 characters
}

// NewSecret makes a fresh random secret.
func NewSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token secret: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b)), nil
}

// String renders the token as CAIS1-<fingerprint>-<secret>.
func (t Token) String() string {
	return tokenPrefix + "-" + t.CAFingerprint + "-" + t.Secret
}

// ParseToken parses and checks a token printed by String.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: expected %s-<fingerprint>-<secret> as printed by 'cais pool token'", ErrBadToken, tokenPrefix)
	}
	fp, secret := strings.ToLower(parts[1]), strings.ToLower(parts[2])
	if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size {
		return Token{}, fmt.Errorf("%w: the CA fingerprint is not 64 hex digits", ErrBadToken)
	}
	if !secretRe.MatchString(secret) {
		return Token{}, fmt.Errorf("%w: the secret is not 32 base32 characters", ErrBadToken)
	}
	if b, err := base32.StdEncoding.DecodeString(strings.ToUpper(secret)); err != nil || len(b) != 20 {
		return Token{}, fmt.Errorf("%w: the secret is not 32 base32 characters", ErrBadToken)
	}
	return Token{CAFingerprint: fp, Secret: secret}, nil
}

// Proof binds a joining node's identity and certificate request to the
// token's secret. Both sides compute it; only holders of the secret can.
func Proof(secret, nodeUUID string, csrPEM []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("cais-join-v1\x00"))
	m.Write([]byte(nodeUUID))
	m.Write([]byte{0})
	m.Write(csrPEM)
	return hex.EncodeToString(m.Sum(nil))
}

// CheckProof verifies a proof in constant time.
func CheckProof(secret, nodeUUID string, csrPEM []byte, proof string) bool {
	want := Proof(secret, nodeUUID, csrPEM)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(proof)))
}

// SameSecret compares two secrets in constant time.
func SameSecret(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }
