// Package secrets seals Gatehouse's private keys at rest (the SSH CAs and
// host key, the assertion signing keys, the cookie key ring) under a master
// key read from a file, with AES-256-GCM from the standard library.
//
// It is its own package, importing only the standard library, because
// every package that keeps a key (sshgw, assertion, identity, recording)
// needs it and none of them may import the others: a tiny leaf package is
// the one home all of them can share. Vault keeps named keys sealed in a
// Backend (files in a directory, or the store through cmd/gatehouse), so
// the SSH CAs and recording keys are shared by replicas on Redis.
//
// A sealed value is
//
//	"GHS" | version (1) | key ID (8) | nonce (12) | GCM ciphertext and tag
//
// where the key ID names the master key (a hash of it, so a copied value
// says which key file opens it without revealing the key). The additional
// data binds the header and a purpose string naming what is sealed, so a
// sealed CA key cannot be swapped in for a sealed cookie key ring.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// KeySize is the length of a master key in bytes (AES-256).
const KeySize = 32

const (
	version   = 1
	idLen     = 8
	nonceLen  = 12
	hdrLen    = len(magic) + 1 + idLen
	sealedMin = hdrLen + nonceLen + 16
	// maxPurpose bounds the purpose label; purposes are short constants.
	maxPurpose = 256
)

// magic starts every sealed value, so plaintext stored by older releases
// (JSON, PEM) is told apart from sealed bytes without guessing.
const magic = "GHS"

// Errors callers distinguish; test with errors.Is.
var (
	// ErrUnknownKey: the value was sealed with a master key this keyring
	// does not hold (add the old key to previous_master_key_files).
	ErrUnknownKey = errors.New("secrets: sealed with a master key that is not configured")
	// ErrOpen: the value is malformed, tampered with, or sealed for
	// another purpose.
	ErrOpen = errors.New("secrets: cannot open sealed value (tampered, or sealed for another purpose)")
)

// Keyring holds the current master key and any previous ones. It seals
// with the current key and opens with any. It is immutable and safe for
// concurrent use.
type Keyring struct {
	keys []masterKey // keys[0] seals
}

type masterKey struct {
	id   [idLen]byte
	aead cipher.AEAD
}

// New returns a keyring over raw master keys, the first of which seals.
// Each must be KeySize bytes; duplicates are refused (they would be a
// configuration mistake, such as listing the current key as previous).
func New(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secrets: no master key")
	}
	kr := &Keyring{}
	for i, raw := range keys {
		if len(raw) != KeySize {
			return nil, fmt.Errorf("secrets: master key %d has %d bytes, want %d", i, len(raw), KeySize)
		}
		blk, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		aead, err := cipher.NewGCM(blk)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		mk := masterKey{id: keyID(raw), aead: aead}
		for _, o := range kr.keys {
			if o.id == mk.id {
				return nil, fmt.Errorf("secrets: master key %d is listed twice", i)
			}
		}
		kr.keys = append(kr.keys, mk)
	}
	return kr, nil
}

// keyID derives a key's public name: a domain-separated SHA-256 of the
// key, truncated. It identifies, it does not protect.
func keyID(raw []byte) [idLen]byte {
	h := sha256.Sum256(append([]byte("gatehouse master key id\x00"), raw...))
	var id [idLen]byte
	copy(id[:], h[:])
	return id
}

// Seal encrypts plaintext for purpose with the current master key.
func (k *Keyring) Seal(purpose string, plaintext []byte) ([]byte, error) {
	if err := checkPurpose(purpose); err != nil {
		return nil, err
	}
	mk := k.keys[0]
	out := make([]byte, hdrLen+nonceLen, hdrLen+nonceLen+len(plaintext)+16)
	copy(out, magic)
	out[len(magic)] = version
	copy(out[len(magic)+1:hdrLen], mk.id[:])
	if _, err := rand.Read(out[hdrLen:]); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return mk.aead.Seal(out, out[hdrLen:], plaintext, additionalData(purpose, out[:hdrLen])), nil
}

// Open decrypts a value sealed for purpose with any key of the ring. It
// fails with ErrUnknownKey or ErrOpen; it never panics on any input.
func (k *Keyring) Open(purpose string, sealed []byte) ([]byte, error) {
	if err := checkPurpose(purpose); err != nil {
		return nil, err
	}
	if !IsSealed(sealed) || len(sealed) < sealedMin {
		return nil, ErrOpen
	}
	mk, ok := k.find(sealed)
	if !ok {
		return nil, ErrUnknownKey
	}
	plain, err := mk.aead.Open(nil, sealed[hdrLen:hdrLen+nonceLen], sealed[hdrLen+nonceLen:], additionalData(purpose, sealed[:hdrLen]))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Current reports whether sealed was sealed with the current master key,
// so that rekey rewrites only what an older key sealed.
func (k *Keyring) Current(sealed []byte) bool {
	return IsSealed(sealed) && len(sealed) >= hdrLen && bytes.Equal(sealed[len(magic)+1:hdrLen], k.keys[0].id[:])
}

// Reseal returns b sealed with the current key, and whether it changed: a
// value sealed with a previous key is opened and sealed again, plaintext
// (from before sealing existed) is sealed, a current value is returned as
// is. It is how migration and rekey share one rule.
func (k *Keyring) Reseal(purpose string, b []byte) ([]byte, bool, error) {
	if k.Current(b) {
		if _, err := k.Open(purpose, b); err != nil {
			return nil, false, err
		}
		return b, false, nil
	}
	plain := b
	if IsSealed(b) {
		var err error
		if plain, err = k.Open(purpose, b); err != nil {
			return nil, false, err
		}
	}
	out, err := k.Seal(purpose, plain)
	return out, err == nil, err
}

func (k *Keyring) find(sealed []byte) (masterKey, bool) {
	id := sealed[len(magic)+1 : hdrLen]
	for _, mk := range k.keys {
		if bytes.Equal(mk.id[:], id) {
			return mk, true
		}
	}
	return masterKey{}, false
}

// IsSealed reports whether b starts like a sealed value of this version.
// Plaintext that older releases stored (JSON objects, PEM) never does.
func IsSealed(b []byte) bool {
	return len(b) > len(magic) && string(b[:len(magic)]) == magic && b[len(magic)] == version
}

func checkPurpose(p string) error {
	if p == "" || len(p) > maxPurpose {
		return errors.New("secrets: purpose must be a non-empty label")
	}
	return nil
}

// additionalData binds a domain label, the length-prefixed purpose and the
// header, so neither the purpose nor the key ID can be changed unnoticed.
func additionalData(purpose string, hdr []byte) []byte {
	ad := make([]byte, 0, 32+len(purpose)+len(hdr))
	ad = append(ad, "gatehouse-secret\x00"...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(purpose)))
	ad = append(ad, purpose...)
	return append(ad, hdr...)
}
