package sshgw

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// The SSH algorithms the gateway offers and uses toward targets: hybrid
// ML-KEM and curve25519 key exchange, AES-GCM only (x/crypto's
// chacha20-poly1305 for SSH has no amd64 assembly and halves throughput;
// CTR modes need a separate MAC) and encrypt-then-MAC SHA-2 MACs (unused
// with GCM, listed for completeness).
var (
	kexAlgos = []string{
		gossh.KeyExchangeMLKEM768X25519,
		gossh.KeyExchangeCurve25519,
		"curve25519-sha256@libssh.org",
	}
	serverCiphers = []string{gossh.CipherAES256GCM, gossh.CipherAES128GCM}
	// clientCiphers prefers AES-128-GCM toward targets: same security
	// margin for session keys, fewer rounds.
	clientCiphers = []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM}
	macAlgos      = []string{gossh.HMACSHA256ETM, gossh.HMACSHA512ETM}
	// userKeyAlgos are the client public key algorithms accepted: no
	// SHA-1 RSA signatures, no DSA.
	userKeyAlgos = []string{
		gossh.KeyAlgoED25519, gossh.KeyAlgoSKED25519,
		gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521, gossh.KeyAlgoSKECDSA256,
		gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256,
	}
	// hostCertAlgos are the host key algorithms asked of a target whose
	// host key is certified by a host CA: certificates only, so a target
	// cannot fall back to a bare key.
	hostCertAlgos = []string{
		gossh.CertAlgoED25519v01, gossh.CertAlgoECDSA256v01, gossh.CertAlgoECDSA384v01,
		gossh.CertAlgoECDSA521v01, gossh.CertAlgoRSASHA512v01, gossh.CertAlgoRSASHA256v01,
	}
)

// cryptoConfig returns the algorithm settings shared by both directions.
func cryptoConfig(ciphers []string) gossh.Config {
	return gossh.Config{KeyExchanges: kexAlgos, Ciphers: ciphers, MACs: macAlgos}
}

// hostKeyAlgos returns the host key algorithms that select key k's type
// during key exchange (for a pinned target host key).
func hostKeyAlgos(k gossh.PublicKey) []string {
	if k.Type() == gossh.KeyAlgoRSA {
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256}
	}
	return []string{k.Type()}
}

// Certificate lifetimes.
const (
	// hostCertLife is how long a host certificate made for one connection
	// stays valid (it is made again for each connection).
	hostCertLife = 24 * time.Hour
	// userCertBackdate and userCertLife bound the per-connection user
	// certificate: it only has to survive the login to the target.
	userCertBackdate = time.Minute
	userCertLife     = 5 * time.Minute
)

// hostCertSigner returns a signer that presents key's public key as a host
// certificate for principals, signed by ca.
func hostCertSigner(key, ca gossh.Signer, principals []string, now time.Time) (gossh.Signer, error) {
	cert := &gossh.Certificate{
		Key:             key.PublicKey(),
		Serial:          randomSerial(),
		CertType:        gossh.HostCert,
		KeyId:           "gatehouse-host:" + principals[0],
		ValidPrincipals: principals,
		ValidAfter:      uint64(now.Add(-5 * time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(hostCertLife).Unix()),
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, fmt.Errorf("sign host certificate: %w", err)
	}
	return gossh.NewCertSigner(cert, key)
}

// randomSerial returns a random certificate serial number.
func randomSerial() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return binary.BigEndian.Uint64(b[:])
}
