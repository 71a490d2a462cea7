package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// benchPassword is the Dex password of benchUser.
const benchPassword = "bench-password"

// dexClient is one OAuth client registered in Dex.
type dexClient struct {
	ID           string   `json:"id"`
	Secret       string   `json:"secret"`
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirectURIs"`
}

// startDex runs Dex over HTTPS with benchUser as a static password user.
// Only oauth2-proxy logs in through it; Gatehouse's sessions are minted
// (see mintSession), but its config names Dex as the issuer.
func startDex(dir, bin string, port int, certFile, keyFile string, clients []dexClient, c *http.Client) (*proc, string, error) {
	issuer := fmt.Sprintf("https://127.0.0.1:%d/dex", port)
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), 10)
	if err != nil {
		return nil, "", err
	}
	cfg := map[string]any{
		"issuer":  issuer,
		"storage": map[string]any{"type": "memory"},
		"web": map[string]any{
			"https": fmt.Sprintf("127.0.0.1:%d", port), "tlsCert": certFile, "tlsKey": keyFile,
		},
		"logger":           map[string]any{"level": "warn", "format": "text"},
		"oauth2":           map[string]any{"skipApprovalScreen": true, "responseTypes": []string{"code"}},
		"expiry":           map[string]any{"idTokens": "24h", "authRequests": "10m"},
		"enablePasswordDB": true,
		"staticPasswords": []map[string]any{{
			"email": benchUser.Email, "hash": string(hash), "username": "bench", "name": "Bench",
			"userID": "0b7e5c1e-bench", "groups": benchUser.Groups,
		}},
		"staticClients": clients,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "dex.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, "", err
	}
	p, err := start(dir, "dex", nil, bin, "serve", path)
	if err != nil {
		return nil, "", err
	}
	err = waitHTTP(c, issuer+"/.well-known/openid-configuration", 30*time.Second, nil, func(res *http.Response, body []byte) error {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), issuer) {
			return fmt.Errorf("discovery: %s", res.Status)
		}
		return nil
	})
	if err != nil {
		p.stop()
		return nil, "", fmt.Errorf("%w\n%s", err, p.tail())
	}
	return p, issuer, nil
}
