package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/secrets"
	"github.com/gatehouse-dev/gatehouse/store"
)

// certKV adapts the store to proxy.CertKV, sealing certmagic's files under
// the master key: they include the certificates' private keys and the ACME
// account key, which must not be readable in a copied data_dir or a Redis
// dump. With Redis, every replica shares them (and certmagic's locks), so
// two replicas never order the same certificate twice.
type certKV struct {
	st store.Store
	kr *secrets.Keyring
}

var _ proxy.CertKV = certKV{}

// certPurpose binds a sealed value to its key, so that one file's sealed
// value cannot be moved to another key (a certificate's key swapped in for
// an account key). Keys longer than a purpose may be are hashed.
func certPurpose(key string) string {
	p := "certmagic:" + key
	if len(p) <= 200 {
		return p
	}
	h := sha256.Sum256([]byte(key))
	return "certmagic#" + hex.EncodeToString(h[:])
}

func (c certKV) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := c.st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	if err != nil || !strings.HasPrefix(key, proxy.CertDataPrefix) {
		return v, err
	}
	plain, err := c.kr.Open(certPurpose(key), v)
	if err != nil {
		return nil, fmt.Errorf("certificate storage %s: %w", key, err)
	}
	return plain, nil
}

func (c certKV) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if strings.HasPrefix(key, proxy.CertDataPrefix) {
		sealed, err := c.kr.Seal(certPurpose(key), value)
		if err != nil {
			return err
		}
		value = sealed
	}
	return c.st.Set(ctx, key, value, ttl)
}

func (c certKV) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if strings.HasPrefix(key, proxy.CertDataPrefix) {
		return false, errors.New("certificate storage: SetNX on a sealed file") // proxy uses it for locks only
	}
	return c.st.SetNX(ctx, key, value, ttl)
}

func (c certKV) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	if strings.HasPrefix(key, proxy.CertDataPrefix) {
		return false, errors.New("certificate storage: CompareAndSwap on a sealed file") // locks only
	}
	return c.st.CompareAndSwap(ctx, key, old, new, ttl)
}

func (c certKV) Delete(ctx context.Context, key string) error { return c.st.Delete(ctx, key) }

func (c certKV) Keys(ctx context.Context, prefix string) ([]string, error) {
	kvs, err := c.st.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = kv.Key
	}
	return keys, nil
}
